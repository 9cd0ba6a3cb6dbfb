"""Helpers for the fault, load and bad-input tests: an isolated Jupyter runtime, leftover checks.

Each test gets its own Jupyter runtime dir (connection files) and temp dir (paramill's IPC
socket folder), so "nothing left behind" is checked against this test's files and kernels only,
not against other test sessions running on the same machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from paramill.kernel.ipc import IPC_LOCK
from tests.conftest import PARAMILL


def kernels_using(runtime_dir: Path | str) -> set[int]:
    """PIDs of live kernel processes whose connection file is in ``runtime_dir``."""
    needle = os.fsencode(str(runtime_dir))
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmd and state != b"Z":
            pids.add(int(entry))
    return pids


class Sandbox:
    """Where one test's kernels put their files; ``assert_clean`` proves nothing was left.

    ``tmp`` is TMPDIR (connection files, IPC socket folders), ``runtime`` is the Jupyter runtime
    dir, ``jupyter_path`` holds extra kernelspecs.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtime = root / "jupyter-runtime"
        # short: IPC socket paths under it must fit in 107 bytes
        self.tmp = Path(tempfile.mkdtemp(prefix="pm-sbx-", dir="/tmp"))
        self.jupyter_path = root / "jupyter-data"
        for folder in (self.runtime, self.jupyter_path / "kernels"):
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        """Environment for a paramill subprocess: its runtime, temp and kernelspec folders."""
        extra = os.pathsep + os.environ["JUPYTER_PATH"] if os.environ.get("JUPYTER_PATH") else ""
        return {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(self.runtime),
            "TMPDIR": str(self.tmp),
            "JUPYTER_PATH": str(self.jupyter_path) + extra,
        }

    def add_kernelspec(self, name: str, argv: list[str]) -> None:
        folder = self.jupyter_path / "kernels" / name
        folder.mkdir(parents=True, exist_ok=True)
        spec = {"argv": argv, "display_name": name, "language": "python"}
        (folder / "kernel.json").write_text(json.dumps(spec))

    def add_slow_start_kernel(self, delay: float, name: str = "slowstart") -> str:
        """A python kernel that sleeps ``delay`` seconds before it starts listening."""
        code = (
            f"import time; time.sleep({delay}); "
            "from ipykernel.kernelapp import launch_new_instance; launch_new_instance()"
        )
        self.add_kernelspec(name, [sys.executable, "-c", code, "-f", "{connection_file}"])
        return name

    def leftovers(self, ipc_dirs: list[Path] | None = None) -> dict[str, list]:
        found: dict[str, list] = {
            "kernels": sorted(kernels_using(self.tmp) | kernels_using(self.runtime)),
            # jupyter_client writes a lone manager's connection file with mkstemp (TMPDIR);
            # multi-kernel managers write to the runtime dir
            "connection files": sorted(
                p.name for p in [*self.tmp.glob("*.json"), *self.runtime.glob("*.json")]
            ),
            "ipc files": [],
        }
        for folder in ipc_dirs if ipc_dirs is not None else list(self.tmp.glob("paramill-ipc-*")):
            if folder.exists():  # its lock file is the folder's own, held while its owner lives
                names = (p.name for p in folder.iterdir())
                found["ipc files"] += sorted(n for n in names if n != IPC_LOCK)
        return found

    def assert_clean(self, ipc_dirs: list[Path] | None = None, wait: float = 5.0) -> None:
        """No kernel process, connection file or IPC socket of this test remains."""
        deadline = time.monotonic() + wait
        while True:
            left = self.leftovers(ipc_dirs)
            if not any(left.values()):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"left behind: {left}")
            time.sleep(0.05)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """Kernels started in this test (in-process or by a subprocess) use the sandbox's folders."""
    box = Sandbox(tmp_path / "sandbox")
    for key, value in box.env.items():
        if key in ("JUPYTER_RUNTIME_DIR", "JUPYTER_PATH"):
            monkeypatch.setenv(key, value)
    monkeypatch.setattr(tempfile, "tempdir", str(box.tmp))
    yield box
    shutil.rmtree(box.tmp, ignore_errors=True)


def in_process_ipc_dir() -> Path:
    from paramill.kernel import ipc as kernels

    return Path(kernels.ipc_dir())


def wait_for(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def signal_kernel_when_ready(pid_file: Path, sig: int, delay: float = 0.2) -> threading.Thread:
    """From outside: wait for the cell to write its kernel's pid, then send ``sig`` to it.

    Returns the thread; ``thread.sent_at`` is the monotonic time the signal was sent.
    """

    def act() -> None:
        pid = wait_for(lambda: read_pid(pid_file), what="the kernel's pid")
        time.sleep(delay)  # let the cell reach its sleep
        thread.sent_at = time.monotonic()  # type: ignore[attr-defined]
        os.kill(pid, sig)

    thread = threading.Thread(target=act, daemon=True)
    thread.sent_at = None  # type: ignore[attr-defined]
    thread.start()
    return thread


def pid_cell(pid_file: Path, then: str = "import time; time.sleep(120)") -> str:
    """A cell that publishes its kernel's pid (written atomically) and then does ``then``."""
    return (
        "import os\n"
        f"open({str(pid_file) + '.tmp'!r}, 'w').write(str(os.getpid()))\n"
        f"os.replace({str(pid_file) + '.tmp'!r}, {str(pid_file)!r})\n"
        f"{then}"
    )


def start_cli(box: Sandbox, *args: Any, **kw: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [*PARAMILL, *map(str, args)],
        env=box.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def send(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> float:
    proc.send_signal(sig)
    return time.monotonic()
