"""Load (slow tier): many runs in one process, many kernels starting at once, a sweep.

The driver must not grow (file descriptors, threads, memory) and no kernel may outlive its run.
bench/load_bench.py runs the same loop 500 times and prints the readings.
"""

from __future__ import annotations

import os
import threading
import time

import nbformat
import pytest

import paramill
from tests.conftest import make_notebook
from tests.load_support import growth, resources
from tests.reliability_support import in_process_ipc_dir, sandbox  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

SEQUENTIAL = int(os.environ.get("PARAMILL_LOAD_RUNS", 100))
WARMUP = 20
# bounds on the driver's growth between run WARMUP and run SEQUENTIAL
MAX_FDS, MAX_THREADS, MAX_RSS_MB = 4, 2, 25


def test_sequential_runs_do_not_leak(sandbox, tmp_path):  # noqa: F811
    src = tmp_path / "in.ipynb"
    nbformat.write(make_notebook([("code", "n = 0", "parameters"), "print(n)"]), src)
    t0 = time.monotonic()
    for i in range(SEQUENTIAL):
        if i == WARMUP:
            warm = resources()
        result = paramill.run(src, None, {"n": i})
        assert result.status == "completed" and result.notebook.cells[2].outputs[0].text == (
            f"{i}\n"
        )
    took = time.monotonic() - t0
    grew = growth(warm, resources())
    print(
        f"\n{SEQUENTIAL} sequential runs: {took:.1f} s ({took / SEQUENTIAL:.2f} s/run); "
        f"growth after run {WARMUP}: {grew}"
    )
    assert grew["fds"] <= MAX_FDS and grew["threads"] <= MAX_THREADS, grew
    assert grew["rss_mb"] <= MAX_RSS_MB, grew
    sandbox.assert_clean([in_process_ipc_dir()])


def test_sixteen_concurrent_kernel_starts(sandbox, tmp_path):  # noqa: F811
    """16 threads start kernels at the same moment (IPC sockets: no port race), each in its own
    working directory; all succeed and each sees its own cwd and parameter."""
    src = tmp_path / "in.ipynb"
    nbformat.write(
        make_notebook([("code", "n = 0", "parameters"), "import os; print(n, os.getcwd())"]), src
    )
    barrier = threading.Barrier(16)
    results: dict[int, object] = {}

    def one(i: int) -> None:
        work = tmp_path / f"w{i}"
        work.mkdir()
        barrier.wait()
        try:
            results[i] = paramill.run(src, None, {"n": i}, cwd=work, start_timeout=120)
        except Exception as exc:  # reported below with the others
            results[i] = exc

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    took = time.monotonic() - t0
    print(f"\n16 concurrent runs: {took:.1f} s")
    for i in range(16):
        result = results.get(i)
        assert getattr(result, "status", None) == "completed", (i, result)
        assert result.notebook.cells[2].outputs[0].text == f"{i} {tmp_path / f'w{i}'}\n"
    sandbox.assert_clean([in_process_ipc_dir()])


SWEEP_RUNS = int(os.environ.get("PARAMILL_LOAD_SWEEP_RUNS", 200))


def test_sweep_with_four_workers(sandbox, tmp_path):  # noqa: F811
    src = tmp_path / "in.ipynb"
    nbformat.write(make_notebook([("code", "n = 0", "parameters"), "print(n * 2)"]), src)
    # a first small sweep pays one-time costs (imports, the pool's context and threads)
    warmup = paramill.sweep(src, None, {"n": list(range(8))}, workers=4)
    assert all(run.ok for run in warmup)
    before = resources()
    t0 = time.monotonic()
    runs = paramill.sweep(
        src, str(tmp_path / "out" / "run_{n}.ipynb"), {"n": list(range(SWEEP_RUNS))}, workers=4
    )
    took = time.monotonic() - t0
    assert len(runs) == SWEEP_RUNS and all(run.ok for run in runs), [
        (run.status, run.error) for run in runs if not run.ok
    ][:3]
    outputs = sorted((tmp_path / "out").glob("run_*.ipynb"))
    assert len(outputs) == SWEEP_RUNS
    nb = nbformat.read(tmp_path / "out" / "run_7.ipynb", as_version=4)
    assert nb.cells[2].outputs[0].text == "14\n"
    grew = growth(before, resources())
    print(f"\nsweep of {SWEEP_RUNS} runs, 4 workers: {took:.1f} s; driver growth: {grew}")
    assert grew["fds"] <= MAX_FDS and grew["threads"] <= MAX_THREADS, grew
    sandbox.assert_clean([in_process_ipc_dir()])
