"""The kernel-source interface on real kernels: a custom source, run events, cancel tokens, and a
kernel started by someone else (ConnectionSource)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

import paramill
from paramill import CancelToken, ConnectionSource, KernelRequest, LocalKernelSource, RunStatus
from paramill.errors import KernelError, RunCancelledError

from .conftest import make_notebook
from .test_pool import alive, wait_dead


def write(tmp_path: Path, cells: list, name: str = "in.ipynb") -> Path:
    path = tmp_path / name
    nbformat.write(make_notebook(cells), path)
    return path


class CountingSource(LocalKernelSource):
    """A custom source: local kernels, counting what it is asked for and what it gives back."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[KernelRequest] = []
        self.released: list[int | None] = []

    async def acquire(self, request: KernelRequest):
        self.requests.append(request)
        return await super().acquire(request)

    async def release(self, kernel, *, grace: float = 3.0) -> None:
        self.released.append(kernel.pid)
        await super().release(kernel, grace=grace)


def test_a_custom_source_gives_the_run_its_kernel(tmp_path):
    src = write(tmp_path, ["import os\nprint(os.getpid(), os.getcwd(), os.environ['SOURCE_T'])"])
    source = CountingSource()
    with source:
        result = paramill.run(
            src,
            tmp_path / "out.ipynb",
            kernel_source=source,
            cwd=tmp_path,
            kernel_env={"SOURCE_T": "yes"},
        )
    assert result.status == RunStatus.COMPLETED and str(result.status) == "completed"
    (request,) = source.requests
    assert request.kernel_name == "python3" and request.cwd == str(tmp_path)
    assert request.env == {"SOURCE_T": "yes"}
    pid, cwd, env = result.notebook.cells[0].outputs[0]["text"].split()
    assert source.released == [int(pid)] and cwd == str(tmp_path) and env == "yes"
    assert wait_dead([int(pid)]) == []


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def cell_started(self, index, cell) -> None:
        self.events.append(("started", index))

    def cell_finished(self, index, cell) -> None:
        self.events.append(("finished", index, cell.metadata.papermill["status"]))

    def output(self, index, output) -> None:
        self.events.append(("output", index, output.get("text", "").strip()))


def test_events_fire_in_order(tmp_path):
    src = write(tmp_path, ["print('one')", ("md", "# text"), "print('two')\nprint('three')"])
    recorder = Recorder()
    result = paramill.run(src, None, events=recorder)
    assert result.ok
    outputs = [e for e in recorder.events if e[0] == "output"]
    assert recorder.events[0] == ("started", 0)
    assert recorder.events[-1] == ("finished", 2, "completed")
    assert [e for e in recorder.events if e[0] != "output"] == [
        ("started", 0),
        ("finished", 0, "completed"),
        ("started", 1),
        ("finished", 1, "completed"),
        ("started", 2),
        ("finished", 2, "completed"),
    ]
    assert outputs[0] == ("output", 0, "one")
    assert {e[1] for e in outputs[1:]} == {2}
    assert recorder.events.index(outputs[0]) < recorder.events.index(("finished", 0, "completed"))


def test_a_cancel_token_stops_a_running_cell(tmp_path):
    src = write(
        tmp_path,
        [
            "import os\nprint(os.getpid(), flush=True)",
            "import time\nprint('sleeping', flush=True)\ntime.sleep(120)",
            "print('never')",
        ],
    )
    out = tmp_path / "out.ipynb"
    token = CancelToken()
    seen: list[str] = []

    class CancelWhenSleeping:
        def output(self, index, output) -> None:
            seen.append(output.get("text", ""))
            if "sleeping" in output.get("text", ""):
                threading.Timer(0.5, token.cancel).start()

    began = time.monotonic()
    result = paramill.run(src, out, cancel=token, events=CancelWhenSleeping())
    assert time.monotonic() - began < 60  # not the 120 s cell
    assert result.status == RunStatus.CANCELLED
    assert isinstance(result.error, RunCancelledError) and result.error.cell_index == 1
    pid = int(seen[0].split()[0])
    assert wait_dead([pid]) == []  # no orphan kernel
    written = nbformat.read(out, as_version=4)
    statuses = [c.metadata.papermill["status"] for c in written.cells if c.cell_type == "code"]
    assert statuses == ["completed", "failed", "pending"]
    code = [c for c in written.cells if c.cell_type == "code"]
    (stopped,) = [c for c in code if c.metadata.papermill["status"] == "failed"]
    assert "sleeping" in stopped.outputs[0]["text"]  # the partial output is saved


