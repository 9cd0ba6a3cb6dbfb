"""Warm kernels (paramill --warm) vs papermill and a cold paramill, side by side in one run.

    .venv/bin/python bench/warm_bench.py [--repeat 7] [--runs 100]
        [--papermill bench/.venv-papermill/bin/papermill]

Whole-process wall time of single CLI runs (medians of --repeat, tools interleaved, one
warm-up run each, which for --warm also starts the server and lets it finish importing):
  cli.trivial     a one-cell notebook (goal: --warm at least 3x faster than papermill)
  cli.bikeshare   the bikeshare report for 2019-11-07 (goal: at least 2x)
Then --runs sequential ``--warm`` runs of the trivial notebook: the warm servers' RSS and open
fds before and after (goal: flat) and the processes (kernels, runs) left behind (goal: none).
A warm run is two forks: the command line itself from a warm paramill ("cli" server), its
kernel from a warm kernel server ("kernel").

Same kernel for every tool (run.py's pinned python3 kernelspec); the warm servers live in a
private PARAMILL_WARM_DIR and are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as base  # noqa: E402  (bench/run.py: kernelspec, notebooks, timing)


def warm_env(env: dict[str, str], folder: Path) -> dict[str, str]:
    return {**env, "PARAMILL_WARM_DIR": str(folder), "PARAMILL_WARM_IDLE": "600"}


def status(exe: str, env: dict[str, str]) -> list[dict]:
    out = subprocess.run([exe, "warm", "status", "--json"], env=env, capture_output=True)
    return json.loads(out.stdout or b"[]")


def wait_serving(exe: str, env: dict[str, str], preload: str | None = None, timeout=120.0):
    """Until a server serves (with ``preload`` loaded): the warm-up run's server imports after
    that run is over."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        servers = status(exe, env)
        found = [s for s in servers if s["state"] == "serving" and s["kind"] == "kernel"]
        starting = [s for s in servers if s["state"] == "starting"]
        kinds = {s.get("kind") for s in servers if s["state"] == "serving"}
        ready = kinds == {"kernel", "cli"} and not starting
        if ready and (preload is None or preload in found[0]["preload"]):
            return found[0]
        time.sleep(0.2)
    sys.exit(f"bench: no warm server after {timeout:g} s: {status(exe, env)}")


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--papermill", default=str(base.DEFAULT_PAPERMILL))
    parser.add_argument("--paramill", default=str(Path(sys.executable).parent / "paramill"))
    args = parser.parse_args()
    if not os.access(args.papermill, os.X_OK):
        sys.exit(f"bench: no papermill at {args.papermill} (make bench/.venv-papermill/.installed)")
    exe = args.paramill
    rows = []
    raw: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="paramill-wbench-") as tmp:
        folder = Path(tmp)
        env = base.write_kernelspec(folder / "jupyter")
        wenv = warm_env(env, folder / "warm")
        try:
            trivial = base.write_notebook(folder / "trivial.ipynb", ["x = 1"])
            workdir = base.bikeshare_workdir(folder / "bikeshare")
            report = str(base.BIKESHARE / "report.ipynb")
            out = folder / "out"
            out.mkdir()
            quiet = ["--no-progress-bar"]
            day = ["-p", "date", "2019-11-07", "--cwd", str(workdir)]
            for name, nb, extra, preload, goal in (
                ("cli.trivial (1 cell)", str(trivial), [], None, 3.0),
                ("cli.bikeshare 2019-11-07", report, day, "pandas", 2.0),
            ):
                # the warm-up: a cold run that starts (or replaces) the server, then its imports
                base.wall([exe, "--warm", nb, str(out / "w.ipynb"), *extra, *quiet], wenv)
                wait_serving(exe, wenv, preload)
                commands = {
                    "papermill": [args.papermill, nb, str(out / "pm.ipynb"), *extra],
                    "paramill": [exe, nb, str(out / "cold.ipynb"), *extra, *quiet],
                    "paramill --warm": [exe, "--warm", nb, str(out / "w.ipynb"), *extra, *quiet],
                }
                times: dict[str, list[float]] = {t: [] for t in commands}
                tools = list(commands)
                for i in range(args.repeat):
                    for tool in tools if i % 2 == 0 else reversed(tools):
                        times[tool].append(base.wall(commands[tool], wenv))
                med = {t: statistics.median(v) for t, v in times.items()}
                rows.append((name, med, goal))
                raw[name] = times
                print(f"  {name} done", file=sys.stderr, flush=True)

            # the first warm run (no server yet: a cold run that starts them) vs a cold run
            first: list[float] = []
            cold: list[float] = []
            stop = [exe, "warm", "stop"]
            for _ in range(args.repeat):
                subprocess.run(stop, env=wenv, capture_output=True)
                warm_first = [exe, "--warm", str(trivial), str(out / "f.ipynb"), *quiet]
                first.append(base.wall(warm_first, wenv))
                subprocess.run(stop, env=wenv, capture_output=True)
                cold.append(base.wall([exe, str(trivial), str(out / "c.ipynb"), *quiet], wenv))
            print("  first --warm runs done", file=sys.stderr, flush=True)
            cmd = [exe, "--warm", str(trivial), str(out / "seq.ipynb"), *quiet]
            base.wall(cmd, wenv)  # the trivial notebook's server again (bikeshare's replaced it)
            wait_serving(exe, wenv)
            servers = {s["kind"]: s["pid"] for s in status(exe, wenv) if s["state"] == "serving"}
            before = {kind: base_proc(pid) for kind, pid in servers.items()}
            began = time.perf_counter()
            for _ in range(args.runs):
                base.wall(cmd, wenv)
            elapsed = time.perf_counter() - began
            after = {kind: base_proc(pid) for kind, pid in servers.items()}
            spare = {s.get("spare_pid") for s in status(exe, wenv)}  # started ahead: not left
            left = {kind: set(children(pid)) - spare for kind, pid in servers.items()}
            now = {s["kind"]: s["pid"] for s in status(exe, wenv) if s["state"] == "serving"}
        finally:
            subprocess.run([exe, "warm", "stop"], env=wenv, capture_output=True)

    print(f"\nparamill --warm vs papermill ({os.cpu_count()} cores, median of {args.repeat})")
    print(f"{'':<28}{'papermill':>11}{'paramill':>11}{'--warm':>10}{'ratio':>8}{'goal':>7}  met")
    for name, med, goal in rows:
        ratio = med["papermill"] / med["paramill --warm"]
        print(
            f"{name:<28}{med['papermill']:>10.3f}s{med['paramill']:>10.3f}s"
            f"{med['paramill --warm']:>9.3f}s{ratio:>7.2f}x{goal:>6g}x  "
            f"{'yes' if ratio >= goal else 'NO'}"
        )
    for name, times in raw.items():
        shown = "; ".join(f"{t}: {' '.join(f'{x:.2f}' for x in v)}" for t, v in times.items())
        print(f"  {name} runs (s): {shown}")
    f, c = statistics.median(first), statistics.median(cold)
    print(
        f"first --warm run, no server yet (trivial): {f:.3f}s vs cold paramill {c:.3f}s "
        f"({f / c:.2f}x the time; goal: no slower)"
    )
    print(
        f"\n{args.runs} sequential --warm runs: {elapsed:.1f} s ({elapsed / args.runs:.3f} s each);"
        f" servers {'kept' if now == servers else 'REPLACED'}"
    )
    for kind, pid in servers.items():
        b, a = before[kind], after[kind]
        print(
            f"  {kind} server (pid {pid}): RSS {b['rss_kb'] / 1024:.1f} MB -> "
            f"{a['rss_kb'] / 1024:.1f} MB, fds {b['fds']} -> {a['fds']}; "
            f"processes left (besides the spare kernel): {len(left[kind])}"
        )


def base_proc(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return {"rss_kb": rss, "fds": len(os.listdir(f"/proc/{pid}/fd"))}


if __name__ == "__main__":
    main()
