"""Kernels on a real Jupyter Kernel Gateway and a real Jupyter Server, and on an existing kernel
started independently from a connection file.

After every run -- failures included -- the gateway's kernel list must be empty.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import PARAMILL, read_nb, run_cli
from .gateway_support import free_ports, start_gateway, start_independent_kernel, stop


@pytest.fixture(scope="module")
def kernel_gateway(tmp_path_factory):
    gw = start_gateway(
        tmp_path_factory.mktemp("kg"),
        "kernelgateway",
        # secrets reach a Kernel Gateway's kernel only when allowed by name
        ["--JupyterWebsocketPersonality.env_whitelist=PARAMILL_SECRET_api_token"],
    )
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def jupyter_server(tmp_path_factory):
    gw = start_gateway(tmp_path_factory.mktemp("js"), "server")
    yield gw
    gw.stop()


@pytest.fixture(params=["kernelgateway", "server"])
def any_gateway(request):
    return request.getfixturevalue(
        "kernel_gateway" if request.param == "kernelgateway" else "jupyter_server"
    )


@pytest.fixture
def independent_kernel(tmp_path):
    kernel = start_independent_kernel(tmp_path / "independent")
    yield kernel
    stop(kernel.proc)


def code_cells(path) -> list:
    return [c for c in read_nb(path).cells if c.cell_type == "code"]


def wait_running(out, index: int, proc, timeout: float = 90) -> None:
    """Until the autosaved output shows code cell ``index`` running."""
    end = time.monotonic() + timeout
    while True:
        assert proc.poll() is None and time.monotonic() < end
        try:
            if code_cells(out)[index].metadata.papermill.status == "running":
                return
        except (OSError, ValueError, KeyError, AttributeError):
            pass  # not written yet, or being replaced
        time.sleep(0.1)


def gw_args(gw) -> list[str]:
    return ["--gateway-url", gw.url, "--gateway-token", gw.token]


def test_run_on_gateway_parameters_logs_html(any_gateway, write_nb, tmp_path):
    nb = write_nb(
        [
            ("code", "x = 1", "parameters"),
            "print('x is', x)",
            "from IPython.display import HTML; HTML('<b>bold</b>')",
        ]
    )
    out = tmp_path / "out.ipynb"
    proc = run_cli(nb, out, "-p", "x", "41", "--log-output", *gw_args(any_gateway))
    assert proc.returncode == 0, proc.stderr
    assert "x is 41" in proc.stderr  # log streaming
    cells = read_nb(out).cells
    assert cells[1].source == "# Parameters\nx = 41\n"
    assert cells[2].outputs[0].text == "x is 41\n"
    assert cells[3].outputs[0].data["text/html"] == "<b>bold</b>"
    assert any_gateway.wait_no_kernels() == []
    assert any_gateway.token not in proc.stderr


def test_gateway_from_environment_variables(kernel_gateway, write_nb, tmp_path):
    nb = write_nb(["import os; print(os.getpid())"])
    proc = run_cli(
        nb,
        tmp_path / "out.ipynb",
        env={"JUPYTER_GATEWAY_URL": kernel_gateway.url,
             "JUPYTER_GATEWAY_AUTH_TOKEN": kernel_gateway.token},
    )
    assert proc.returncode == 0, proc.stderr
    remote_pid = int(read_nb(tmp_path / "out.ipynb").cells[0].outputs[0].text)
    # the kernel ran under the gateway, not as a child of paramill
    with open(f"/proc/{remote_pid}/stat") if os.path.exists(f"/proc/{remote_pid}") else \
            open(os.devnull) as f:
        stat = f.read()
    if stat:  # still exiting: its parent is the gateway
        assert int(stat.rsplit(")", 1)[1].split()[1]) == kernel_gateway.proc.pid
    assert kernel_gateway.wait_no_kernels() == []


def test_secret_travels_in_start_request_env(kernel_gateway, write_nb, tmp_path):
    nb = write_nb(["print('token length', len(api_token))", "print(api_token)"])
    out = tmp_path / "out.ipynb"
    proc = run_cli(
        nb, out, "--secret-env", "api_token=GW_TEST_SECRET", "--log-output",
        *gw_args(kernel_gateway), env={"GW_TEST_SECRET": "s3cr3t-value-xyz"},
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "token length 16" in text
    assert "s3cr3t-value-xyz" not in text
    assert "s3cr3t-value-xyz" not in proc.stderr
    assert "s3cr3t-value-xyz" not in kernel_gateway.log.read_text()
    assert kernel_gateway.wait_no_kernels() == []


def test_api_gateway_argument(jupyter_server, tmp_path):
    import nbformat

    from paramill.api import run

    from .conftest import make_notebook

    cells = [("code", "y = 0", "parameters"), "y * 2", "import paramill; paramill.record('y', y)"]
    nbformat.write(make_notebook(cells), tmp_path / "in.ipynb")
    result = run(
        tmp_path / "in.ipynb",
        tmp_path / "out.ipynb",
        {"y": 21},
        gateway={"url": jupyter_server.url, "token": jupyter_server.token},
        html_output=tmp_path / "out.html",
    )
    assert result.status == "completed"
    assert result.notebook.cells[2].outputs[0].data["text/plain"] == "42"
    assert result.records == {"y": 21}  # records made in the gateway's kernel
    assert "42" in (tmp_path / "out.html").read_text()
    assert jupyter_server.wait_no_kernels() == []


@pytest.mark.parametrize(
    "cells, args, code, text",
    [
        (["1/0"], [], 1, "ZeroDivisionError"),
        (["import time; time.sleep(60)"], ["--execution-timeout", "2"], 7, "timed out"),
        (["import time; time.sleep(60)"], ["--timeout", "3"], 8, "run timed out"),
        (["import os; os._exit(1)", "print('after')"], [], 138, "kernel died"),
    ],
    ids=["cell-error", "cell-timeout", "run-timeout", "kernel-exits"],
)
def test_failures_leave_no_kernel_on_the_gateway(
    any_gateway, write_nb, tmp_path, cells, args, code, text
):
    nb = write_nb(["print('first')", *cells])
    out = tmp_path / "out.ipynb"
    proc = run_cli(nb, out, *args, *gw_args(any_gateway))
    assert proc.returncode == code, proc.stderr
    assert text in proc.stderr.splitlines()[-1]
    cells = code_cells(out)
    assert cells[0].outputs[0].text == "first\n"  # partial output saved
    assert cells[1].metadata.papermill.status == "failed"  # the cell is marked
    assert any_gateway.wait_no_kernels() == []


def test_unknown_kernelspec_lists_the_gateways(kernel_gateway, write_nb, tmp_path):
    nb = write_nb(["1"], kernel="no-such-kernel")
    proc = run_cli(nb, tmp_path / "out.ipynb", *gw_args(kernel_gateway))
    assert proc.returncode == 5, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "no kernel named 'no-such-kernel'" in line and "python3" in line
    assert kernel_gateway.wait_no_kernels() == []


def test_unreachable_gateway(write_nb, tmp_path):
    (port,) = free_ports(1)  # nothing listens there
    nb = write_nb(["1"])
    proc = run_cli(nb, tmp_path / "out.ipynb", "--gateway-url", f"http://127.0.0.1:{port}")
    assert proc.returncode == 5, proc.stderr
    assert f"gateway http://127.0.0.1:{port} is unreachable" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("token", ["wrong-token-123456", None], ids=["wrong", "missing"])
def test_bad_token_names_the_token_problem(any_gateway, write_nb, tmp_path, token):
    nb = write_nb(["1"])
    args = ["--gateway-url", any_gateway.url] + (["--gateway-token", token] if token else [])
    proc = run_cli(nb, tmp_path / "out.ipynb", *args)
    assert proc.returncode == 5, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "refused the request (HTTP 40" in line
    assert ("no token given" if token is None else "--gateway-token") in line
    if token:
        assert token not in proc.stderr
    assert any_gateway.token not in proc.stderr
    assert any_gateway.wait_no_kernels() == []


def test_silent_kernel_is_dead_after_the_liveness_timeout(kernel_gateway, write_nb, tmp_path):
    """The kernel stops itself (SIGSTOP): the WebSocket stays open, only silence tells."""
    nb = write_nb(["print('before')", "import os, signal; os.kill(os.getpid(), signal.SIGSTOP)"])
    out = tmp_path / "out.ipynb"
    started = time.monotonic()
    proc = run_cli(nb, out, "--liveness-timeout", "python3=3", *gw_args(kernel_gateway))
    assert proc.returncode == 138, proc.stderr
    assert "stopped responding (nothing heard from it for 3 s)" in proc.stderr
    assert time.monotonic() - started < 90
    assert code_cells(out)[1].metadata.papermill.status == "failed"
    assert kernel_gateway.wait_no_kernels() == []


def test_gateway_dying_mid_run(write_nb, tmp_path):
    gw = start_gateway(tmp_path / "kg", "kernelgateway")
    try:
        nb = write_nb(["print('first', flush=True)", "import time; time.sleep(120)"])
        out = tmp_path / "out.ipynb"
        proc = subprocess.Popen(
            [*PARAMILL, str(nb), str(out), "--log-output", *gw_args(gw)],
            stderr=subprocess.PIPE, text=True,
        )
        wait_running(out, 1, proc)
        gw.stop(signal.SIGKILL)  # the gateway vanishes (its kernels stay orphaned: killed below)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 138, stderr
        assert "lost its connection to the gateway" in stderr.strip().splitlines()[-1]
        assert code_cells(out)[1].metadata.papermill.status == "failed"
    finally:
        gw.stop()
        _kill_session(gw.proc.pid)


def _kill_session(sid: int) -> None:
    """Kernels the SIGKILLed gateway left behind (same session as the gateway)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


