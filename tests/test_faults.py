"""Faults: a dying, exiting or frozen kernel, signals, timeouts, an output that cannot be written,
errors hidden from a plain error scan. Each test proves the error class / exit code, the saved
partial output with the failing cell marked, the time to detection, and that no kernel process,
connection file or IPC socket is left behind."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

import paramill
from paramill.errors import CellTimeoutError, KernelDiedError, OutputError
from tests.conftest import make_notebook, read_nb
from tests.reliability_support import (
    in_process_ipc_dir,
    kernels_using,
    pid_cell,
    read_pid,
    sandbox,  # noqa: F401 - fixture
    send,
    signal_kernel_when_ready,
    start_cli,
    wait_for,
)

ERROR_TAG = "papermill-error-cell-tag"


def write(path: Path, cells: list, **kw) -> Path:
    import nbformat

    nbformat.write(make_notebook(cells, **kw), path)
    return path


def run_to_end(box, *args: object, timeout: float = 60) -> tuple[int, str, float]:
    """Run the CLI in the sandbox until it exits: its exit code, stderr and seconds taken."""
    t0 = time.monotonic()
    proc = start_cli(box, *args)
    _, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stderr, time.monotonic() - t0


def assert_marked(saved: dict, failing: int, banner: str, total: int) -> None:
    """Banner on top, anchor above the failing cell, later cells pending (did not run).

    ``failing`` and ``total`` count the notebook's own cells (without the two marker cells).
    """
    cells = saved["cells"]
    assert len(cells) == total + 2
    assert ERROR_TAG in cells[0]["metadata"]["tags"] and banner in "".join(cells[0]["source"])
    assert ERROR_TAG in cells[failing + 1]["metadata"]["tags"]
    own = [c for c in cells if ERROR_TAG not in c["metadata"]["tags"]]
    status = [c["metadata"]["papermill"]["status"] for c in own]
    assert status[:failing] == ["completed"] * failing
    assert status[failing] == "failed"
    assert status[failing + 1 :] == ["pending"] * (total - failing - 1)
    assert own[failing]["outputs"][-1]["output_type"] == "error"
    assert saved["metadata"]["papermill"]["exception"] is True


# -- the kernel dies, exits or freezes ------------------------------------------------------------

FAULTS = {
    # name: (signal sent from outside or None, what the cell does, extra run kwargs, bound in s)
    "sigkill": (signal.SIGKILL, "import time; time.sleep(120)", {}, 5.0),
    "os_exit": (None, "import os; os._exit(3)", {}, 5.0),
    # SIGSTOP: the process is alive, so only the heartbeat watchdog can tell it is hung
    "sigstop": (signal.SIGSTOP, "import time; time.sleep(120)", {"kernel_liveness_timeout": 2}, 6),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_kernel_fault_detected_marked_and_cleaned(sandbox, tmp_path, fault):  # noqa: F811
    sig, then, extra, bound = FAULTS[fault]
    pid_file = tmp_path / "kernel.pid"
    src = write(tmp_path / "in.ipynb", ["x = 1", pid_cell(pid_file, then), "print('never')"])
    out = tmp_path / "out.ipynb"
    killer = signal_kernel_when_ready(pid_file, sig) if sig else None
    result = paramill.run(src, out, **extra)
    # from the fault: the signal sent, or (os._exit) the pid file the cell wrote just before it
    detected = (
        time.monotonic() - killer.sent_at if killer else time.time() - pid_file.stat().st_mtime
    )
    assert isinstance(result.error, KernelDiedError), result.error
    assert result.status == "kernel-died" and result.error.exit_code == 138
    assert result.error.cell_index == 1
    print(f"{fault}: detected after {detected:.2f} s")
    assert detected < bound, f"{fault} detected after {detected:.1f} s"
    if fault == "sigstop":
        assert "no heartbeat for 2 s" in result.error.message
    assert_marked(read_nb(out), failing=1, banner="kernel died", total=3)
    sandbox.assert_clean([in_process_ipc_dir()])


# -- signals to the paramill process --------------------------------------------------------------


def test_signal_during_kernel_start(sandbox, tmp_path):  # noqa: F811
    """SIGTERM while the kernel is still starting: the half-started kernel is killed, the output
    is saved with the run marked cancelled and no cell run, exit 143."""
    kernel = sandbox.add_slow_start_kernel(delay=30)
    src = write(tmp_path / "in.ipynb", ["1", "2"], kernel=kernel)
    out = tmp_path / "out.ipynb"
    proc = start_cli(sandbox, src, out)
    wait_for(lambda: kernels_using(sandbox.tmp), what="the kernel process")
    sent = send(proc, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    stopped = time.monotonic() - sent
    assert proc.returncode == 143, stderr
    assert stopped < 5, f"took {stopped:.1f} s"
    assert stderr.strip().splitlines()[-1].startswith("paramill: error: run cancelled")
    assert "Traceback" not in stderr, stderr
    saved = read_nb(out)
    assert "cancelled" in "".join(saved["cells"][0]["source"])
    own = [c for c in saved["cells"] if ERROR_TAG not in c["metadata"]["tags"]]
    assert [c["metadata"]["papermill"]["status"] for c in own] == ["pending", "pending"]
    assert saved["metadata"]["papermill"]["exception"] is True
    sandbox.assert_clean()


def running(pid: int) -> bool:
    """``pid`` exists and is not a zombie (a killed kernel its parent has not reaped yet)."""
    return os.path.exists(f"/proc/{pid}") and not _zombie(pid)


def test_repeated_signals_still_clean_up(sandbox, tmp_path):  # noqa: F811
    """A burst of SIGTERM/SIGINT (an impatient user, a scheduler escalating) during the run and
    its cleanup: the first signal decides the exit code; output saved, kernel gone."""
    pid_file = tmp_path / "kernel.pid"
    src = write(tmp_path / "in.ipynb", [pid_cell(pid_file), "1"])
    out = tmp_path / "out.ipynb"
    proc = start_cli(sandbox, src, out)
    kernel = wait_for(lambda: read_pid(pid_file), what="the cell to start")
    sent = send(proc, signal.SIGINT)
    # the burst comes once the first signal was acted on (the run stops its kernel), so that
    # SIGINT is provably the first one paramill saw: the rest land in the cleanup
    wait_for(lambda: not running(kernel), timeout=30, what="the first signal to stop the kernel")
    for i in range(40):
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGTERM if i % 2 else signal.SIGINT)
        time.sleep(0.005)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - sent < 15  # from the first signal; the cleanup is not slowed down
    assert "Traceback" not in stderr and "paramill: error: run cancelled" in stderr
    assert_marked(read_nb(out), failing=0, banner="cancelled", total=2)
    sandbox.assert_clean()


def test_api_in_a_worker_thread(sandbox, tmp_path):  # noqa: F811
    """In a non-main thread paramill cannot install signal handlers and does not try (no
    'signal only works in main thread'); the run works, and if the host process is killed
    outright, the kernel notices its parent is gone and exits by itself (ipykernel's parent
    poll) - no kernel outlives its caller."""
    pid_file = tmp_path / "kernel.pid"
    src = write(tmp_path / "in.ipynb", ["print('ok')"])
    results = []
    worker = threading.Thread(target=lambda: results.append(paramill.run(src, None)))
    worker.start()
    worker.join(60)
    assert results and results[0].status == "completed", results
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    src = write(tmp_path / "long.ipynb", [pid_cell(pid_file)])
    script = (
        "import threading, paramill\n"
        f"t = threading.Thread(target=paramill.run, args=({str(src)!r}, None))\n"
        "t.start(); t.join()\n"
    )
    import subprocess
    import sys

    host = subprocess.Popen([sys.executable, "-c", script], env=sandbox.env)
    kernel = wait_for(lambda: read_pid(pid_file), what="the kernel's pid")
    host.send_signal(signal.SIGTERM)  # default action: the host dies, no cleanup code runs
    assert host.wait(10) == -signal.SIGTERM
    killed = time.monotonic()
    wait_orphan_exit(kernel)
    assert time.monotonic() - killed < 10  # ipykernel polls its parent every second


def test_files_of_a_driver_killed_outright_are_removed_by_the_next_run(sandbox, tmp_path):  # noqa: F811
    """SIGKILL (an orchestrator's last word) gives paramill no chance to clean up: its kernel
    exits by itself, and the next paramill run removes the dead run's folder with its
    connection file and sockets. A live run's folder is never touched."""
    pid_file = tmp_path / "kernel.pid"
    src = write(tmp_path / "long.ipynb", [pid_cell(pid_file)])
    live_pid_file = tmp_path / "live.pid"
    live = start_cli(sandbox, write(tmp_path / "live.ipynb", [pid_cell(live_pid_file)]), "-")
    wait_for(lambda: read_pid(live_pid_file), what="the live run's kernel")
    driver = start_cli(sandbox, src, tmp_path / "out.ipynb")
    kernel = wait_for(lambda: read_pid(pid_file), what="the kernel's pid")
    driver.kill()
    driver.communicate(timeout=10)
    wait_orphan_exit(kernel)
    [abandoned] = sandbox.tmp.glob(f"paramill-ipc-{driver.pid}-*")
    assert any(p.name.endswith(".json") for p in abandoned.iterdir())
    [alive] = sandbox.tmp.glob(f"paramill-ipc-{live.pid}-*")

    again = start_cli(sandbox, write(tmp_path / "quick.ipynb", ["1"]), tmp_path / "quick-out.ipynb")
    assert again.wait(60) == 0
    assert not abandoned.exists()
    assert alive.exists() and any(alive.iterdir())  # the live run keeps its files
    live.send_signal(signal.SIGTERM)
    live.communicate(timeout=30)
    sandbox.assert_clean()


def test_a_live_folder_in_another_pid_namespace_is_left_alone(sandbox, tmp_path):  # noqa: F811
    """A run in another PID namespace (a container sharing /tmp) names its folder after a PID
    that does not exist here. Its folder stays while its owner holds the folder's lock, and goes
    with the next run once the owner has exited. A folder of an older paramill (no lock file)
    stays unless its PID is gone here and it has not changed for a week."""
    import subprocess
    import sys

    from paramill.kernel.ipc import IPC_LOCK, LEGACY_MAX_AGE

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a PID that no process here has (any more)
    assert not os.path.exists(f"/proc/{gone.pid}")
    foreign = sandbox.tmp / f"paramill-ipc-{gone.pid}-container"
    foreign.mkdir()
    (foreign / "kernel-abc.json").write_text("{}")
    (foreign / IPC_LOCK).touch()
    holder = subprocess.Popen(  # the container's paramill: holds the lock, as ipc_dir does
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys\n"
            f"fd = os.open({str(foreign / IPC_LOCK)!r}, os.O_RDWR)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "locked\n"
    recent, old = (sandbox.tmp / f"paramill-ipc-{gone.pid}-{n}" for n in ("recent", "old"))
    for legacy in (recent, old):
        legacy.mkdir()
        (legacy / "kernel-def.json").write_text("{}")
    week_ago = time.time() - LEGACY_MAX_AGE - 60
    os.utime(old, (week_ago, week_ago))
    try:
        quick = write(tmp_path / "quick.ipynb", ["1"])
        first = start_cli(sandbox, quick, tmp_path / "q1.ipynb")
        assert first.wait(60) == 0, first.communicate()
        assert (foreign / "kernel-abc.json").exists()  # its owner lives
        assert (recent / "kernel-def.json").exists()  # no lock, and not old enough to judge
        assert not old.exists()
    finally:
        holder.communicate("", timeout=10)  # the owner exits: its lock is released
    again = start_cli(sandbox, quick, tmp_path / "q2.ipynb")
    assert again.wait(60) == 0, again.communicate()
    assert not foreign.exists()
    assert recent.exists()
    sandbox.assert_clean([])


def wait_orphan_exit(pid: int) -> None:
    wait_for(
        lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid),
        timeout=10,
        what="the orphaned kernel to exit",
    )


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return True


# -- timeouts -------------------------------------------------------------------------------------


def test_run_timeout_covers_kernel_start(sandbox, tmp_path):  # noqa: F811
    """--timeout counts from the start: a kernel that never gets ready is stopped at the limit,
    not after --start-timeout (60 s)."""
    kernel = sandbox.add_slow_start_kernel(delay=60)
    src = write(tmp_path / "in.ipynb", ["1", "2"], kernel=kernel)
    out = tmp_path / "out.ipynb"
    code, stderr, took = run_to_end(sandbox, src, out, "--timeout", "2", timeout=30)
    assert code == 8, stderr
    assert took < 2 + 15, f"took {took:.1f} s"  # with the CLI's own start; far below 60 s
    assert "run timed out" in stderr.strip().splitlines()[-1] and "Traceback" not in stderr
    saved = read_nb(out)
    assert "timed out" in "".join(saved["cells"][0]["source"])
    own = [c for c in saved["cells"] if ERROR_TAG not in c["metadata"]["tags"]]
    assert [c["metadata"]["papermill"]["status"] for c in own] == ["pending", "pending"]
    sandbox.assert_clean()


def test_cell_timeout_detected_and_cleaned(sandbox, tmp_path):  # noqa: F811
    src = write(tmp_path / "in.ipynb", ["x = 1", "import time; time.sleep(60)", "x"])
    out = tmp_path / "out.ipynb"
    result = paramill.run(src, out, execution_timeout=1)
    assert isinstance(result.error, CellTimeoutError) and result.error.exit_code == 7
    # from the cell's start (not the kernel's): stopped at the timeout, not at the sleep's end
    slow = next(c for c in result.notebook.cells if "sleep(60)" in c.source)
    took = slow.metadata.papermill.duration
    assert took < 1 + 8, f"took {took:.1f} s"
    assert_marked(read_nb(out), failing=1, banner="timed out", total=3)
    sandbox.assert_clean([in_process_ipc_dir()])


# -- the output cannot be written -----------------------------------------------------------------

GROW = "print('x' * 400_000, flush=True)\nimport time; time.sleep(60)"


def test_output_folder_replaced_by_a_file_mid_run(sandbox, tmp_path):  # noqa: F811
    """The output's folder disappears and a file takes its place while a cell runs: the next
    save fails, the run stops with exit 9 naming the path, the kernel is shut down."""
    folder = tmp_path / "results"
    out = folder / "out.ipynb"
    sabotage = (
        f"import shutil; shutil.rmtree({str(folder)!r}); open({str(folder)!r}, 'w').close()\n"
        "print('sabotaged', flush=True)\nimport time; time.sleep(60)"
    )
    src = write(tmp_path / "in.ipynb", ["1", sabotage, "2"])
    code, stderr, took = run_to_end(sandbox, src, out)
    assert code == 9, stderr
    last = stderr.strip().splitlines()[-1]
    assert "output not saved" in last and str(out) in last and "Traceback" not in stderr, last
    assert took < 15, f"took {took:.1f} s"
    assert folder.is_file()  # nothing written over the file that took the folder's place
    sandbox.assert_clean()


@pytest.fixture
def small_disk(tmp_path):
    """A 200 KiB tmpfs: a real 'No space left on device' (needs root, as on CI)."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_disk_full_mid_run(sandbox, tmp_path, small_disk):  # noqa: F811
    """The disk fills up during the run: exit 9 saying so, kernel shut down, and the last good
    save on disk is still a complete, readable notebook (writes are atomic)."""
    out = small_disk / "out.ipynb"
    src = write(tmp_path / "in.ipynb", ["print('small')", GROW, "2"])
    code, stderr, took = run_to_end(sandbox, src, out)
    assert code == 9, stderr
    last = stderr.strip().splitlines()[-1]
    assert "output not saved" in last and "No space left on device" in last, last
    assert "Traceback" not in stderr and took < 15, (took, stderr)
    saved = read_nb(out)  # the previous complete save
    assert len(saved["cells"]) == 3 and saved["metadata"]["papermill"]["input_path"] == str(src)
    assert not [p for p in small_disk.iterdir() if p.name != "out.ipynb"]  # no temp files
    sandbox.assert_clean()


def test_failing_remote_store(sandbox, tmp_path):  # noqa: F811
    """A store that starts refusing writes (quota, full bucket): OutputError (exit 9) from the
    API, the kernel shut down, detection at the next save."""
    import errno

    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    class FullFS(MemoryFileSystem):
        protocol = "fullfs"
        root_marker = "/"
        store: dict = {}
        pseudo_dirs = [""]
        allowed = 1

        def _open(self, path, mode="rb", **kwargs):
            if "w" in mode:
                if FullFS.allowed <= 0:
                    raise OSError(errno.ENOSPC, "No space left on device")
                FullFS.allowed -= 1
            return super()._open(path, mode, **kwargs)

    fsspec.register_implementation("fullfs", FullFS, clobber=True)
    src = write(tmp_path / "in.ipynb", ["print('a', flush=True)", GROW, "2"])
    t0 = time.monotonic()
    result = paramill.run(src, "fullfs://bucket/out.ipynb", autosave_cell_every=1)
    took = time.monotonic() - t0
    assert isinstance(result.error, OutputError) and result.error.exit_code == 9
    assert "No space left on device" in result.error.message
    assert took < 15, f"took {took:.1f} s"
    sandbox.assert_clean([in_process_ipc_dir()])


# -- strict mode: errors that are not error outputs -----------------------------------------------

STRICT_CASES = {
    "raises-exception tag": ("code", "raise ValueError('tagged')", "raises-exception"),
    "traceback on stderr": (
        "import traceback\ntry:\n    {}['missing']\nexcept KeyError:\n    traceback.print_exc()"
    ),
    "exception in a thread": (
        "import threading\nt = threading.Thread(target=lambda: 1 / 0); t.start(); t.join()"
    ),
    "traceback as a display": (
        "from IPython.display import display\n"
        "display({'text/plain': 'Traceback (most recent call last):\\n  File \"x\"\\n"
        "RuntimeError: shown'}, raw=True)"
    ),
}


@pytest.mark.parametrize("case", list(STRICT_CASES))
def test_strict_fails_on_hidden_errors(sandbox, tmp_path, case):  # noqa: F811
    src = write(tmp_path / "in.ipynb", ["x = 1", STRICT_CASES[case], "print('after')"])
    out = tmp_path / "out.ipynb"
    lenient = paramill.run(src, None)
    assert lenient.status == "completed", lenient.error  # without --strict: not a failure
    code, stderr, _ = run_to_end(sandbox, src, out, "--strict")
    assert code == 1, stderr
    assert stderr.strip().splitlines()[-1].startswith("paramill: error: cell 1"), stderr
    saved = read_nb(out)
    assert ERROR_TAG in saved["cells"][0]["metadata"]["tags"]
    assert ERROR_TAG in saved["cells"][2]["metadata"]["tags"]  # anchor above the cell
    assert saved["metadata"]["papermill"]["exception"] is True
    allowed = start_cli(sandbox, src, out, "--strict", "--allow-errors")
    assert allowed.wait(60) == 0
    sandbox.assert_clean([in_process_ipc_dir()])
