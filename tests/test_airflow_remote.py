"""The papermill provider's remote kernels on a real Airflow 3 (`airflow dags test`): an ipykernel
started independently from a connection file, reached through a ``jupyter_kernel`` connection
(``kernel_conn_id``), and a real Jupyter Kernel Gateway through a ``jupyter_gateway``
connection; ``NoteBook`` objects, ``nbconvert``, the provider's execute-time checks.

Connections come from ``AIRFLOW_CONN_*`` environment variables (JSON form). The Airflow venv
comes from .ci/deps/airflow.sh, as in test_airflow.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest

from .gateway_support import start_gateway, start_independent_kernel, stop
from .test_airflow import Airflow, airflow_venv, printed, read, write_notebook

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(900)]

DAY = "2019-11-07"

REMOTE_DAG = """
import datetime
from pathlib import Path
from airflow.sdk import DAG
from paramill.integrations.airflow import NoteBook, PapermillOperator

WORK = Path({work!r})
OUT = WORK / "out"

with DAG("paramill_remote", schedule=None, start_date=datetime.datetime(2019, 1, 1)):
    first = PapermillOperator(
        task_id="on_kernel",
        input_nb=str(WORK / "remote.ipynb"),
        output_nb=str(OUT / "kernel.ipynb"),
        parameters={{"label": "kernel {{{{ ds }}}}"}},
        kernel_conn_id="existing_kernel",
    )
    second = PapermillOperator(
        task_id="on_kernel_again",
        input_nb=str(WORK / "state.ipynb"),
        output_nb=str(OUT / "state.ipynb"),
        kernel_conn_id="existing_kernel",
    )
    gateway = PapermillOperator(
        task_id="on_gateway",
        input_nb=NoteBook(
            url=str(WORK / "remote.ipynb"), parameters={{"label": "gw {{{{ ds }}}}"}}
        ),
        output_nb=NoteBook(url=str(OUT / "gateway_{{{{ ds_nodash }}}}.ipynb")),
        gateway_conn_id="kernel_gateway",
        nbconvert=True,
        nbconvert_args=["--to", "html"],
    )
    first >> second
"""

CHECKS_DAG = """
import datetime
from pathlib import Path
from airflow.sdk import DAG
from paramill.integrations.airflow import PapermillOperator

WORK = Path({work!r})

with DAG("paramill_checks", schedule=None, start_date=datetime.datetime(2019, 1, 1)):
    PapermillOperator(task_id="no_input", output_nb=str(WORK / "out" / "x.ipynb"))
    PapermillOperator(task_id="no_output", input_nb=str(WORK / "remote.ipynb"))
"""


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory):
    """A fresh Airflow home, an independent kernel and a Kernel Gateway, with connections."""
    base = tmp_path_factory.mktemp("airflow-remote")
    kernel = start_independent_kernel(base / "kernel", key="airflow-session-key")
    gateway = start_gateway(base / "kg", "kernelgateway")
    try:
        venv = airflow_venv()
        home = base / "home"
        (home / "dags").mkdir(parents=True)
        work = base / "work"
        (work / "out").mkdir(parents=True)
        code = "import os\nprint('label:', label, 'pid:', os.getpid())\nshared = label"
        write_notebook(work / "remote.ipynb", code, parameters="label = 'default'")
        write_notebook(work / "state.ipynb", "print('shared:', shared)", parameters="")
        info = kernel.info
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHON", "JUPYTER_GATEWAY"))
        }
        env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            AIRFLOW_CONN_EXISTING_KERNEL=json.dumps(
                {
                    "conn_type": "jupyter_kernel",
                    "host": "127.0.0.1",
                    "extra": {
                        "shell_port": info["shell_port"],
                        "iopub_port": info["iopub_port"],
                        "stdin_port": info["stdin_port"],
                        "control_port": info["control_port"],
                        "hb_port": info["hb_port"],
                        "session_key": info["key"],
                    },
                }
            ),
            AIRFLOW_CONN_KERNEL_GATEWAY=json.dumps(
                {"conn_type": "jupyter_gateway", "host": gateway.url, "password": gateway.token}
            ),
        )
        af = Airflow(venv, home, env)
        migrated = af.run("db", "migrate")
        assert migrated.returncode == 0, migrated.stdout[-3000:]
        for name, source in (("paramill_remote", REMOTE_DAG), ("paramill_checks", CHECKS_DAG)):
            text = textwrap.dedent(source.format(work=str(work)))
            (home / "dags" / f"{name}.py").write_text(text)
        yield af, work, kernel, gateway
    finally:
        stop(kernel.proc)
        gateway.stop()


@pytest.fixture(scope="module")
def remote_run(remote) -> subprocess.CompletedProcess:
    af, *_ = remote
    return af.dags_test("paramill_remote", DAY)


def test_kernel_conn_id_runs_on_the_existing_kernel(remote, remote_run) -> None:
    af, work, kernel, _ = remote
    assert remote_run.returncode == 0, remote_run.stdout[-5000:]
    states = af.task_states("paramill_remote")
    assert set(states.values()) == {"success"}, states
    nb = read(work / "out" / "kernel.ipynb")
    assert f"label: kernel {DAY} pid: {kernel.proc.pid}" in printed(nb)
    # the second task ran on the same kernel: it sees what the first left, and the kernel lives
    assert f"shared: kernel {DAY}" in printed(read(work / "out" / "state.ipynb"))
    assert kernel.alive()


def test_provider_defaults_report_mode(remote, remote_run) -> None:
    _, work, _, _ = remote
    nb = read(work / "out" / "kernel.ipynb")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in code)


def test_gateway_conn_id_notebook_objects_and_nbconvert(remote, remote_run) -> None:
    _, work, _, gateway = remote
    nb = read(work / "out" / "gateway_20191107.ipynb")  # NoteBook url, templated
    assert f"label: gw {DAY}" in printed(nb)  # NoteBook parameters, templated
    assert nb.metadata.papermill.parameters == {"label": f"gw {DAY}"}
    html = work / "out" / "gateway_20191107.html"
    assert html.exists() and f"gw {DAY}" in html.read_text()
    assert gateway.wait_no_kernels() == []


def test_missing_notebooks_fail_at_execute_time_with_providers_messages(remote) -> None:
    af, *_ = remote
    run = af.dags_test("paramill_checks", DAY)
    # the Dag parsed (no check in __init__), and each task failed with the provider's message
    assert "Input notebook is not specified" in run.stdout
    assert "Output notebook is not specified" in run.stdout
    states = af.task_states("paramill_checks")
    assert states == {("no_input", -1): "failed", ("no_output", -1): "failed"}, states


def test_provider_registers_the_connection_types(remote) -> None:
    af, *_ = remote
    listed = af.run("providers", "hooks", "--output", "json")
    assert listed.returncode == 0, listed.stdout[-3000:]
    assert "paramill.integrations.airflow.hooks.JupyterKernelHook" in listed.stdout
    assert "paramill.integrations.airflow.hooks.JupyterGatewayHook" in listed.stdout
    for conn_type in ("jupyter_kernel", "jupyter_gateway"):
        assert f'"{conn_type}"' in listed.stdout