def test_sigterm_deletes_the_gateway_kernel(jupyter_server, write_nb, tmp_path):
    nb = write_nb(["print('first', flush=True)", "import time; time.sleep(120)"])
    out = tmp_path / "out.ipynb"
    proc = subprocess.Popen(
        [*PARAMILL, str(nb), str(out), *gw_args(jupyter_server)],
        stderr=subprocess.PIPE, text=True,
    )
    wait_running(out, 1, proc)
    assert jupyter_server.kernels()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert code_cells(out)[1].metadata.papermill.status == "failed"
    assert jupyter_server.wait_no_kernels() == []


# -- an existing kernel --------------------------------------------------------------------
def test_connection_file_runs_on_an_existing_kernel_and_leaves_it(
    independent_kernel, write_nb, tmp_path
):
    first = write_nb(["shared = 'kept'", "print('pid', __import__('os').getpid())"], "a.ipynb")
    second = write_nb(["print(shared)"], "b.ipynb")
    cf = str(independent_kernel.connection_file)
    proc = run_cli(first, tmp_path / "a.out.ipynb", "--connection-file", cf)
    assert proc.returncode == 0, proc.stderr
    pid = int(read_nb(tmp_path / "a.out.ipynb").cells[1].outputs[0].text.split()[1])
    assert pid == independent_kernel.proc.pid
    proc = run_cli(second, tmp_path / "b.out.ipynb", "--connection-file", cf)
    assert proc.returncode == 0, proc.stderr
    assert read_nb(tmp_path / "b.out.ipynb").cells[0].outputs[0].text == "kept\n"
    time.sleep(0.5)
    assert independent_kernel.alive()  # never shut down by paramill