def test_a_token_cancelled_before_the_run_starts_no_kernel(tmp_path):
    src = write(tmp_path, ["print('ran')"])
    token = CancelToken()
    token.cancel()
    source = CountingSource()
    with source:
        result = paramill.run(src, tmp_path / "out.ipynb", cancel=token, kernel_source=source)
    assert result.status == RunStatus.CANCELLED
    assert source.requests == []  # no kernel was asked for
    (cell,) = [c for c in result.notebook.cells if c.cell_type == "code"]
    assert cell.metadata.papermill["status"] == "pending" and cell.outputs == []
    written = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert written.metadata.papermill["exception"] is True


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def independent_kernel(tmp_path):
    """An ipykernel started as its own process (not by paramill), stopped by PID at the end."""
    names = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
    info = dict(zip(names, free_ports(5), strict=True))
    info.update(ip="127.0.0.1", transport="tcp", key="a-key", signature_scheme="hmac-sha256")
    conn = tmp_path / "conn.json"
    conn.write_text(json.dumps(info))
    process = subprocess.Popen(
        [sys.executable, "-m", "ipykernel_launcher", "-f", str(conn)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        yield conn, process
    finally:
        process.kill()
        process.wait()


def test_a_connection_source_runs_on_a_kernel_it_leaves_running(tmp_path, independent_kernel):
    conn, process = independent_kernel
    code = "import os\nprint(os.getpid())\ncounter = globals().get('counter', 0) + 1"
    src = write(tmp_path, [code])
    source = ConnectionSource(conn, timeout=60)
    first = paramill.run(src, tmp_path / "one.ipynb", kernel_source=source)
    assert first.status == RunStatus.COMPLETED, first.error
    assert int(first.notebook.cells[0].outputs[0]["text"]) == process.pid
    assert process.poll() is None and alive(process.pid)  # never shut down by paramill
    second = paramill.run(
        write(tmp_path, ["print(counter)"], "two.ipynb"), None, kernel_source=source
    )
    assert second.ok and second.notebook.cells[0].outputs[0]["text"].strip() == "1"
    time.sleep(0.5)
    assert process.poll() is None


def test_a_connection_source_to_a_dead_address_fails_clearly(tmp_path):
    shell, iopub, stdin, control, hb = free_ports(5)
    info = {
        "ip": "127.0.0.1",
        "transport": "tcp",
        "shell_port": shell,
        "iopub_port": iopub,
        "stdin_port": stdin,
        "control_port": control,
        "hb_port": hb,
        "key": "k",
        "signature_scheme": "hmac-sha256",
    }
    src = write(tmp_path, ["print('never')"])
    began = time.monotonic()
    expected = rf"the kernel at tcp://127.0.0.1:{shell} \(connection info\) did not answer"
    with pytest.raises(KernelError, match=expected):
        paramill.run(src, None, kernel_source=ConnectionSource(info, timeout=2))
    assert time.monotonic() - began < 30  # from the 2 s timeout, not the 60 s start timeout
    # the CLI's one-line error: the same message, exit code of a kernel error
    cli = subprocess.run(
        [sys.executable, "-c", CLI_DEAD, str(src), json.dumps(info)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == "KernelError"


CLI_DEAD = """
import json, sys
import paramill
from paramill.errors import KernelError
try:
    paramill.execute_notebook(sys.argv[1], None,
        kernel_source=paramill.ConnectionSource(json.loads(sys.argv[2]), timeout=1))
except KernelError as exc:
    print(type(exc).__name__)
"""
