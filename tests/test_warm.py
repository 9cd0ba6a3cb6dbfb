"""Warm kernels (paramill --warm): real CLI runs, real warm servers in a private folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest

from paramill import warm

from .conftest import PARAMILL, make_notebook, run_cli

pytestmark = pytest.mark.timeout(300)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def wait_until(check, timeout: float = 90, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def serving(**match):
    """The serving servers, once there is exactly one matching and nothing starting."""

    def check():
        found = warm.servers()
        if any(s["state"] == "starting" for s in found):
            return None
        live = [s for s in found if s["state"] == "serving" and s["kind"] == "kernel"]
        ok = [
            s for s in live if all(m(s[k]) if callable(m) else s[k] == m for k, m in match.items())
        ]
        return ok[0] if len(live) == 1 and ok else None

    return wait_until(check, what=f"one serving warm kernel server {match}")


def kernel_servers() -> list[dict]:
    return [s for s in warm.servers() if s.get("kind") == "kernel"]


@pytest.fixture
def warm_dir(monkeypatch):
    """A private warm folder (short: socket paths are limited) for this test's servers; every
    server started in it is stopped and gone at the end."""
    base = tempfile.mkdtemp(prefix="pw-", dir="/tmp")
    folder = os.path.join(base, "w")
    monkeypatch.setenv(warm.DIR_VAR, folder)
    monkeypatch.setenv(warm.IDLE_VAR, "120")
    monkeypatch.delenv("PARAMILL_WARM", raising=False)
    seen: set[int] = set()
    yield Path(folder), seen
    if os.path.isdir(folder):
        seen.update(s["pid"] for s in warm.servers() if s.get("pid"))
        warm.stop_all()
        assert warm.servers() == []
    for pid in seen:
        wait_until(lambda pid=pid: _gone(pid), 20, f"server {pid} gone")
    shutil.rmtree(base, ignore_errors=True)


def write(path: Path, cells: list, **kw) -> Path:
    nbformat.write(make_notebook(cells, **kw), path)
    return path


def outputs(path: Path) -> list[str]:
    nb = nbformat.read(path, 4)
    return [
        "".join(o.get("text", "") for o in c.get("outputs", []) if o.get("name") == "stdout")
        for c in nb.cells
        if c.cell_type == "code"
    ]


IDENTITY = "import os, random, json\nprint(os.getpid(), os.getppid(), random.random())"


def ids(path: Path) -> tuple[int, int, str]:
    pid, ppid, rnd = outputs(path)[-1].split()
    return int(pid), int(ppid), rnd


def test_first_run_is_cold_and_starts_a_server_then_runs_fork_from_it(tmp_path, warm_dir):
    folder, seen = warm_dir
    nb = write(tmp_path / "in.ipynb", [IDENTITY])
    first = run_cli("--warm", nb, tmp_path / "o1.ipynb")
    assert first.returncode == 0, first.stderr
    assert "no warm kernel server yet" in first.stderr
    assert oct(os.stat(folder).st_mode & 0o777) == "0o700"
    server = serving(preload=lambda p: "json" in p)  # the notebook's imports, remembered
    seen.add(server["pid"])
    _, cold_parent, _ = ids(tmp_path / "o1.ipynb")
    assert cold_parent != server["pid"]
    # later runs, of any process: forks of that server, each its own new process
    for env in ({}, {"PARAMILL_WARM": "1"}):
        args = () if env else ("--warm",)
        done = run_cli(*args, nb, tmp_path / "o2.ipynb", env=env)
        assert done.returncode == 0, done.stderr
        pid, ppid, _ = ids(tmp_path / "o2.ipynb")
        assert ppid == server["pid"] and pid != server["pid"]
        assert _gone(pid)  # nothing left running
    assert kernel_servers()[0]["forks"] == 2


def test_two_concurrent_runs_share_one_server(tmp_path, warm_dir):
    folder, seen = warm_dir
    nb = write(tmp_path / "in.ipynb", ["import time\ntime.sleep(1)", IDENTITY])
    assert run_cli("--warm", nb, tmp_path / "o0.ipynb").returncode == 0
    server = serving()
    seen.add(server["pid"])
    procs = [
        subprocess.Popen(
            [*PARAMILL, "--warm", str(nb), str(tmp_path / f"o{i}.ipynb")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    (a, pa, ra), (b, pb, rb) = ids(tmp_path / "o1.ipynb"), ids(tmp_path / "o2.ipynb")
    assert pa == pb == server["pid"] and a != b
    assert ra != rb  # `random` re-seeded in each fork
    after = kernel_servers()
    assert [s["pid"] for s in after] == [server["pid"]] and after[0]["kernels"] == []


def test_a_run_leaves_nothing_for_the_next(tmp_path, warm_dir):
    """Module mutations, variables, env, cwd, imports beyond the preloads: all per fork. The
    run's environment reaches its kernel only, never the server."""
    folder, seen = warm_dir
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    nb = write(
        tmp_path / "in.ipynb",
        [
            "import statistics, os, sys",
            "print(statistics.mean([1, 3]), getattr(statistics, 'MARK', None), 'leftover' in dir(),"
            " os.environ.get('MUTATED'), os.environ.get('RUN_ONLY_VALUE'), os.getcwd(),"
            " 'wave' in sys.modules)",
            "statistics.mean = lambda *a, **k: 'hijacked'\nstatistics.MARK = 1\nleftover = 2\n"
            "os.environ['MUTATED'] = '1'\n__import__('wave')",  # no import statement: no preload
            IDENTITY,
        ],
    )
    assert run_cli("--warm", nb, tmp_path / "o0.ipynb").returncode == 0
    server = serving(preload=lambda p: "statistics" in p)
    seen.add(server["pid"])
    for i, where in enumerate(("a", "b"), 1):
        # a spare kernel (started ahead, in the server's cwd and env) takes the run's
        wait_until(lambda: kernel_servers()[0]["spare_ready"], what="a spare kernel")
        env = {"RUN_ONLY_VALUE": f"value-{i}"}
        done = run_cli("--warm", nb, tmp_path / f"o{i}.ipynb", "--cwd", tmp_path / where, env=env)
        assert done.returncode == 0, done.stderr
        first = outputs(tmp_path / f"o{i}.ipynb")[1].strip()
        assert first == f"2 None False None value-{i} {tmp_path / where} False"
        assert ids(tmp_path / f"o{i}.ipynb")[1] == server["pid"]
    assert kernel_servers()[0]["spares_used"] == 2
    with open(f"/proc/{server['pid']}/environ", "rb") as f:
        assert b"RUN_ONLY_VALUE" not in f.read()


