"""Sweep throughput: paramill sweep vs papermill, side by side, printed as ratios.

    .venv/bin/python bench/sweep_bench.py [--runs 100] [--bike-runs 20] [--flat 50,500]
        [--papermill bench/.venv-papermill/bin/papermill]

Run with the paramill venv's python; papermill comes from its own venv (``make bench`` makes
it). Both tools run every notebook on the same kernel (a python3 kernelspec pinned to this
interpreter, from bench/run.py). Measured, wall clock of whole processes:
  trivial   N runs of a two-cell notebook: `paramill sweep --workers 2` vs a shell loop of
            `papermill` CLI calls, and vs papermill.execute_notebook from one Python process
            with two threads
  bikeshare M runs of examples/bikeshare/report.ipynb (dates): paramill sweep vs a shell loop
  dask      the trivial runs on a local Dask cluster (`--executor dask`, one worker process per
            core): each worker's warm kernel pool (`--warm`, forked kernels) vs a cold kernel
            per run (`--no-warm`), against the same papermill CLI loop
  flat      driver RSS and open fds after 50 and 500 runs of an in-process paramill.sweep
  handout   KernelPool.acquire latency on a warm pool vs a cold start_kernel, and a kernel
            forked by the fork server (cold fork: no pool)
Each paramill row is measured with `--fork-server` (the sweep default: python kernels forked
from a server that imported ipykernel and the preloads once) and `--no-fork-server`, against
the same papermill figure.
The machine's load average is printed before and after: the figures are only comparable on
an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import (  # noqa: E402  (bench/run.py: the shared kernelspec and fixtures)
    DEFAULT_PAPERMILL,
    bikeshare_workdir,
    write_kernelspec,
    write_notebook,
)

ROOT = HERE.parent
BIKESHARE = ROOT / "examples" / "bikeshare" / "report.ipynb"
PARAMILL = [sys.executable, "-m", "paramill"]


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def timed(cmd: list[str] | str, env: dict, cwd: Path | None = None, shell: bool = False) -> float:
    began = time.perf_counter()
    proc = subprocess.run(
        cmd, env=env, cwd=cwd, shell=shell, capture_output=True, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    took = time.perf_counter() - began
    if proc.returncode != 0:
        sys.exit(f"bench: {cmd if shell else ' '.join(map(str, cmd))} exited "
                 f"{proc.returncode}:\n{proc.stderr[-3000:]}")  # fmt: skip
    return took


def trivial_notebook(folder: Path) -> Path:
    path = write_notebook(folder / "trivial.ipynb", ["x = 0", "y = x + 1\nprint(y)"])
    import nbformat

    nb = nbformat.read(path, 4)
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, path)
    return path


def shell_loop(papermill: str, nb: Path, out: Path, name: str, values: list[str]) -> str:
    lines = [
        f"{papermill} {nb} {out}/{name}_{v}.ipynb -p {name} {v} --no-progress-bar "
        "--log-level ERROR" for v in values
    ]
    return " && ".join(lines)


PAPERMILL_THREADS = """
import sys, papermill
from concurrent.futures import ThreadPoolExecutor
nb, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def one(i):
    papermill.execute_notebook(nb, f"{out}/t_{i}.ipynb", {"x": i}, progress_bar=False)
with ThreadPoolExecutor(2) as pool:
    list(pool.map(one, range(n)))
"""

FLAT = """
import os, sys, paramill
from paramill.sweeps import SweepEvents
nb, out, marks = sys.argv[1], sys.argv[2], [int(m) for m in sys.argv[3].split(",")]
seen = []
class Probe(SweepEvents):
    done = 0
    def finished(self, run):
        self.done += 1
        if self.done in marks:
            rss = int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1])
            seen.append((self.done, rss / 1024, len(os.listdir("/proc/self/fd"))))
runs = paramill.sweep(nb, out + "/f_{x}.ipynb", {"x": list(range(max(marks)))}, workers=2,
                      events=Probe())
assert all(r.ok for r in runs), [r.error for r in runs if not r.ok][:1]
for done, rss, fds in seen:
    print(f"{done} {rss:.1f} {fds}")