def test_connection_info_dict_with_a_key(tmp_path):
    import nbformat

    from paramill.api import run

    from .conftest import make_notebook

    kernel = start_independent_kernel(tmp_path / "k", key="a-session-key-0123")
    try:
        nbformat.write(make_notebook(["40 + 2"]), tmp_path / "in.ipynb")
        result = run(tmp_path / "in.ipynb", None, connection_info=kernel.info)
        assert result.notebook.cells[0].outputs[0].data["text/plain"] == "42"
        assert kernel.alive()
    finally:
        stop(kernel.proc)


def test_connection_file_unreachable_kernel(write_nb, tmp_path):
    ports = free_ports(5)
    cf = tmp_path / "kernel.json"
    names = ["shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"]
    info = {"ip": "127.0.0.1", "key": "", **dict(zip(names, ports, strict=True))}
    cf.write_text(json.dumps(info))
    proc = run_cli(
        write_nb(["1"]), tmp_path / "out.ipynb", "--connection-file", cf, "--start-timeout", "3"
    )
    assert proc.returncode == 5, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert f"the kernel at tcp://127.0.0.1:{ports[0]} (connection file) did not answer" in line


@pytest.mark.parametrize(
    "content, text",
    [(None, "No such file"), ("{", "is not JSON"), ('{"ip": "x"}', "missing or not a port")],
)
def test_connection_file_bad(write_nb, tmp_path, content, text):
    cf = tmp_path / "kernel.json"
    if content is not None:
        cf.write_text(content)
    proc = run_cli(write_nb(["1"]), tmp_path / "out.ipynb", "--connection-file", cf)
    assert proc.returncode == 5, proc.stderr
    assert text in proc.stderr.strip().splitlines()[-1]