def test_server_killed_mid_run_fails_cleanly_then_runs_fall_back(tmp_path, warm_dir):
    folder, seen = warm_dir
    nb = write(tmp_path / "in.ipynb", [IDENTITY, "import time\ntime.sleep(60)"])
    warmup = write(tmp_path / "w.ipynb", [IDENTITY, "import time"])  # the same imports
    assert run_cli("--warm", warmup, tmp_path / "w.out").returncode == 0
    server = serving()
    seen.add(server["pid"])
    proc = subprocess.Popen(
        [*PARAMILL, "--warm", str(nb), str(tmp_path / "o1.ipynb")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def running() -> int | None:  # the first cell's output saved: the kernel runs the sleep
        try:
            return int(outputs(tmp_path / "o1.ipynb")[0].split()[0])
        except (OSError, ValueError, IndexError):
            return None

    kernel = wait_until(running, what="the kernel running")
    assert kernel in kernel_servers()[0]["kernels"]
    os.kill(server["pid"], signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 138, err  # the kernel died with its server: a clean failure
    assert "died" in err
    wait_until(lambda: _gone(kernel), 10, "the kernel gone")  # no orphan
    # the next run: one line about it, a cold kernel, and a new server
    quick = write(tmp_path / "q.ipynb", [IDENTITY])
    done = run_cli("--warm", quick, tmp_path / "o2.ipynb")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("is gone (crashed or killed)") == 1
    assert ids(tmp_path / "o2.ipynb")[1] != server["pid"]
    new = serving(pid=lambda p: p != server["pid"])
    seen.add(new["pid"])


def test_a_package_installed_between_runs_replaces_the_server(tmp_path, warm_dir, monkeypatch):
    folder, seen = warm_dir
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(site))
    nb = write(tmp_path / "in.ipynb", [IDENTITY])
    assert run_cli("--warm", nb, tmp_path / "o0.ipynb").returncode == 0
    old = serving()
    seen.add(old["pid"])
    assert run_cli("--warm", nb, tmp_path / "o1.ipynb").returncode == 0
    assert ids(tmp_path / "o1.ipynb")[1] == old["pid"]
    # what pip writes: a module and its dist-info
    (site / "tinypkg.py").write_text("VALUE = 42\n")
    dist = site / "tinypkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n")
    use = write(tmp_path / "use.ipynb", ["import tinypkg\nprint(tinypkg.VALUE)", IDENTITY])
    done = run_cli("--warm", use, tmp_path / "o2.ipynb")
    assert done.returncode == 0, done.stderr
    assert outputs(tmp_path / "o2.ipynb")[0].strip() == "42"
    assert ids(tmp_path / "o2.ipynb")[1] != old["pid"]  # never the stale server
    new = serving(key=lambda k: k != old["key"])  # ... and the stale one retired
    seen.add(new["pid"])
    wait_until(lambda: _gone(old["pid"]), 30, "the stale server gone")
    done = run_cli("--warm", use, tmp_path / "o3.ipynb")
    assert done.returncode == 0, done.stderr
    assert ids(tmp_path / "o3.ipynb")[1] == new["pid"]


NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another OS user")
def test_another_user_is_refused(tmp_path, warm_dir):
    """Another user (nobody) cannot reach the socket; a warm folder that is not ours is refused
    (the run is cold), whoever made it."""
    folder, seen = warm_dir
    nb = write(tmp_path / "in.ipynb", [IDENTITY])
    assert run_cli("--warm", nb, tmp_path / "o0.ipynb").returncode == 0
    server = serving()
    seen.add(server["pid"])
    # nobody, with the system's python (the venv's lives under root's home)
    sock = str(folder / f"{server['key']}.sock")
    code = (
        "import os, socket\n"
        f"try: socket.socket(socket.AF_UNIX).connect({sock!r})\n"
        "except PermissionError: print('refused')\n"
        f"try: os.listdir({str(folder)!r})\n"
        "except PermissionError: print('refused')"
    )
    probe = subprocess.run(
        ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.split() == ["refused", "refused"], probe.stderr
    assert kernel_servers()[0]["forks"] == 0
    # a folder of nobody's (where someone else could have put a socket): we refuse it
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, NOBODY, NOBODY)
    done = run_cli("--warm", nb, tmp_path / "o1.ipynb", env={warm.DIR_VAR: str(theirs)})
    assert done.returncode == 0, done.stderr
    assert f"warm folder {theirs} belongs to uid {NOBODY}, not you: refused" in done.stderr
    assert ids(tmp_path / "o1.ipynb")[1] != server["pid"]
    assert os.listdir(theirs) == []


def test_idle_server_exits(tmp_path, warm_dir, monkeypatch):
    folder, seen = warm_dir
    monkeypatch.setenv(warm.IDLE_VAR, "2")
    nb = write(tmp_path / "in.ipynb", [IDENTITY])
    assert run_cli("--warm", nb, tmp_path / "o0.ipynb").returncode == 0
    server = serving(idle_timeout=2)
    seen.add(server["pid"])
    wait_until(lambda: _gone(server["pid"]), 60, "the idle server gone")
    wait_until(lambda: warm.servers() == [], 60, "the idle command-line server gone too")
    assert not (folder / f"{server['key']}.sock").exists()


def test_status_and_stop(tmp_path, warm_dir):
    folder, seen = warm_dir
    nb = write(tmp_path / "in.ipynb", ["import json, textwrap", "x = 1"])
    assert run_cli("--warm", nb, tmp_path / "o0.ipynb").returncode == 0
    server = serving(preload=lambda p: {"json", "textwrap"} <= set(p))
    seen.add(server["pid"])
    status = run_cli("warm", "status")
    assert status.returncode == 0, status.stderr
    assert server["key"] in status.stdout and "json, textwrap" in status.stdout
    assert f"pid {server['pid']}" in status.stdout and "age " in status.stdout
    listed = json.loads(run_cli("warm", "status", "--json").stdout)
    assert listed[0]["describe"]["python"] == sys.executable
    stop = run_cli("warm", "stop")
    assert stop.returncode == 0 and f"stopped {server['key']}" in stop.stdout
    assert _gone(server["pid"])
    assert "no warm servers" in run_cli("warm", "status").stdout


def test_an_unsafe_folder_means_a_cold_run(tmp_path, monkeypatch):
    folder = tmp_path / "w"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    monkeypatch.setenv(warm.DIR_VAR, str(folder))
    nb = write(tmp_path / "in.ipynb", [IDENTITY])
    done = run_cli("--warm", nb, tmp_path / "o.ipynb")
    assert done.returncode == 0, done.stderr
    assert "has mode 755, not 700: refused" in done.stderr
    assert os.listdir(folder) == []


def test_non_ipykernel_kernels_run_cold(tmp_path, warm_dir):
    folder, seen = warm_dir
    nb = write(tmp_path / "in.ipynb", ["echo hello"], kernel="bash", language="bash")
    done = run_cli("--warm", nb, tmp_path / "o.ipynb", "--log-level", "DEBUG")
    assert done.returncode == 0, done.stderr
    assert "is not an ipykernel; starting it cold" in done.stderr
    assert outputs(tmp_path / "o.ipynb")[0].strip() == "hello"
    assert kernel_servers() == []


def test_concurrent_first_runs_start_one_server(tmp_path, warm_dir):
    folder, seen = warm_dir
    nb = write(tmp_path / "in.ipynb", [IDENTITY])
    results = []
    threads = [
        threading.Thread(
            target=lambda i=i: results.append(run_cli("--warm", nb, tmp_path / f"{i}"))
        )
        for i in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0, 0, 0]
    server = serving()
    seen.add(server["pid"])
    time.sleep(1)
    assert len([s for s in kernel_servers() if s["state"] != "gone"]) == 1
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(folder / f"{server['key']}.sock"))


