"""`paramill serve --db postgresql+psycopg://...`: two server processes sharing a real PostgreSQL
(Debian's package, a throwaway cluster on loopback started here) never run a run twice."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time

import nbformat
import pytest

from tests.conftest import make_notebook
from tests.serve_support import Server, free_port, notebooks_folder

psycopg = pytest.importorskip("psycopg")
PGBINS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
AS_PG = dict(user="postgres", group="postgres", extra_groups=[]) if os.geteuid() == 0 else {}


@pytest.fixture(scope="module")
def postgres():
    assert PGBINS, "run .ci/deps/serve.sh (Debian's postgresql)"
    pgbin = PGBINS[-1]
    d = tempfile.mkdtemp(prefix="pg-")  # not tmp_path: postgres cannot enter root's 0700 dirs
    os.chmod(d, 0o755)
    if AS_PG:
        shutil.chown(d, "postgres", "postgres")
    port = free_port()
    subprocess.run([f"{pgbin}/initdb", "-D", f"{d}/data", "-U", "postgres", "-A", "trust",
                    "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                   check=True, capture_output=True, **AS_PG)
    proc = subprocess.Popen(
        [f"{pgbin}/postgres", "-D", f"{d}/data", "-p", str(port), "-k", d,
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
         "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
        stdout=open(f"{d}/log", "wb"), stderr=subprocess.STDOUT, **AS_PG)
    dsn = f"host=127.0.0.1 port={port} user=postgres"
    end = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(open(f"{d}/log").read())
        try:
            psycopg.connect(dsn, connect_timeout=2).close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE DATABASE serve")
    yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/serve", dsn + " dbname=serve"
    proc.send_signal(signal.SIGINT)  # fast shutdown
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    shutil.rmtree(d, ignore_errors=True)


def test_two_servers_share_postgres_and_never_run_twice(postgres, tmp_path):
    url, dsn = postgres
    folder = notebooks_folder(tmp_path / "nbs")
    ledger = tmp_path / "ledger.txt"
    nbformat.write(make_notebook([
        ("code", "i = 0\nledger = ''", "parameters"),
        "import os\nwith open(ledger, 'a') as f:\n    f.write(f'{i} {os.getppid()}\\n')",
    ]), folder / "count.ipynb")
    a = Server(folder, "--db", url, "--workers", "2").start()
    b = Server(folder, "--db", url, "--workers", "2").start()
    try:
        ids = []
        for i in range(40):  # all submitted to A and B alternately, none waited for
            srv = (a, b)[i % 2]
            status, body, _ = srv.request("POST", "/api/runs", {
                "notebook": "count.ipynb", "parameters": {"i": i, "ledger": str(ledger)}})
            assert status == 202, body
            ids.append(body["id"])
        runs = [a.wait_status(run_id, ("completed", "failed", "cancelled")) for run_id in ids]
        assert [r["status"] for r in runs] == ["completed"] * 40
        seen = [int(line.split()[0]) for line in ledger.read_text().splitlines()]
        assert sorted(seen) == list(range(40))  # each run executed exactly once
        with psycopg.connect(dsn) as c:
            servers = c.execute("SELECT server, count(*) FROM paramill_runs "
                                "WHERE notebook = 'count.ipynb' GROUP BY server").fetchall()
        assert len(servers) == 2 and all(n > 0 for _, n in servers), servers  # both took runs
        # either server answers for any run; a cancel sent to B stops a run A or B executes
        status, slow, _ = a.request("POST", "/api/runs",
                                    {"notebook": "slow.ipynb", "parameters": {"hold": 600}})
        b.wait_status(slow["id"], ("running",))
        status, _, _ = b.request("DELETE", f"/api/runs/{slow['id']}")
        assert status == 202
        assert a.wait_status(slow["id"], ("cancelled", "failed"))["status"] == "cancelled"
        # a POST with ?wait= answers when the run ends, whichever server ran it
        for srv in (a, b, a, b):
            done = srv.run("add.py", {"x": 2})
            assert done["status"] == "completed" and done["records"]["sum"] == 4.5
    finally:
        assert a.stop() == 0
        assert b.stop() == 0
    assert not a.leftover_processes() and not b.leftover_processes()