def test_gateway_and_connection_file_together_is_a_usage_error(write_nb, tmp_path):
    proc = run_cli(
        write_nb(["1"]), "--gateway-url", "http://127.0.0.1:1", "--connection-file",
        Path(tmp_path / "k.json"),
    )
    assert proc.returncode == 2
    assert "cannot be used together" in proc.stderr


# -- sweeps ---------------------------------------------------------------------------------
def test_sweep_on_gateway_one_kernel_per_run(kernel_gateway, write_nb, tmp_path):
    nb = write_nb(
        [("code", "x = 0", "parameters"), "import os; print(os.getpid())", "assert x != 3"]
    )
    proc = run_cli(
        "sweep", nb, tmp_path / "out_{x}.ipynb", "--grid", "x=1,2,3,4,5", "--workers", "2",
        *gw_args(kernel_gateway), timeout=300,
    )
    assert proc.returncode == 1, proc.stderr  # x=3 fails; the others complete
    pids = set()
    for x in (1, 2, 4, 5):
        cells = code_cells(tmp_path / f"out_{x}.ipynb")
        pids.add(int(cells[2].outputs[0].text))  # after the injected cell
    assert len(pids) == 4  # each run on its own gateway kernel
    assert "AssertionError" in (tmp_path / "out_3.ipynb").read_text()
    assert kernel_gateway.wait_no_kernels() == []  # including the failed run's


def test_sweep_on_existing_kernel_runs_one_at_a_time(independent_kernel, write_nb, tmp_path):
    nb = write_nb(
        [("code", "x = 0", "parameters"),
         "seen = globals().setdefault('seen', []); seen.append(x); print(len(seen))"]
    )
    proc = run_cli(
        "sweep", nb, tmp_path / "out_{x}.ipynb", "--grid", "x=1,2,3", "--workers", "3",
        "--connection-file", independent_kernel.connection_file, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    counts = sorted(int(code_cells(tmp_path / f"out_{x}.ipynb")[2].outputs[0].text)
                    for x in (1, 2, 3))
    assert counts == [1, 2, 3]  # one shared kernel, one run after the other
    assert independent_kernel.alive()


# -- options: headers, TLS, other languages --------------------------------------------------
def test_extra_header_carries_the_token(kernel_gateway, write_nb, tmp_path):
    proc = run_cli(
        write_nb(["print('via header')"]), tmp_path / "out.ipynb",
        "--gateway-url", kernel_gateway.url,
        "--gateway-header", f"Authorization: token {kernel_gateway.token}",
    )
    assert proc.returncode == 0, proc.stderr
    assert code_cells(tmp_path / "out.ipynb")[0].outputs[0].text == "via header\n"
    assert kernel_gateway.wait_no_kernels() == []


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory):
    gw = start_gateway(tmp_path_factory.mktemp("kg-tls"), "kernelgateway", tls=True)
    yield gw
    gw.stop()


@pytest.mark.parametrize(
    "args, code",
    [([], 5), (["--no-gateway-validate-cert"], 0), (["--gateway-ca-bundle", "CERT"], 0)],
    ids=["verified-fails", "no-verify", "ca-bundle"],
)
def test_tls_gateway(tls_gateway, write_nb, tmp_path, args, code):
    cert = str(tls_gateway.log.parent / "cert.pem")
    args = [cert if a == "CERT" else a for a in args]
    proc = run_cli(
        write_nb(["print('over tls')"]), tmp_path / "out.ipynb", *gw_args(tls_gateway), *args
    )
    assert proc.returncode == code, proc.stderr
    if code:
        assert "certificate verify failed" in proc.stderr.strip().splitlines()[-1]
    else:  # REST and the WebSocket (wss://) both checked against the same settings
        assert code_cells(tmp_path / "out.ipynb")[0].outputs[0].text == "over tls\n"
    assert tls_gateway.wait_no_kernels() == []