def test_a_forked_command_line_keeps_exit_codes_stdio_and_signals(tmp_path, warm_dir):
    """A warm run's command line is itself a fork of a warm paramill: it reads our stdin,
    writes our stdout/stderr, exits with the run's code and gets our signals."""
    folder, seen = warm_dir
    nb = write(tmp_path / "in.ipynb", [IDENTITY, "import time\ntime.sleep(60)"])
    failing = write(tmp_path / "fail.ipynb", [IDENTITY, "raise ValueError('boom')"])
    assert run_cli("--warm", failing, tmp_path / "o0.ipynb").returncode == 1
    wait_until(
        lambda: (
            {s.get("kind") for s in warm.servers() if s["state"] == "serving"} == {"kernel", "cli"}
            and not [s for s in warm.servers() if s["state"] == "starting"]
        ),
        what="both servers",
    )
    cli = next(s for s in warm.servers() if s["kind"] == "cli")
    seen.update(s["pid"] for s in warm.servers())
    done = run_cli("--warm", "-", "-", input=failing.read_text())  # stdin in, stdout out
    assert done.returncode == 1
    assert "ValueError: boom" in done.stderr and "paramill: error" in done.stderr
    cells = nbformat.reads(done.stdout, 4).cells
    errors = [o for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert [e["evalue"] for e in errors] == ["boom"]
    assert next(s for s in warm.servers() if s["kind"] == "cli")["forks"] == cli["forks"] + 1
    proc = subprocess.Popen(
        [*PARAMILL, "--warm", str(nb), str(tmp_path / "o1.ipynb")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def running() -> int | None:
        try:
            return int(outputs(tmp_path / "o1.ipynb")[0].split()[0])
        except (OSError, ValueError, IndexError):
            return None

    kernel = wait_until(running, what="the kernel running")
    proc.send_signal(signal.SIGTERM)  # as a scheduler stops a task
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert (
        "cancelled"
        in nbformat.read(tmp_path / "o1.ipynb", 4).metadata.papermill.get("status", "cancelled")
        or "terminated" in err
    )
    wait_until(lambda: _gone(kernel), 20, "the kernel gone")


def test_cli_server_killed_mid_run_fails_cleanly(tmp_path, warm_dir):
    folder, seen = warm_dir
    nb = write(tmp_path / "in.ipynb", [IDENTITY, "import time\ntime.sleep(60)"])
    warmup = write(tmp_path / "w.ipynb", [IDENTITY, "import time"])
    assert run_cli("--warm", warmup, tmp_path / "w.out").returncode == 0
    serving()
    wait_until(
        lambda: [s for s in warm.servers() if s.get("kind") == "cli" and s["state"] == "serving"],
        what="the command-line server",
    )
    cli = next(s for s in warm.servers() if s.get("kind") == "cli")
    seen.update(s["pid"] for s in warm.servers() if s.get("pid"))
    proc = subprocess.Popen(
        [*PARAMILL, "--warm", str(nb), str(tmp_path / "o1.ipynb")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def running() -> int | None:
        try:
            return int(outputs(tmp_path / "o1.ipynb")[0].split()[0])
        except (OSError, ValueError, IndexError):
            return None

    kernel = wait_until(running, what="the kernel running")
    run = next(s for s in warm.servers() if s.get("kind") == "cli")["kernels"][0]
    os.kill(cli["pid"], signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1] == (
        "paramill: error: the warm paramill server died during the run"
    )
    wait_until(lambda: _gone(run) and _gone(kernel), 20, "the run and its kernel gone")
    # the next run starts on its own (and a new command-line server after it)
    done = run_cli("--warm", nb.with_name("w.ipynb"), tmp_path / "o2.ipynb")
    assert done.returncode == 0, done.stderr


def test_pyproject_config_turns_warm_on_and_sets_the_idle_time(tmp_path, warm_dir):
    folder, seen = warm_dir
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.paramill]\nwarm = true\nwarm_idle = 45\n")
    nb = write(project / "in.ipynb", [IDENTITY])
    env = {warm.IDLE_VAR: ""}
    first = run_cli(nb, project / "o1.ipynb", cwd=project, env=env)
    assert first.returncode == 0, first.stderr
    assert "no warm kernel server yet" in first.stderr
    server = serving(idle_timeout=45)
    seen.add(server["pid"])
    done = run_cli(nb, project / "o2.ipynb", cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    assert ids(project / "o2.ipynb")[1] == server["pid"]
    off = run_cli("--no-warm", nb, project / "o3.ipynb", cwd=project, env=env)
    assert off.returncode == 0, off.stderr
    assert ids(project / "o3.ipynb")[1] != server["pid"]


def test_a_hash_seed_in_the_environment_is_honoured(tmp_path, warm_dir, monkeypatch):
    """The str hash seed cannot change after fork: PYTHONHASHSEED is part of the key, so a run
    that sets it gets a server started with it."""
    folder, seen = warm_dir
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    expected = subprocess.run(
        [sys.executable, "-c", "print(hash('paramill'))"], capture_output=True, text=True
    ).stdout.strip()
    nb = write(tmp_path / "in.ipynb", ["print(hash('paramill'))", IDENTITY])
    assert run_cli("--warm", nb, tmp_path / "o0.ipynb").returncode == 0
    server = serving()
    seen.add(server["pid"])
    done = run_cli("--warm", nb, tmp_path / "o1.ipynb")
    assert done.returncode == 0, done.stderr
    assert ids(tmp_path / "o1.ipynb")[1] == server["pid"]
    assert outputs(tmp_path / "o1.ipynb")[0].strip() == expected
