"""`paramill serve` over HTTP: a real server process on 127.0.0.1, real kernels, SQLite history."""

from __future__ import annotations

import json
import signal
import threading
import urllib.request

import pytest

from tests.serve_support import Server, notebooks_folder

SECRET = "sekr-3t-value-7781"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = notebooks_folder(tmp_path_factory.mktemp("serve") / "nbs")
    srv = Server(folder, "--workers", "2", "--secret-env", "api_key=PM_TEST_KEY",
                 env={"PM_TEST_KEY": SECRET}).start()
    yield srv
    assert srv.stop() == 0
    assert not srv.leftover_processes(), "kernels left after the server stopped"


def test_token_required_header_query_cookie(server):
    status, body, _ = server.request("GET", "/api/notebooks", token=False)
    assert status == 401
    status, _, _ = server.request("GET", "/api/notebooks", token=False,
                                  headers={"Authorization": "Bearer wrong"})
    assert status == 401
    # ?token= once, then the cookie carries it
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    with opener.open(f"{server.base}/?token={server.token}") as r:
        assert r.status == 200 and "add.py" in r.read().decode()
    with opener.open(f"{server.base}/api/notebooks") as r:
        assert r.status == 200
    status, spec, _ = server.request("GET", "/openapi.json")
    assert status == 200 and "/api/runs" in spec["paths"] and "/api/runs/{run_id}" in spec["paths"]


def test_notebooks_listed_with_parameters(server):
    status, notebooks, _ = server.request("GET", "/api/notebooks")
    assert status == 200
    by_name = {n["name"]: n for n in notebooks}
    assert {"add.py", "slow.ipynb", "fail.ipynb", "noparams.ipynb"} <= set(by_name)
    assert by_name["add.py"]["parameters"]["x"] == {"type": "int", "default": "1",
                                                    "help": "first number"}
    assert by_name["noparams.ipynb"]["parameters"] == {}
    # a secret the server fills is not a parameter anyone can see or set
    assert "api_key" not in by_name["secret.ipynb"]["parameters"]
    assert "label" in by_name["secret.ipynb"]["parameters"]


def test_run_waits_and_returns_records(server):
    run = server.run("add.py", {"x": 3, "y": 0.5})
    assert run["status"] == "completed", run
    assert run["records"] == {"sum": 3.5, "mode": "fast"}
    assert run["error"] is None and run["duration"] > 0
    assert run["parameters"] == {"x": 3, "y": 0.5}
    status, again, _ = server.request("GET", run["url"])
    assert status == 200 and again["id"] == run["id"] and again["status"] == "completed"
    for key in ("created", "started", "finished"):
        assert again[key]
    # downloads
    status, text, headers = server.request("GET", f"/api/runs/{run['id']}/notebook")
    assert status == 200 and "attachment" in headers["content-disposition"]
    nb = json.loads(text)
    assert nb["metadata"]["papermill"]["parameters"] == {"x": 3, "y": 0.5}
    status, html, _ = server.request("GET", f"/api/runs/{run['id']}/report")
    assert status == 200 and "sum is 3.5" in html
    status, record, _ = server.request("GET", f"/api/runs/{run['id']}/record")
    assert status == 200 and record["records"]["sum"] == 3.5
    # history filters
    status, runs, _ = server.request("GET", "/api/runs?notebook=add.py&status=completed&limit=5")
    assert status == 200 and runs and all(r["notebook"] == "add.py" for r in runs)
    assert run["id"] in [r["id"] for r in runs]


def test_without_wait_answers_202_then_completes(server):
    status, body, _ = server.request("POST", "/api/runs",
                                     {"notebook": "add.py", "parameters": {"mode": "slow"}})
    assert status == 202 and body["url"] == f"/api/runs/{body['id']}"
    run = server.wait_status(body["id"], ("completed", "failed"))
    assert run["status"] == "completed" and run["records"]["mode"] == "slow"


