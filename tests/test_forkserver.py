"""Kernels forked from a pre-imported server: fresh, isolated, signalled, reaped, no orphans."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

import paramill
from paramill.kernel import forkserver
from paramill.kernel.ipc import IPC_LOCK, ipc_dir
from paramill.kernel.lifecycle import start_kernel, stop_kernel

from .conftest import PARAMILL, make_notebook, processes_with_env, run_cli
from .test_pool import alive, wait_dead

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def no_servers_left():
    yield
    assert os.listdir(ipc_dir()) == [IPC_LOCK]  # every kernel's sockets were removed
    servers = list(forkserver._servers.values())
    forkserver.close_servers()
    for server in servers:
        assert server.process.poll() is not None
        assert not os.path.exists(server.folder)


def run_async(coro):
    return asyncio.run(coro)


async def forked(preload=(), **kw):
    km, kc = await start_kernel("python3", provisioner=forkserver.provisioner_stanza(preload), **kw)
    assert isinstance(km.provisioner.process, forkserver.ForkedKernel), "not forked"
    return km, kc


async def ask(kc, code: str, timeout: float = 30) -> str:
    """Run code in the kernel; its stdout."""
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = await kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out)


def server_pids() -> list[int]:
    return [s.process.pid for s in forkserver._servers.values()]


def test_forked_kernel_is_a_fresh_child_of_the_server():
    async def main():
        km, kc = await forked()  # starts the server
        await stop_kernel(km, kc)
        times, pids = [], []
        for _ in range(5):
            began = time.perf_counter()
            km, kc = await forked()
            times.append(time.perf_counter() - began)
            pid, ppid = map(
                int, (await ask(kc, "import os; print(os.getpid(), os.getppid())")).split()
            )
            assert pid == km.provisioner.process.pid and ppid in server_pids()
            assert os.getpgid(pid) == pid  # its own process group, like a launched kernel
            pids.append(pid)
            await stop_kernel(km, kc)
        assert len(set(pids)) == 5
        assert wait_dead(pids) == []
        # informational: the speed is measured in bench/sweep_bench.py (ready_latency)
        print(f"forked kernel ready: median {statistics.median(times) * 1e3:.0f} ms")

    run_async(main())
    assert os.listdir(ipc_dir()) == [IPC_LOCK]


def test_runs_share_no_state():
    async def main():
        km, kc = await forked()
        await ask(
            kc,
            "import json, sys, os, types\n"
            "json.MARK = 1\n"
            "sys.modules['paramill_probe'] = types.ModuleType('paramill_probe')\n"
            "os.environ['PARAMILL_PROBE'] = '1'\n"
            "leak = 1",
        )
        await stop_kernel(km, kc)
        km, kc = await forked()
        seen = await ask(
            kc,
            "import json, sys, os\n"
            "print(hasattr(json, 'MARK'), 'paramill_probe' in sys.modules,"
            " 'PARAMILL_PROBE' in os.environ, 'leak' in globals())",
        )
        await stop_kernel(km, kc)
        assert seen.split() == ["False"] * 4

    run_async(main())


def test_a_fork_imports_none_of_the_kernel_machinery_and_skips_it_in_collections():
    """The server imported what a kernel needs to start and answer requests (ipykernel,
    IPython, tornado's asyncio loop, psutil) and froze it (gc.freeze): a fork neither imports
    it again nor walks it in its collections (which would copy the memory it shares)."""

    async def main():
        km, kc = await forked()
        try:
            await ask(kc, "x = 1")  # a request answered: what the first cell needs is loaded
            since_fork = await ask(
                kc,
                "import gc, types\n"
                "print(gc.get_freeze_count(), *sorted(o.__name__ for o in gc.get_objects()"
                " if isinstance(o, types.ModuleType)))",
            )
        finally:
            await stop_kernel(km, kc)
        return since_fork.split()

    frozen, *modules = run_async(main())
    assert int(frozen) > 10_000  # objects left out of every collection in the kernel
    machinery = ("ipykernel", "IPython", "tornado", "psutil", "jupyter_client", "zmq", "traitlets")
    assert [m for m in modules if m.split(".")[0] in machinery] == [], modules


def test_cwd_env_and_sys_path_match_a_cold_kernel(tmp_path):
    code = (
        "import os, sys, json; print(json.dumps([os.getcwd(), os.environ.get('PROBE'), sys.path]))"
    )

    async def main():
        seen = []
        for start in (forked, lambda **kw: start_kernel("python3", **kw)):
            km, kc = await start(cwd=str(tmp_path), env={"PROBE": "x"})
            seen.append(json.loads(await ask(kc, code)))
            await stop_kernel(km, kc)
        return seen

    fork, cold = run_async(main())
    assert fork == cold
    assert fork[0] == str(tmp_path) and fork[1] == "x"


def test_numpy_preloaded_in_the_server_is_reseeded_in_each_kernel():
    pytest.importorskip("numpy", reason="numpy comes with the bikeshare example's deps")

    async def main():
        draws = []
        for _ in range(2):
            km, kc = await forked(preload=["numpy"])
            draws.append(
                await ask(kc, "import numpy, random; print(numpy.random.rand(), random.random())")
            )
            await stop_kernel(km, kc)
        return draws

    first, second = (d.split() for d in run_async(main()))
    assert first[0] != second[0] and first[1] != second[1]


def test_interrupt_reaches_the_kernel():
    async def main():
        km, kc = await forked()
        # stop_on_error=False: else the kernel aborts requests that follow the interrupted one
        # for a moment (a race on a loaded machine, not what this test is about)
        msg_id = kc.execute(
            "import time\nfor _ in range(600): time.sleep(0.05)", stop_on_error=False
        )
        await asyncio.sleep(0.5)
        await km.interrupt_kernel()
        reply = await kc.get_shell_msg(timeout=10)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert (await ask(kc, "print(6 * 7)")).strip() == "42"  # still alive
        await stop_kernel(km, kc)

    run_async(main())


def test_kernel_death_is_detected_with_its_exit_code():
    async def main():
        km, kc = await forked()
        process = km.provisioner.process
        kc.execute("import os; os._exit(3)")
        # the bound counts from the request, so it includes the kernel reading it: generous
        assert await asyncio.wait_for(process.wait_async(), 30) == 3
        assert not await km.is_alive()
        await stop_kernel(km, kc)

        km, kc = await forked()
        pid = km.provisioner.process.pid
        os.kill(pid, signal.SIGKILL)
        # from the kill itself: the server reports the death (a generous bound for a busy host)
        assert await asyncio.wait_for(km.provisioner.wait(), 10) == -signal.SIGKILL
        await stop_kernel(km, kc)

    run_async(main())


def test_sweep_with_fork_server_runs_each_notebook_in_a_fresh_kernel(tmp_path, monkeypatch):
    nb = make_notebook(
        [
            ("code", "x = 0", "parameters"),
            "import os, json\n"
            "print(os.getpid(), hasattr(json, 'MARK'), os.getppid())\n"
            "json.MARK = x",
        ]
    )
    nbformat.write(nb, tmp_path / "t.ipynb")
    monkeypatch.setenv("PARAMILL_FORK_SERVER", "1")  # the switch the CLI and API both read
    runs = paramill.sweep(
        tmp_path / "t.ipynb", str(tmp_path / "out_{x}.ipynb"), {"x": list(range(6))}, workers=2
    )
    assert [r.status for r in runs] == ["completed"] * 6
    assert forkserver._servers == {}  # the sweep's pool closed the server it used
    seen = []
    for r in runs:
        out = nbformat.read(r.output_path, 4).cells[-1].outputs[0]["text"].split()
        seen.append(out)
    assert len({pid for pid, _, _ in seen}) == 6
    assert {mark for _, mark, _ in seen} == {"False"}
    assert str(os.getpid()) not in {ppid for _, _, ppid in seen}  # forked by the server
    assert wait_dead([int(pid) for pid, _, _ in seen]) == []


@pytest.fixture
def installed_module():
    """install(name, source): a module in this interpreter's site-packages, removed after."""
    import sysconfig

    made = []

    def install(name: str, source: str) -> str:
        path = Path(sysconfig.get_paths()["purelib"]) / f"{name}_{os.getpid()}.py"
        path.write_text(source)
        made.append(path)
        return path.stem

    yield install
    for path in made:
        path.unlink()


@pytest.mark.parametrize(
    "source, why",
    [
        (
            "import threading, time\n"
            "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n",
            "started a thread",
        ),
        ("import socket\nCONNECTION = socket.socket()\n", "left a file or socket open"),
    ],
)
def test_an_unsafe_preload_falls_back_to_a_normal_launch(installed_module, source, why):
    name = installed_module("paramill_unsafe_probe", source)

    async def main():
        km, kc = await start_kernel("python3", provisioner=forkserver.provisioner_stanza([name]))
        assert isinstance(km.provisioner.process, subprocess.Popen)  # launched, not forked
        assert (await ask(kc, "print(1)")).strip() == "1"
        await stop_kernel(km, kc)

    run_async(main())
    (server,) = forkserver._servers.values()
    assert why in (server.failure or "")


def test_a_project_module_is_imported_by_each_kernel_not_the_server(tmp_path):
    helper = tmp_path / "helper_mod.py"
    helper.write_text("VALUE = 1\n")
    env = {"PYTHONPATH": str(tmp_path)}
    code = "import sys\nprint('helper_mod' in sys.modules)\n"
    code += "import helper_mod\nprint(helper_mod.VALUE)"

    async def main():
        seen = []
        for value in (1, 2):
            helper.write_text(f"VALUE = {value}\n")
            stanza = forkserver.provisioner_stanza(["helper_mod"])
            km, kc = await start_kernel("python3", env=env, provisioner=stanza)
            assert isinstance(km.provisioner.process, forkserver.ForkedKernel)
            seen.append((await ask(kc, code)).split())
            await stop_kernel(km, kc)
        return seen

    assert run_async(main()) == [["False", "1"], ["False", "2"]]


DRIVER = textwrap.dedent(
    """
    import asyncio, sys
    from paramill.kernel import forkserver
    from paramill.kernel.lifecycle import start_kernel

    async def main():
        kernels = [await start_kernel("python3", provisioner=forkserver.provisioner_stanza())
                   for _ in range(2)]
        (server,) = forkserver._servers.values()
        pids = [server.process.pid] + [km.provisioner.process.pid for km, _ in kernels]
        print(server.folder, *pids, flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
    """
)


def test_killing_the_driver_leaves_no_server_kernel_or_socket():
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        folder, *pids = driver.stdout.readline().split()
        pids = [int(p) for p in pids]
        assert pids and all(alive(p) for p in pids)
        assert os.path.exists(folder)
    finally:
        driver.kill()
        driver.wait()
        driver.stdout.close()
    assert wait_dead(pids) == []
    deadline = time.monotonic() + 5
    while os.path.exists(folder) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(folder)


def test_close_servers_kills_their_kernels():
    async def main():
        return await forked()

    km, kc = run_async(main())
    kc.stop_channels()
    pid = km.provisioner.process.pid
    (server,) = forkserver._servers.values()
    forkserver.close_servers()
    assert wait_dead([pid, server.process.pid]) == []
    assert km.provisioner.process.poll() == -signal.SIGKILL
    assert not Path(server.folder).exists()
    run_async(stop_kernel(km, None))  # the driver's side: connection file and sockets


def test_only_ipykernel_commands_are_forked():
    assert forkserver.forkable(["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "c.json"])
    assert not forkserver.forkable(["ijskernel", "--hide-undefined", "c.json"])
    assert not forkserver.forkable(["python", "-m", "some_other_kernel", "-f", "c.json"])


def test_cli_sweep_with_fork_server(tmp_path):
    nb = make_notebook([("code", "x = 0", "parameters"), "print(x * 2)"])
    nbformat.write(nb, tmp_path / "t.ipynb")
    nb_path, out = tmp_path / "t.ipynb", tmp_path / "o_{x}.ipynb"
    done = run_cli("sweep", nb_path, out, "--grid", "x=1,2,3", "--fork-server")
    assert done.returncode == 0, done.stderr
    outputs = [nbformat.read(tmp_path / f"o_{x}.ipynb", 4).cells[-1].outputs for x in (1, 2, 3)]
    assert [o[0]["text"].strip() for o in outputs] == ["2", "4", "6"]


def test_sigkilled_sweep_driver_leaves_no_server_or_kernel(tmp_path):
    token = f"PARAMILL_FORK_TEST_{os.getpid()}_{time.monotonic_ns()}"
    nb = make_notebook([("code", "x = 0", "parameters"), "import time\ntime.sleep(60)"])
    nbformat.write(nb, tmp_path / "t.ipynb")
    driver = subprocess.Popen(
        [*PARAMILL, "sweep", tmp_path / "t.ipynb", tmp_path / "o_{x}.ipynb", "--grid",
         "x=1,2,3,4", "--workers", "2", "--fork-server"],
        env={**os.environ, token: "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(processes_with_env(token) - {driver.pid}) < 3:  # the server and 2 kernels
            assert time.monotonic() < deadline, "the sweep never ran its kernels"
            time.sleep(0.1)
    finally:
        driver.kill()
        driver.wait()
    deadline = time.monotonic() + 10
    while processes_with_env(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with_env(token) == set()


def test_the_switch(monkeypatch):
    monkeypatch.delenv("PARAMILL_FORK_SERVER", raising=False)
    assert forkserver.enabled(None, default=True) and not forkserver.enabled(None)
    monkeypatch.setenv("PARAMILL_FORK_SERVER", "0")
    assert not forkserver.enabled(None, default=True)
    assert forkserver.enabled(True, default=False)
    monkeypatch.setenv("PARAMILL_FORK_SERVER", "1")
    assert forkserver.enabled(None) and not forkserver.enabled(False)


def test_a_dropped_connection_kills_only_its_kernel():
    async def main():
        km1, kc1 = await forked()
        km2, kc2 = await forked()
        pid1 = km1.provisioner.process.pid
        km1.provisioner.process.close()  # as if the driver lost the kernel's manager
        assert wait_dead([pid1]) == []
        assert (await ask(kc2, "print(2)")).strip() == "2"  # the server and others go on
        km3, kc3 = await forked()
        assert (await ask(kc3, "print(3)")).strip() == "3"
        for km, kc in ((km1, kc1), (km2, kc2), (km3, kc3)):
            await stop_kernel(km, kc)

    run_async(main())
