"""paramill vs papermill, side by side in one run, printed as a table of ratios.

    make bench                       # creates bench/.venv-papermill, then runs this
    .venv/bin/python bench/run.py [--repeat 7] [--papermill bench/.venv-papermill/bin/papermill]

Run with the paramill venv's python. papermill lives in its own venv (bench/requirements.txt)
so it never leaks into paramill's. Both tools run every notebook on the same kernel: a private
``python3`` kernelspec (found first through JUPYTER_PATH) whose argv is this venv's python by
absolute path, so the kernel process, its ipykernel and pandas/matplotlib are identical.

Measured (medians, or --stat min, of --repeat runs, tools interleaved, one warm-up run each):
  cli.trivial      whole-process time of one CLI run of a one-cell notebook
  cli.bikeshare    whole-process time of one CLI run of the bikeshare report for 2019-11-07
  cli.prepare      whole-process time of --prepare-only (read, parameterize, write; no kernel)
  per-cell         (T(200 cells) - T(1 cell)) / 199 on CLI runs of ``x = 1`` cells; also shown
                   above the floor: the same cells sent with a bare jupyter_client loop
  --help/--version wall time of the console script
  kernel shutdown  paramill.kernel.lifecycle.stop_kernel vs jupyter_client's default
                   ``AsyncKernelManager.shutdown_kernel()`` (what nbclient/papermill call), on
                   kernels started the same way, until the kernel process is gone
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BIKESHARE = ROOT / "examples" / "bikeshare"
DEFAULT_PAPERMILL = ROOT / "bench" / ".venv-papermill" / "bin" / "papermill"
CELLS = 200


# -- fixtures ------------------------------------------------------------------------------------
def write_kernelspec(folder: Path) -> dict[str, str]:
    """A python3 kernelspec pinned to this interpreter; returns the env that selects it."""
    spec_dir = folder / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (bench)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    env = dict(os.environ)
    env["JUPYTER_PATH"] = os.pathsep.join([str(folder), env.get("JUPYTER_PATH", "")]).rstrip(
        os.pathsep
    )
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # both tools' kernels start the same way
    os.environ.update(env)  # the in-process kernel measurements use it too
    return env


def write_notebook(path: Path, sources: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    nb.cells = [nbformat.v4.new_code_cell(src, id=f"c{i}") for i, src in enumerate(sources)]
    nbformat.write(nb, path)
    return path


def bikeshare_workdir(folder: Path) -> Path:
    sys.path.insert(0, str(BIKESHARE))
    try:
        import make_data
    finally:
        sys.path.pop(0)
    make_data.write(folder / "data" / "trips.csv")
    return folder


# -- timing --------------------------------------------------------------------------------------
def wall(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return elapsed


def compare(
    commands: dict[str, list[str]], env: dict[str, str], repeat: int
) -> dict[str, list[float]]:
    """Run each command ``repeat`` times, interleaved (order alternating), after a warm-up."""
    times: dict[str, list[float]] = {tool: [] for tool in commands}
    for cmd in commands.values():
        wall(cmd, env)
    tools = list(commands)
    for i in range(repeat):
        for tool in tools if i % 2 == 0 else reversed(tools):
            times[tool].append(wall(commands[tool], env))
    return times


def check_same_kernel(tools: dict[str, str], env: dict[str, str], folder: Path) -> str:
    """Both tools must run notebooks on this interpreter; fail loudly otherwise."""
    nb = write_notebook(folder / "which.ipynb", ["import sys\nprint(sys.executable)"])
    seen = {}
    for tool, exe in tools.items():
        out = folder / f"which-{tool}.ipynb"
        wall([exe, str(nb), str(out), "--no-progress-bar"], env)
        seen[tool] = nbformat.read(out, 4).cells[0].outputs[0]["text"].strip()
    if set(seen.values()) != {sys.executable}:
        sys.exit(f"bench: the tools ran different kernels: {seen}")
    return sys.executable


async def kernel_floor(cells: int) -> float:
    """Seconds per ``x = 1`` cell over a bare client: execute, then wait for the kernel's idle
    status and the reply, as nbclient does, with no notebook tool around it."""
    from paramill.kernel.lifecycle import start_kernel, stop_kernel

    async def one(kc) -> None:
        msg_id = kc.execute("x = 1")
        while not (
            (msg := await kc.get_iopub_msg())["parent_header"].get("msg_id") == msg_id
            and msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
        ):
            pass
        while (await kc.get_shell_msg())["parent_header"].get("msg_id") != msg_id:
            pass

    km, kc = await start_kernel("python3")
    try:
        for _ in range(3):
            await one(kc)  # warm
        started = time.perf_counter()
        for _ in range(cells):
            await one(kc)
        return (time.perf_counter() - started) / cells
    finally:
        await stop_kernel(km, kc)


def exit_clock(pid: int) -> Callable[[], float | None]:
    """When process ``pid`` exits, seen from a thread through a pidfd (no polling, no reaping)."""
    import select
    import threading

    fd = os.pidfd_open(pid)
    seen: list[float] = []

    def watch() -> None:
        select.select([fd], [], [])
        seen.append(time.perf_counter())
        os.close(fd)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()

    def exited_at() -> float | None:
        thread.join(5)
        return seen[0] if seen else None

    return exited_at


async def shutdown_once(how: str) -> tuple[float, float]:
    """(seconds until the shutdown call returned, seconds it returned after the kernel exited)"""
    from paramill.kernel.lifecycle import start_kernel, stop_kernel

    km, kc = await start_kernel("python3")
    await kc.execute_interactive("x = 1", output_hook=lambda msg: None)
    process = km.provisioner.process
    exited_at = exit_clock(process.pid)
    started = time.perf_counter()
    if how == "paramill":
        await stop_kernel(km, kc)
    else:  # nbclient's cleanup: km.shutdown_kernel(now=False), then stop_channels
        await km.shutdown_kernel()
        kc.stop_channels()
    returned = time.perf_counter()
    exited = exited_at()
    if exited is None or process.poll() is None:
        sys.exit(f"bench: the kernel outlived {how}'s shutdown")
    return returned - started, returned - exited


def shutdown_times(repeat: int) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {
        tool: {"total": [], "lag": []} for tool in ("paramill", "papermill")
    }
    for i in range(repeat):
        for how in ("paramill", "papermill") if i % 2 == 0 else ("papermill", "paramill"):
            total, lag = asyncio.run(shutdown_once(how))
            times[how]["total"].append(total)
            times[how]["lag"].append(lag)
    return times


# -- report --------------------------------------------------------------------------------------
def fmt(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms" if seconds < 10 else f"{seconds:8.2f} s "


def ratio(ours: float, theirs: float) -> str:
    # below ~0.1 ms the difference of two medians is noise: say how far apart, not a number
    return f"{theirs / ours:6.2f}x" if ours * 100 >= theirs else "  >100x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per measurement (median)")
    parser.add_argument("--papermill", default=str(DEFAULT_PAPERMILL), help="papermill script")
    parser.add_argument("--paramill", default=str(Path(sys.executable).parent / "paramill"))
    parser.add_argument("--json", type=Path, help="also write the raw times here")
    parser.add_argument(
        "--stat",
        choices=["median", "min"],
        default="median",
        help="how runs are summarized (min: the least disturbed run, on a busy machine)",
    )
    args = parser.parse_args()
    for name in ("paramill", "papermill"):
        if not os.access(getattr(args, name), os.X_OK):
            hint = " (make bench creates its venv)" if name == "papermill" else ""
            sys.exit(f"bench: no {name} at {getattr(args, name)}{hint}")
    try:
        import matplotlib  # noqa: F401
        import pandas  # noqa: F401
    except ImportError:
        sys.exit("bench: the kernel needs pandas and matplotlib: run `make demo` first")

    tools = {"paramill": args.paramill, "papermill": args.papermill}
    rows: list[tuple[str, float, float, str]] = []  # name, paramill, papermill, goal
    raw: dict[str, dict[str, list[float]]] = {}
    n = args.repeat
    stat = statistics.median if args.stat == "median" else min

    def measure(name: str, argv: Callable[[str, str], list[str]], goal: str = "<= 1x") -> None:
        out = Path(tmp) / "out"
        out.mkdir(exist_ok=True)
        times = compare({t: argv(exe, str(out / f"{t}.ipynb")) for t, exe in tools.items()}, env, n)
        raw[name] = times
        rows.append((name, *(stat(times[t]) for t in tools), goal))
        print(f"  {name:<28} done", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="paramill-bench-") as tmp:
        folder = Path(tmp)
        env = write_kernelspec(folder / "jupyter")
        kernel_python = check_same_kernel(tools, env, folder)
        trivial = write_notebook(folder / "trivial.ipynb", ["x = 1"])
        many = write_notebook(folder / f"cells{CELLS}.ipynb", ["x = 1"] * CELLS)
        workdir = bikeshare_workdir(folder / "bikeshare")
        quiet = ["--no-progress-bar"]

        measure("--help", lambda exe, out: [exe, "--help"], ">= 3x")
        measure("--version", lambda exe, out: [exe, "--version"])
        measure(
            "cli.prepare-only (1 cell)",
            lambda exe, out: [exe, str(trivial), out, "--prepare-only", *quiet],
        )
        measure("cli.trivial (1 cell)", lambda exe, out: [exe, str(trivial), out, *quiet])
        measure(f"cli.{CELLS} cells", lambda exe, out: [exe, str(many), out, *quiet])
        report = str(BIKESHARE / "report.ipynb")
        day = ["-p", "date", "2019-11-07", "--cwd", str(workdir)]
        measure("cli.bikeshare 2019-11-07", lambda exe, out: [exe, report, out, *day, *quiet])
        floor = asyncio.run(kernel_floor(CELLS))
        shutdown = shutdown_times(n)
        raw["kernel shutdown"] = {t: shutdown[t]["total"] for t in shutdown}
        raw["kernel shutdown lag"] = {t: shutdown[t]["lag"] for t in shutdown}
        raw["kernel floor per cell"] = {"bare client": [floor]}

    medians = {name: (ours, theirs) for name, ours, theirs, _ in rows}
    t1, t200 = medians["cli.trivial (1 cell)"], medians[f"cli.{CELLS} cells"]
    per_cell = tuple((many_ - one) / (CELLS - 1) for one, many_ in zip(t1, t200, strict=True))
    above = tuple(max(0.0, p - floor) for p in per_cell)
    rows.append(("per-cell time", *per_cell, "<= 1x"))
    rows.append(("per-cell overhead above floor", *above, ">= 5x"))
    for key, name, goal in (
        ("total", "kernel shutdown", "<= 1x"),
        ("lag", "  after the kernel exited", "< 10 ms"),
    ):
        rows.append((name, *(stat(shutdown[t][key]) for t in tools), goal))

    def met(ours: float, theirs: float, goal: str) -> str:
        if goal.startswith(">="):
            return "yes" if theirs >= float(goal.split()[1].rstrip("x")) * ours else "NO"
        if goal == "< 10 ms":
            return "yes" if ours < 0.010 else "NO"
        return "yes" if ours <= theirs else "NO"

    papermill_version = subprocess.run(
        [args.papermill, "--version"], capture_output=True, text=True
    ).stdout.split()[0]
    print()
    print(
        f"paramill vs papermill {papermill_version}, {args.stat} of {n} runs "
        f"({datetime.date.today()}, {platform.python_version()}, {os.cpu_count()} cpus)"
    )
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    print(f"paramill {commit or 'unknown commit'}; kernel for both: python3 -> {kernel_python}")
    print(f"bare-client floor: {fmt(floor).strip()} per cell (jupyter_client, no notebook tool)")
    print("per-cell time = (T(200 cells) - T(1 cell)) / 199; overhead above floor = that - floor")
    print("kernel shutdown: until the call returns; 'after the kernel exited': how long it")
    print("returned after the kernel process was gone (its 0.1 s polling step shows there)")
    print()
    header = f"{'measure':<30} {'paramill':>11} {'papermill':>11} {'papermill/paramill':>19}  goal"
    print(header)
    print("-" * (len(header) + 12))
    for name, ours, theirs, goal in rows:
        verdict = met(ours, theirs, goal)
        print(f"{name:<30} {fmt(ours):>11} {fmt(theirs):>11} {ratio(ours, theirs):>19}  "
              f"{goal:<8} {verdict}")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "raw": raw}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