"""


async def handout(repeat: int) -> tuple[list[float], list[float]]:
    from paramill.kernel.lifecycle import start_kernel, stop_kernel
    from paramill.kernel.pool import KernelPool
    from paramill.kernel.source import KernelRequest

    warm, cold = [], []
    with KernelPool(1, limit=repeat) as pool:
        pool.warm("python3")
        for _ in range(repeat):
            while not all(t.done() for q in pool._queues.values() for t in q) or not pool._queues:
                await asyncio.sleep(0.05)  # the next kernel is ready: measure only the hand-out
            began = time.perf_counter()
            kernel = await pool.acquire(KernelRequest("python3"))
            warm.append(time.perf_counter() - began)
            await stop_kernel(kernel.manager, kernel.client)
    for _ in range(repeat):
        began = time.perf_counter()
        km, kc = await start_kernel("python3")
        cold.append(time.perf_counter() - began)
        await stop_kernel(km, kc)
    return warm, cold


async def ready_latency(repeat: int, fork: bool) -> tuple[float, list[float]]:
    """Launch plus the first kernel_info/IOPub round trip (the pool's ``connect_client``), per
    kernel, no pool: the first figure (for a fork: the server's own start too), then the rest."""
    import uuid

    from jupyter_client import AsyncKernelManager

    from paramill.kernel import forkserver
    from paramill.kernel.ipc import ipc_dir
    from paramill.kernel.lifecycle import connect_client, stop_kernel

    times = []
    for _ in range(repeat + 1):
        km = AsyncKernelManager(
            kernel_name="python3", transport="ipc", ip=os.path.join(ipc_dir(), uuid.uuid4().hex)
        )
        if fork:
            km.kernel_spec.metadata["kernel_provisioner"] = forkserver.provisioner_stanza()
        began = time.perf_counter()
        await km.start_kernel(env=dict(os.environ))
        kc = await connect_client(km)
        times.append(time.perf_counter() - began)
        await stop_kernel(km, kc)
    forkserver.close_servers()
    return times[0], times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--bike-runs", type=int, default=20)
    parser.add_argument("--flat", default="50,500", help="run counts to sample RSS/fds at")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--papermill", default=str(DEFAULT_PAPERMILL))
    parser.add_argument("--skip", default="", help="comma list of: trivial,threads,bike,dask,flat")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    papermill = args.papermill
    loop_time = None  # the papermill CLI loop over the trivial runs, once for every row
    pm_python = str(Path(papermill).parent / "python")
    if not Path(papermill).exists():
        sys.exit(f"bench: no papermill at {papermill} (make bench creates it)")
    folder = Path(tempfile.mkdtemp(prefix="paramill-sweep-bench-"))
    env = write_kernelspec(folder / "jupyter")
    print(f"cores {os.cpu_count()}  load before {load()}")
    nb = trivial_notebook(folder)
    rows = []
    xs = [str(i) for i in range(args.runs)]
    workers = ["--workers", str(args.workers)]
    variants = ((" [no fork]", ["--no-fork-server"]), (" [fork]", ["--fork-server"]))
    if "trivial" not in skip:
        (folder / "b").mkdir()
        ours = {}
        for label, flag in variants:
            out = folder / f"a{label.strip(' []')}"
            out.mkdir()
            ours[label] = timed([*PARAMILL, "sweep", nb, f"{out}/t_{{x}}.ipynb",
                                 "--grid", "x=" + ",".join(xs), *workers, *flag], env)  # fmt: skip
        loop_time = timed(shell_loop(papermill, nb, folder / "b", "x", xs), env, shell=True)
        for label, _ in variants:
            rows.append((f"trivial x{args.runs}{label}: vs papermill CLI loop", ours[label],
                         loop_time, 10))  # fmt: skip
    if "threads" not in skip:
        (folder / "c").mkdir(exist_ok=True)
        ours = {}
        for label, flag in variants:
            out = folder / f"a2{label.strip(' []')}"
            out.mkdir(exist_ok=True)
            ours[label] = timed([*PARAMILL, "sweep", nb, f"{out}/t_{{x}}.ipynb",
                                 "--grid", "x=" + ",".join(xs), *workers, *flag], env)  # fmt: skip
        theirs = timed([pm_python, "-c", PAPERMILL_THREADS, nb, folder / "c", str(args.runs)], env)
        for label, _ in variants:
            rows.append((f"trivial x{args.runs}{label}: vs papermill, 1 process, 2 threads",
                         ours[label], theirs, 3))  # fmt: skip
    if "bike" not in skip:
        work = bikeshare_workdir(folder / "bike")
        # the data has 14 days: runs are (date, copy) pairs, copy an extra parameter
        pairs = [(f"2019-11-{1 + i % 10:02d}", 1 + i // 10) for i in range(args.bike_runs)]
        dates = sorted({d for d, _ in pairs})
        copies = sorted({c for _, c in pairs})
        if len(dates) * len(copies) != len(pairs):
            sys.exit("bench: --bike-runs must be a multiple of 10 (or under 10)")
        (work / "b").mkdir()
        ours = {}
        for label, flag in variants:
            (work / f"a{label.strip(' []')}").mkdir()
            ours[label] = timed([*PARAMILL, "sweep", BIKESHARE,
                                 f"a{label.strip(' []')}/report_{{date}}_{{copy}}.ipynb", "--cwd",
                                 work, "--grid", "date=" + ",".join(dates),
                                 "--grid", "copy=" + ",".join(map(str, copies)), *workers, *flag],
                                env, cwd=work)  # fmt: skip
        loop = " && ".join(
            f"{papermill} {BIKESHARE} b/report_{d}_{c}.ipynb -p date {d} -p copy {c} "
            f"--cwd {work} --no-progress-bar --log-level ERROR" for d, c in pairs
        )
        theirs = timed(loop, env, cwd=work, shell=True)
        for label, _ in variants:
            rows.append((f"bikeshare x{args.bike_runs}{label}: vs papermill CLI loop", ours[label],
                         theirs, 3))  # fmt: skip
    if "dask" not in skip:
        ours = {}
        for label, flag in ((" [dask, cold]", "--no-warm"), (" [dask, warm]", "--warm")):
            out = folder / f"d{label.split(',')[1].strip(' []')}"
            out.mkdir()
            ours[label] = timed([*PARAMILL, "sweep", nb, f"{out}/t_{{x}}.ipynb", "--grid",
                                 "x=" + ",".join(xs), "--executor", "dask", flag], env)  # fmt: skip
        if loop_time is None:
            (folder / "b").mkdir(exist_ok=True)
            loop_time = timed(shell_loop(papermill, nb, folder / "b", "x", xs), env, shell=True)
        for label, took in ours.items():
            rows.append((f"trivial x{args.runs}{label}: vs papermill CLI loop", took, loop_time,
                         3))  # fmt: skip
    print(f"\n{'':66} {'paramill':>9} {'papermill':>9} {'ratio':>7} goal")
    for name, ours, theirs, goal in rows:
        ratio = theirs / ours
        mark = "ok" if ratio >= goal else "MISSED"
        print(f"{name:66} {ours:8.1f}s {theirs:8.1f}s {ratio:6.1f}x >={goal}x {mark}")
        print(f"{'':66} {args_rate(ours, name):>9} {args_rate(theirs, name):>9}  runs/s")
    if "flat" not in skip:
        (folder / "f").mkdir()
        proc = subprocess.run(
            [sys.executable, "-c", FLAT, nb, folder / "f", args.flat],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode:
            sys.exit(f"bench: flat run failed:\n{proc.stderr[-3000:]}")
        print("\ndriver after N runs (in-process paramill.sweep, 2 workers):")
        for line in proc.stdout.split("\n"):
            if line.strip():
                done, rss, fds = line.split()
                print(f"  {done:>5} runs   RSS {rss:>7} MB   open fds {fds}")
    warm, cold = asyncio.run(handout(10))
    print(f"\nkernel ready for code: warm pool hand-out median {statistics.median(warm) * 1e3:.1f}"
          f" ms (max {max(warm) * 1e3:.1f}), cold start_kernel median "
          f"{statistics.median(cold) * 1e3:.0f} ms")  # fmt: skip
    _, colds = asyncio.run(ready_latency(10, fork=False))
    first, forks = asyncio.run(ready_latency(10, fork=True))
    print("kernel ready for code, no pool, launch + connect_client: cold median "
          f"{statistics.median(colds) * 1e3:.0f} ms; forked median "
          f"{statistics.median(forks) * 1e3:.0f} ms (max {max(forks) * 1e3:.0f}), the fork "
          f"server's first kernel {first * 1e3:.0f} ms")  # fmt: skip

    print(f"load after {load()}")


def args_rate(seconds: float, name: str) -> str:
    runs = int(name.split(" x")[1].split(":")[0].split()[0])
    return f"{runs / seconds:.2f}"


if __name__ == "__main__":
    main()
