"""`paramill serve --executor dask`: runs execute on a real Dask cluster (a `dask scheduler` and
a `dask worker` process on 127.0.0.1, stopped by PID), cancels reach the worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from tests.conftest import make_notebook
from tests.serve_support import Server, free_port, notebooks_folder

pytest.importorskip("distributed")
BIN = os.path.dirname(sys.executable)


@pytest.fixture
def cluster(tmp_path):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path / "dask.log", "w")
    scheduler = subprocess.Popen(
        [f"{BIN}/dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--dashboard-address", ":0", "--no-show"], stdout=log, stderr=subprocess.STDOUT)
    worker = subprocess.Popen(
        [f"{BIN}/dask", "worker", address, "--nworkers", "1", "--nthreads", "2",
         "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(tmp_path / "dw")],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PARAMILL_ON_DASK_WORKER": "yes"})
    import distributed

    end = time.monotonic() + 120
    with distributed.Client(address, timeout=120) as client:
        while not client.nthreads():
            assert time.monotonic() < end, (tmp_path / "dask.log").read_text()
            time.sleep(0.1)
    yield address
    for proc in (worker, scheduler):
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_runs_execute_on_the_cluster_and_cancel_reaches_them(cluster, tmp_path):
    folder = notebooks_folder(tmp_path / "nbs")
    nbformat.write(make_notebook([
        ("code", "n = 1", "parameters"),
        "import os\nimport paramill\n"
        "paramill.record('where', os.environ.get('PARAMILL_ON_DASK_WORKER', 'server'))\n"
        "paramill.record('n2', n * 2)",
    ]), folder / "where.ipynb")
    srv = Server(folder, "--executor", "dask", "--scheduler", cluster).start()
    try:
        run = srv.run("where.ipynb", {"n": 21})
        assert run["status"] == "completed", run
        assert run["records"] == {"where": "yes", "n2": 42}  # the kernel ran on the worker
        failed = srv.run("fail.ipynb", {"n": 3})
        assert failed["status"] == "failed" and failed["error"]["evalue"] == "bad n=3"
        _, slow, _ = srv.request("POST", "/api/runs",
                                 {"notebook": "slow.ipynb", "parameters": {"hold": 600}})
        srv.wait_status(slow["id"], ("running",))
        status, _, _ = srv.request("DELETE", f"/api/runs/{slow['id']}")
        assert status == 202
        assert srv.wait_status(slow["id"], ("cancelled", "failed"))["status"] == "cancelled"
    finally:
        assert srv.stop() == 0