@pytest.mark.parametrize(
    "notebook, parameters, code, named",
    [
        ("add.py", {"x": "three"}, 422, "x"),
        ("add.py", {"mode": "medium"}, 422, "mode"),
        ("add.py", {"nope": 1}, 422, "nope"),
        ("noparams.ipynb", {"a": 1}, 422, "a"),
        ("secret.ipynb", {"api_key": "mine-1234567"}, 422, "api_key"),
        ("missing.ipynb", {}, 404, None),
        ("../add.py", {}, 404, None),
        ("/etc/passwd", {}, 404, None),
        ("http://example.com/x.ipynb", {}, 404, None),
        (".paramill/serve.db", {}, 404, None),
    ],
)
def test_bad_requests_refused_before_a_kernel(server, notebook, parameters, code, named):
    before = len(server.request("GET", "/api/runs?limit=1000")[1])
    status, body, _ = server.request("POST", "/api/runs?wait=5",
                                     {"notebook": notebook, "parameters": parameters})
    assert status == code, body
    if named:
        assert body["parameter"] == named and named in body["detail"]
    assert len(server.request("GET", "/api/runs?limit=1000")[1]) == before  # nothing queued


def test_body_size_limited_and_malformed(server):
    big = b'{"notebook": "add.py", "parameters": {"x": "' + b"9" * (2 << 20) + b'"}}'
    status, _, _ = server.request("POST", "/api/runs", raw=big)
    assert status == 413
    status, _, _ = server.request("POST", "/api/runs", raw=b"{not json")
    assert status == 400
    status, _, _ = server.request("GET", "/api/runs/doesnotexist")
    assert status == 404


def test_failed_run_reports_cell_and_error(server):
    run = server.run("fail.ipynb", {"n": 7})
    assert run["status"] == "failed"
    assert run["error"]["ename"] == "ValueError" and run["error"]["evalue"] == "bad n=7"
    assert run["error"]["cell_index"] == 3  # the injected-parameters cell comes first
    status, html, _ = server.request("GET", f"/api/runs/{run['id']}/report")
    assert status == 200 and "bad n=7" in html


def test_secret_reaches_only_declaring_notebook_and_never_shows(server):
    run = server.run("secret.ipynb", {"label": "y"})
    assert run["status"] == "completed", run
    assert run["records"]["key_length"] == len(SECRET)
    other = server.run("nosecret_declared_elsewhere.ipynb")
    assert other["status"] == "completed" and other["records"]["env_has_secret"] is False
    for path in (run["url"], f"/api/runs/{run['id']}/notebook", f"/api/runs/{run['id']}/report",
                 f"/api/runs/{run['id']}/record", "/api/runs?limit=1000", "/api/notebooks",
                 f"/runs/{run['id']}"):
        _, body, _ = server.request("GET", path)
        assert SECRET not in (body if isinstance(body, str) else json.dumps(body)), path
    stored = b"".join(p.read_bytes() for p in (server.folder / ".paramill").rglob("*")
                      if p.is_file())
    assert SECRET.encode() not in stored
    assert SECRET not in server.log.read_text()


def test_events_stream_progress_and_cancel_running_run(server):
    status, body, _ = server.request("POST", "/api/runs",
                                     {"notebook": "slow.ipynb", "parameters": {"hold": 600}})
    assert status == 202
    run_id = body["id"]
    events = server.events_until(
        run_id, lambda e: e.get("event") == "progress" and "started" in e.get("output", ""))
    assert any(e.get("status") in ("queued", "running") for e in events)
    assert events[-1]["cells_total"] == 7 and events[-1]["cells_done"] >= 2
    # the client that asked disconnected long ago: the run went on regardless
    status, body, _ = server.request("DELETE", f"/api/runs/{run_id}")
    assert status == 202
    run = server.wait_status(run_id, ("cancelled", "failed", "completed"))
    assert run["status"] == "cancelled", run
    status, text, _ = server.request("GET", f"/api/runs/{run_id}/notebook")
    assert status == 200 and "started" in text  # the partial output was saved
    status, _, _ = server.request("DELETE", f"/api/runs/{run_id}")
    assert status == 202  # cancelling again: still cancelled, nothing else happens