@pytest.mark.kernels
@pytest.mark.parametrize(
    "kernel, language, source, expected",
    [
        ("bash", "bash", 'echo "n is $n"', "n is 7"),
        ("ir", "R", 'cat("n is", n, "\\n")', "n is 7"),
    ],
)
def test_parameters_in_other_languages_on_gateway(
    kernel_gateway, write_nb, tmp_path, kernel, language, source, expected
):
    nb = write_nb([("code", "n=0" if kernel == "bash" else "n <- 0", "parameters"), source],
                  kernel=kernel, language=language)
    proc = run_cli(nb, tmp_path / "out.ipynb", "-p", "n", "7", *gw_args(kernel_gateway),
                   timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert expected in code_cells(tmp_path / "out.ipynb")[2].outputs[0].text
    assert kernel_gateway.wait_no_kernels() == []


@pytest.mark.kernels
def test_quiet_cell_on_a_kernel_that_answers_only_between_cells(kernel_gateway, write_nb, tmp_path):
    """IRkernel does not answer on its control channel: a cell quiet for longer than the
    liveness timeout is working, not dead (as a local IRkernel whose process runs)."""
    nb = write_nb(["Sys.sleep(6); cat('slept')"], kernel="ir", language="R")
    proc = run_cli(nb, tmp_path / "out.ipynb", "--liveness-timeout", "ir=2",
                   *gw_args(kernel_gateway), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert code_cells(tmp_path / "out.ipynb")[0].outputs[0].text == "slept"
    assert kernel_gateway.wait_no_kernels() == []


def test_connection_file_refuses_secrets(independent_kernel, write_nb, tmp_path):
    proc = run_cli(
        write_nb(["print(tok)"]), tmp_path / "out.ipynb", "--secret-env", "tok=GW_TEST_SECRET",
        "--connection-file", independent_kernel.connection_file,
        env={"GW_TEST_SECRET": "a-long-secret-value"},
    )
    assert proc.returncode == 5, proc.stderr
    assert "cannot be sent to an existing kernel" in proc.stderr.strip().splitlines()[-1]
    assert "a-long-secret-value" not in proc.stderr
    assert independent_kernel.alive()


def test_sweep_on_gateway_sigterm_deletes_every_kernel(kernel_gateway, write_nb, tmp_path):
    nb = write_nb([("code", "x = 0", "parameters"), "import time; time.sleep(120)"])
    proc = subprocess.Popen(
        [*PARAMILL, "sweep", str(nb), str(tmp_path / "out_{x}.ipynb"), "--grid", "x=1,2,3,4",
         "--workers", "2", *gw_args(kernel_gateway)],
        stderr=subprocess.PIPE, text=True,
    )
    wait_running(tmp_path / "out_1.ipynb", 2, proc)  # runs are in their long cell
    wait_running(tmp_path / "out_2.ipynb", 2, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    # the running runs' kernels, and those started ahead for the next runs: all deleted
    assert kernel_gateway.wait_no_kernels() == []


def test_gateway_source_kernel_source_interface(kernel_gateway):
    """prepare (started ahead) -> acquire -> release, and close deleting an untaken kernel:
    the interface the run path's kernel sources share."""
    import asyncio
    import types

    from paramill.kernel.gateway import GatewaySource

    request = types.SimpleNamespace(
        kernel_name="python3", env={"KERNEL_FLAVOUR": "mint"}, cwd=None, startup_timeout=60
    )
    source = GatewaySource({"url": kernel_gateway.url, "token": kernel_gateway.token})
    source.prepare(request)
    end = time.monotonic() + 60
    while not kernel_gateway.kernels():  # started before anyone asked for it
        assert time.monotonic() < end
        time.sleep(0.05)
    started = kernel_gateway.kernels()[0]["id"]

    async def use() -> str:
        kernel = await source.acquire(request)
        assert kernel.manager.kernel_id == started and kernel.pid is None
        printed: list[str] = []
        await kernel.client.execute_interactive(
            "import os; print(os.environ['KERNEL_FLAVOUR'])", timeout=30,
            output_hook=lambda m: printed.append(m["content"].get("text", "")),
        )
        assert source.is_running(kernel)
        await source.release(kernel)
        assert not source.is_running(kernel)
        return "".join(printed)

    assert asyncio.run(use()) == "mint\n"  # the request's env reached the kernel
    assert kernel_gateway.wait_no_kernels() == []
    source.prepare(request)
    source.close()
    assert kernel_gateway.wait_no_kernels() == []
