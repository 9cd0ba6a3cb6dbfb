"""The warm kernel pool: fresh process per run, no leaks, no orphans, race-free starts."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from paramill.api import run
from paramill.kernel import ipc, lifecycle
from paramill.kernel.pool import KernelPool, preload_code
from paramill.kernel.source import KernelRequest

from .conftest import make_notebook


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False


def wait_dead(pids, seconds: float = 10) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return left


def ipc_files() -> list[str]:
    return [name for name in os.listdir(ipc.ipc_dir()) if name != ipc.IPC_LOCK]


@pytest.fixture
def probe(tmp_path):
    """A notebook that reports its kernel's pid, a leaked variable, and its namespace."""
    import nbformat

    nb = make_notebook(
        [
            "import os, sys\n"
            "seen = globals().get('leak')\n"
            "print(os.getpid(), seen, 'json' in dir(), '__m' in dir(), 'importlib' in dir(),"
            " 'json' in sys.modules)\n"
            "leak = os.getpid()"
        ]
    )
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    return path


def test_sixteen_concurrent_starts_succeed_and_leave_no_ipc_files():
    async def main():
        started = await asyncio.gather(*(lifecycle.start_kernel("python3") for _ in range(16)))
        pids = [lifecycle.kernel_pid(km) for km, _ in started]
        await asyncio.gather(*(lifecycle.stop_kernel(km, kc) for km, kc in started))
        return pids

    pids = asyncio.run(main())
    assert len(set(pids)) == 16
    assert wait_dead(pids) == []
    assert ipc_files() == []


def test_pooled_runs_from_threads_get_fresh_preloaded_kernels(probe, tmp_path):
    lines: list[list[str]] = []
    counts = []
    with KernelPool(2, preload=["json"], limit=6) as pool:
        pool.warm("python3")

        def worker(i: int) -> None:
            for j in range(3):
                result = run(
                    probe,
                    tmp_path / f"out{i}{j}.ipynb",
                    kernel_source=pool,
                    handle_signals=False,
                )
                assert result.ok, result.error
                cell = result.notebook.cells[0]
                counts.append(cell.execution_count)
                lines.append(cell.outputs[0]["text"].split())

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        started_pids = list(pool.started_pids)
        assert pool.handed_out == 6
    pids = [int(line[0]) for line in lines]
    assert len(set(pids)) == 6  # a fresh kernel process per run
    assert set(pids) <= set(started_pids)  # ... each one from the pool
    # nothing leaks between runs, preloading adds no names, the module is imported
    assert {tuple(line[1:]) for line in lines} == {("None", "False", "False", "False", "True")}
    assert counts == [1] * 6  # the silent preload used no execution count
    assert wait_dead(started_pids) == []
    assert ipc_files() == []


def test_close_stops_kernels_never_handed_out():
    pool = KernelPool(3)
    pool.warm("python3")
    deadline = time.monotonic() + 60
    while len(pool.started_pids) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = list(pool.started_pids)
    assert len(pids) == 3 and all(alive(p) for p in pids)
    pool.close()
    assert wait_dead(pids) == []
    assert ipc_files() == []
    assert not pool._thread.is_alive()


def test_limit_caps_kernels_started_ahead():
    with KernelPool(4, limit=2) as pool:
        pool.warm("python3")
        time.sleep(0.5)
        assert pool.started == 2


def test_warm_hand_out_gives_the_already_started_kernel(probe, tmp_path):
    """No cold start on acquire: the kernel handed out is the one warmed beforehand (same pid,
    same process start time). How fast a hand-out is, is measured in bench/, not here."""

    async def take(pool):
        kernel = await pool.acquire(KernelRequest("python3"))
        try:
            return kernel.pid, process_start(kernel.pid)
        finally:
            await lifecycle.stop_kernel(kernel.manager, kernel.client)

    with KernelPool(1, limit=2) as pool:
        pool.warm("python3")
        deadline = time.monotonic() + 60
        while not pool._queues or not all(
            t.done() for q in pool._queues.values() for t in q
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert pool.started == 1
        warm = pool.started_pids[0]
        warm_since = process_start(warm)
        assert asyncio.run(take(pool)) == (warm, warm_since)
        assert pool.handed_out == 1


def process_start(pid: int) -> int:
    """The process's start time (clock ticks since boot): a pid reused later differs here."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(") ", 1)[1].split()[19])


def test_unknown_kernel_fails_the_acquire():
    from paramill.errors import KernelError

    with KernelPool(1) as pool:
        with pytest.raises(KernelError, match="no kernel named"):
            asyncio.run(pool.acquire(KernelRequest("no-such-kernel-xyz")))


def test_preload_code_leaves_the_namespace_alone():
    namespace: dict = {}
    exec(preload_code(["json", "no_such_module_abc"]), namespace)
    assert set(namespace) == {"__builtins__"}