def test_cancel_queued_run_and_wait_limit(tmp_path):
    folder = notebooks_folder(tmp_path / "nbs")
    srv = Server(folder, "--workers", "1", "--queue-limit", "1").start()
    try:
        _, first, _ = srv.request("POST", "/api/runs",
                                  {"notebook": "slow.ipynb", "parameters": {"hold": 600}})
        srv.wait_status(first["id"], ("running",))
        # ?wait= at its limit answers 202 with the run as it is
        status, second, _ = srv.request("POST", "/api/runs?wait=0.5",
                                        {"notebook": "add.py", "parameters": {}})
        assert status == 202 and second["status"] == "queued"
        status, body, _ = srv.request("POST", "/api/runs", {"notebook": "add.py"})
        assert status == 429 and "queue full" in body["detail"]
        status, body, _ = srv.request("DELETE", f"/api/runs/{second['id']}")
        assert status == 202 and body["status"] == "cancelled"
        srv.request("DELETE", f"/api/runs/{first['id']}")
        assert srv.wait_status(first["id"], ("cancelled",))["status"] == "cancelled"
        assert srv.run("add.py")["status"] == "completed"  # the worker goes on
    finally:
        assert srv.stop() == 0
    assert not srv.leftover_processes()


def test_restart_keeps_queued_and_marks_interrupted_runs(tmp_path):
    folder = notebooks_folder(tmp_path / "nbs")
    srv = Server(folder, "--workers", "1", "--stop-timeout", "1").start()
    _, running, _ = srv.request("POST", "/api/runs",
                                {"notebook": "slow.ipynb", "parameters": {"hold": 600}})
    srv.wait_status(running["id"], ("running",))
    _, queued, _ = srv.request("POST", "/api/runs", {"notebook": "add.py",
                                                     "parameters": {"x": 5}})
    # SIGTERM: the running run is cancelled after --stop-timeout, the queued one stays queued
    assert srv.stop(signal.SIGTERM) == 0
    assert not srv.leftover_processes()
    srv2 = Server(folder, "--workers", "1").start()
    try:
        assert srv2.request("GET", f"/api/runs/{running['id']}")[1]["status"] == "cancelled"
        done = srv2.wait_status(queued["id"], ("completed", "failed"))
        assert done["status"] == "completed" and done["records"]["sum"] == 7.5
        # a server killed outright leaves a run "running": the next start marks it failed
        _, hung, _ = srv2.request("POST", "/api/runs",
                                  {"notebook": "slow.ipynb", "parameters": {"hold": 600}})
        srv2.wait_status(hung["id"], ("running",))
    finally:
        srv2.stop(signal.SIGKILL)
    # SIGKILL leaves its kernels behind (nothing can stop them): end them here, by PID
    import os

    for pid in srv2.leftover_processes(timeout=0):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    srv3 = Server(folder, "--workers", "1").start()
    try:
        run = srv3.request("GET", f"/api/runs/{hung['id']}")[1]
        assert run["status"] == "failed" and run["error"]["evalue"] == "server stopped"
    finally:
        assert srv3.stop() == 0
    assert not srv3.leftover_processes()


def test_client_disconnect_does_not_stop_run(server):
    def impatient() -> None:
        try:
            server.request("POST", "/api/runs?wait=60",
                           {"notebook": "slow.ipynb", "parameters": {"hold": 1}}, timeout=0.3)
        except OSError:
            pass

    t = threading.Thread(target=impatient)
    t.start()
    t.join()
    runs = server.request("GET", "/api/runs?notebook=slow.ipynb&limit=1")[1]
    run = server.wait_status(runs[0]["id"], ("completed", "failed", "cancelled"))
    assert run["status"] == "completed" and run["parameters"] == {"hold": 1}


def test_notebook_timeout_from_metadata(server):
    run = server.run("hangs.ipynb", wait=300)
    assert run["status"] == "failed", run
    assert run["error"]["ename"] == "RunTimeoutError" and "3" in run["error"]["evalue"]
    assert run["duration"] < 120  # bounded by the notebook's 3 s, not the server's 1 h
    _, text, _ = server.request("GET", f"/api/runs/{run['id']}/notebook")
    assert "going" in text


def test_help_does_not_import_the_web_stack():
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from paramill.cli import main; "
            "r = CliRunner().invoke(main, ['serve', '--help']); assert r.exit_code == 0, r.output; "
            "assert '--secret-env' in r.output; "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'sqlalchemy', 'starlette') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
