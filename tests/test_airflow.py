"""NotebookOperator on a real Airflow 3: `airflow dags test` in its own virtualenv (issue 5).

The venv comes from .ci/deps/airflow.sh (CI runs it before pytest; here it is a no-op when the
cached venv is current and builds it otherwise). Each module run gets a fresh AIRFLOW_HOME with a
SQLite database (`airflow db migrate`), writes its Dags and notebooks to a temp folder and runs
three Dags: one that succeeds (typed parameters, a templated output path, a mapped run over three
dates, @task.notebook, a retry), one that fails, and the bikeshare example. Tests assert on the
output notebooks, the task log (the CLI's output), the XComs and Airflow's own database.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from paramill.notebook import ERROR_MARKER_TAG

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
DAY = "2019-11-07"
MAPPED_DATES = ["2019-11-01", "2019-11-02", "2019-11-03"]
DECORATED_DATES = ["2019-11-04", "2019-11-05"]


@dataclass
class Airflow:
    venv: Path
    home: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.venv / "bin" / "airflow"), *args],
            env=self.env,
            cwd=self.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )

    def dags_test(self, dag_id: str, day: str = DAY) -> subprocess.CompletedProcess:
        return self.run("dags", "test", dag_id, day)

    def query(self, sql: str, *args: object) -> list[tuple]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            return db.execute(sql, args).fetchall()

    def task_states(self, dag_id: str) -> dict[tuple[str, int], str]:
        rows = self.query(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ?", dag_id
        )
        return {(task_id, index): state for task_id, index, state in rows}


def airflow_venv() -> Path:
    """The cached Airflow venv (built by the CI deps script, or here on first use)."""
    done = subprocess.run(
        ["bash", str(ROOT / ".ci" / "deps" / "airflow.sh")],
        stdout=subprocess.PIPE,
        text=True,
        timeout=900,
        check=True,
    )
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Airflow:
    venv = airflow_venv()
    home = tmp_path_factory.mktemp("airflow-home")
    (home / "dags").mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    )
    migrated = Airflow(venv, home, env).run("db", "migrate")
    assert migrated.returncode == 0, migrated.stdout[-3000:]
    return Airflow(venv, home, env)


# -- notebooks and Dags -----------------------------------------------------------------------
def write_notebook(path: Path, *sources: str, parameters: str) -> Path:
    nb = new_notebook()
    spec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["kernelspec"] = spec
    nb.metadata["language_info"] = {"name": "python"}
    params = new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(new_code_cell(source) for source in sources)]
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("work")
    (work / "out").mkdir()
    defaults = "date = '2000-01-01'\nflag = True\nn = 0\nlabel = 'x'\nratio = 0.0"
    report = (
        "import json, time\n"
        "print(f'tick 1 {date}', flush=True)\n"
        "time.sleep(1.0)\n"
        "print(f'tick 2 {date}', flush=True)\n"
        "types = {k: type(v).__name__ for k, v in dict(date=date, flag=flag, n=n, label=label,"
        " ratio=ratio).items()}\n"
        "print('types', json.dumps(types, sort_keys=True))"
    )
    record = "import paramill\nparamill.record('day_types', len(types))"
    write_notebook(work / "ok.ipynb", report, record, parameters=defaults)
    write_notebook(
        work / "fail.ipynb",
        "print(f'before the failure {date}')",
        "raise ValueError(f'bad date {date}')",
        "print('never printed')",
        parameters="date = '2000-01-01'",
    )
    write_notebook(
        work / "flaky.ipynb",
        "from pathlib import Path\n"
        "if not Path(marker).exists():\n"
        "    Path(marker).touch()\n"
        "    raise RuntimeError('first attempt fails')\n"
        "print('second attempt ran')",
        parameters="marker = ''",
    )
    write_notebook(
        work / "slow.ipynb",
        "print('started', flush=True)",
        "import time\ntime.sleep(60)",
        parameters="",
    )
    return work


OK_DAG = """
import datetime, json
from pathlib import Path
from airflow.sdk import DAG, AssetAlias, Param, task
from paramill.integrations.airflow import NotebookOperator, PapermillOperator

WORK = Path({work!r})
OUT = WORK / "out"

with DAG(
    "paramill_ok",
    schedule=None,
    start_date=datetime.datetime(2019, 1, 1),
    params={{"flag": Param(False, type="boolean"), "n": Param(6, type="integer")}},
):
    typed = PapermillOperator(
        task_id="typed",
        input_nb=str(WORK / "ok.ipynb"),
        output_nb=str(OUT / "typed.ipynb"),
        parameters={{
            "date": "{{{{ ds }}}}",
            "flag": "{{{{ params.flag }}}}",
            "n": "{{{{ params.n + 1 }}}}",
            "label": "True",
            "ratio": 0.5,
        }},
    )
    templated = NotebookOperator(
        task_id="templated",
        input_nb=str(WORK / "ok.ipynb"),
        output_nb=str(OUT / "templated_{{{{ ds_nodash }}}}_{{label}}.ipynb"),
        parameters={{"date": "{{{{ ds }}}}", "label": "T"}},
    )
    whole = NotebookOperator(
        task_id="whole",
        input_nb=str(WORK / "ok.ipynb"),
        output_nb=str(OUT / "whole.ipynb"),
        parameters="{{{{ {{'date': ds, 'n': params.n}} }}}}",
    )
    mapped = NotebookOperator.partial(
        task_id="mapped",
        input_nb=str(WORK / "ok.ipynb"),
        output_nb=str(OUT / "mapped_{{date}}.ipynb"),
        outlets=[AssetAlias("paramill-mapped")],
    ).expand(parameters=[{{"date": d}} for d in {mapped_dates!r}])

    @task.notebook(input_nb=str(WORK / "ok.ipynb"), output_nb=str(OUT / "decorated_{{date}}.ipynb"))
    def decorated(date):
        return {{"date": date, "n": len(date)}}

    flaky = NotebookOperator(
        task_id="flaky",
        input_nb=str(WORK / "flaky.ipynb"),
        output_nb=str(OUT / "flaky.ipynb"),
        parameters={{"marker": str(WORK / "flaky.marker")}},
        retries=1,
        retry_delay=datetime.timedelta(seconds=0),
    )

    @task
    def collect(typed, templated, mapped, decorated):
        results = dict(typed=typed, templated=templated, mapped=list(mapped),
                       decorated=list(decorated))
        (OUT / "xcom.json").write_text(json.dumps(results))

    collect(typed.output, templated.output, mapped.output,
            decorated.expand(date={decorated_dates!r}))
"""

FAIL_DAG = """
import datetime
from pathlib import Path
from airflow.sdk import DAG
from paramill.integrations.airflow import NotebookOperator

WORK = Path({work!r})

with DAG("paramill_fail", schedule=None, start_date=datetime.datetime(2019, 1, 1)):
    NotebookOperator(
        task_id="broken",
        input_nb=str(WORK / "fail.ipynb"),
        output_nb=str(WORK / "out" / "broken_{{{{ ds }}}}.ipynb"),
        parameters={{"date": "{{{{ ds }}}}"}},
    )
    NotebookOperator(
        task_id="slow",
        input_nb=str(WORK / "slow.ipynb"),
        output_nb=str(WORK / "out" / "slow.ipynb"),
        execution_timeout=datetime.timedelta(seconds=10),
    )
    NotebookOperator(
        task_id="html",
        input_nb=str(WORK / "ok.ipynb"),
        output_nb=str(WORK / "out" / "html.ipynb"),
        html_output=str(WORK / "out" / "html.html"),
    )
"""


def write_dag(airflow: Airflow, name: str, source: str, work: Path) -> None:
    text = source.format(work=str(work), mapped_dates=MAPPED_DATES, decorated_dates=DECORATED_DATES)
    (airflow.home / "dags" / f"{name}.py").write_text(textwrap.dedent(text))


@pytest.fixture(scope="module")
def ok_run(airflow: Airflow, work: Path) -> subprocess.CompletedProcess:
    write_dag(airflow, "paramill_ok", OK_DAG, work)
    return airflow.dags_test("paramill_ok")


@pytest.fixture(scope="module")
def fail_run(airflow: Airflow, work: Path) -> subprocess.CompletedProcess:
    write_dag(airflow, "paramill_fail", FAIL_DAG, work)
    return airflow.dags_test("paramill_fail")


def read(path: Path) -> nbformat.NotebookNode:
    assert path.exists(), f"{path} was not written"
    return nbformat.read(path, as_version=4)


def printed(nb: nbformat.NotebookNode) -> str:
    return "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))


def xcoms(work: Path) -> dict:
    return json.loads((work / "out" / "xcom.json").read_text())


# -- the successful Dag -----------------------------------------------------------------------
def test_successful_run_injects_parameters(airflow: Airflow, ok_run, work: Path) -> None:
    assert ok_run.returncode == 0, ok_run.stdout[-5000:]
    states = airflow.task_states("paramill_ok")
    assert set(states.values()) == {"success"}, states
    nb = read(work / "out" / "typed.ipynb")
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert 'date = "2019-11-07"' in injected[0].source.replace("'", '"')
    assert "tick 2 2019-11-07" in printed(nb)


def test_templated_values_keep_their_types(ok_run, work: Path) -> None:
    nb = read(work / "out" / "typed.ipynb")
    # a template rendering a bool/int arrives as one; a plain string that looks like a literal
    # ("True") and a rendered date stay strings
    assert nb.metadata.papermill.parameters == {
        "date": DAY,
        "flag": False,
        "n": 7,
        "label": "True",
        "ratio": 0.5,
    }
    types = {"date": "str", "flag": "bool", "label": "str", "n": "int", "ratio": "float"}
    assert f"types {json.dumps(types)}" in printed(nb)


def test_parameters_rendered_as_one_dict(ok_run, work: Path) -> None:
    # parameters="{{ {...} }}" (or "{{ dag_run.conf }}") renders natively to a dict
    nb = read(work / "out" / "whole.ipynb")
    assert nb.metadata.papermill.parameters == {"date": DAY, "n": 6}


def test_templated_output_path(ok_run, work: Path) -> None:
    # Jinja ({{ ds_nodash }}) and paramill's own {parameter} field, in one path
    nb = read(work / "out" / "templated_20191107_T.ipynb")
    assert nb.metadata.papermill.parameters["label"] == "T"
    assert xcoms(work)["templated"]["output_nb"] == str(work / "out" / "templated_20191107_T.ipynb")


def test_mapped_run_writes_one_output_per_date(airflow: Airflow, ok_run, work: Path) -> None:
    for day in MAPPED_DATES:
        nb = read(work / "out" / f"mapped_{day}.ipynb")
        assert nb.metadata.papermill.parameters == {"date": day}
        assert f"tick 2 {day}" in printed(nb)
    states = airflow.task_states("paramill_ok")
    assert {states[("mapped", i)] for i in range(3)} == {"success"}
    outputs = [x["output_nb"] for x in xcoms(work)["mapped"]]
    assert outputs == [str(work / "out" / f"mapped_{day}.ipynb") for day in MAPPED_DATES]


def test_task_notebook_decorator(ok_run, work: Path) -> None:
    for day in DECORATED_DATES:
        nb = read(work / "out" / f"decorated_{day}.ipynb")
        assert nb.metadata.papermill.parameters == {"date": day, "n": 10}
    assert [x["status"] for x in xcoms(work)["decorated"]] == ["completed", "completed"]


def test_xcom_returns_output_location(ok_run, work: Path) -> None:
    typed = xcoms(work)["typed"]
    assert typed["output_nb"] == str(work / "out" / "typed.ipynb")
    assert typed["uri"] == "file://" + str(work / "out" / "typed.ipynb")
    assert typed["status"] == "completed"
    assert typed["parameters"]["flag"] is False


def test_output_is_an_asset(airflow: Airflow, ok_run, work: Path) -> None:
    events = {
        uri
        for (uri,) in airflow.query(
            "SELECT a.uri FROM asset_event e JOIN asset a ON a.id = e.asset_id"
        )
    }
    out = "file://" + str(work / "out")
    assert f"{out}/typed.ipynb" in events  # a fixed path: a declared Asset
    assert f"{out}/templated_20191107_T.ipynb" in events  # templated: through an AssetAlias
    assert {f"{out}/mapped_{day}.ipynb" for day in MAPPED_DATES} <= events
    aliases = {name for (name,) in airflow.query("SELECT name FROM asset_alias")}
    assert {"paramill-mapped", "paramill:paramill_ok.templated"} <= aliases


def test_cell_output_streams_into_task_log(ok_run) -> None:
    # both lines are logged while the cell runs, one second apart, not dumped at the end
    stamps = {}
    for line in ok_run.stdout.splitlines():
        match = re.match(r"(\S+Z) .*\b(tick [12]) 2019-11-01\b", line)
        if match and match.group(2) not in stamps:
            stamps[match.group(2)] = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
    assert set(stamps) == {"tick 1", "tick 2"}, ok_run.stdout[-3000:]
    assert (stamps["tick 2"] - stamps["tick 1"]).total_seconds() >= 0.9


def test_retry_reruns_cleanly(airflow: Airflow, ok_run, work: Path) -> None:
    tries = airflow.query(
        "SELECT try_number, state FROM task_instance WHERE dag_id = 'paramill_ok'"
        " AND task_id = 'flaky'"
    )
    assert tries == [(2, "success")]
    assert "first attempt fails" in ok_run.stdout
    nb = read(work / "out" / "flaky.ipynb")
    assert not [c for c in nb.cells if ERROR_MARKER_TAG in c.metadata.get("tags", [])]
    assert "second attempt ran" in printed(nb)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]


# -- the failing Dag --------------------------------------------------------------------------
def test_failing_notebook_fails_the_task(airflow: Airflow, fail_run, work: Path) -> None:
    assert fail_run.returncode != 0
    assert airflow.task_states("paramill_fail")[("broken", -1)] == "failed"
    # the cell's index (in the output notebook, after the injected cell), ename and evalue
    assert "Failing cell: index 3, ename ValueError, evalue bad date 2019-11-07" in fail_run.stdout
    assert "ValueError: bad date 2019-11-07" in fail_run.stdout
    # the partial output has papermill's error banner and stops at the failing cell
    nb = read(work / "out" / f"broken_{DAY}.ipynb")
    assert ERROR_MARKER_TAG in nb.cells[0].metadata.get("tags", [])
    text = printed(nb)
    assert "before the failure 2019-11-07" in text
    assert "never printed" not in text


def test_task_execution_timeout_stops_the_run_cleanly(
    airflow: Airflow, fail_run, work: Path
) -> None:
    # execution_timeout=10s: paramill's own run limit (9 s) fires first, so the kernel is
    # stopped and the partial output written before Airflow would kill the task
    assert airflow.task_states("paramill_fail")[("slow", -1)] == "failed"
    assert "the run exceeded 9 s" in fail_run.stdout
    nb = read(work / "out" / "slow.ipynb")
    assert ERROR_MARKER_TAG in nb.cells[0].metadata.get("tags", [])
    assert "started" in printed(nb)


def test_html_output_and_records(airflow: Airflow, fail_run, work: Path) -> None:
    # beside the failing task, in the same Dag: one failure does not stop independent tasks
    assert airflow.task_states("paramill_fail")[("html", -1)] == "success", fail_run.stdout[-5000:]
    html = (work / "out" / "html.html").read_text()
    assert "<html" in html.lower() and "tick 2" in html
    (value,) = airflow.query(
        "SELECT value FROM xcom WHERE dag_id = 'paramill_fail' AND task_id = 'html'"
        " AND key = 'return_value'"
    )[0]
    returned = json.loads(value)
    assert returned["html_output"] == str(work / "out" / "html.html")
    assert returned["records"] == {"day_types": 5}


# -- provider registration and the example ----------------------------------------------------
def test_providers_list_shows_paramill(airflow: Airflow) -> None:
    listed = airflow.run("providers", "list")
    assert listed.returncode == 0, listed.stdout[-3000:]
    import paramill

    row = next(line for line in listed.stdout.splitlines() if line.startswith("paramill "))
    assert paramill.__version__ in row


def test_paramill_import_does_not_import_airflow() -> None:
    code = (
        "import sys, paramill, paramill.integrations.airflow as a; a.get_provider_info(); "
        "print(any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_bikeshare_example_dag(airflow: Airflow, tmp_path: Path) -> None:
    bikeshare = tmp_path / "bikeshare"
    bikeshare.mkdir()
    for name in ("report.ipynb", "make_data.py"):
        shutil.copy(ROOT / "examples" / "bikeshare" / name, bikeshare / name)
    shutil.copy(ROOT / "examples" / "airflow" / "bikeshare_dag.py", airflow.home / "dags")
    airflow.env["BIKESHARE_DIR"] = str(bikeshare)
    try:
        done = airflow.dags_test("bikeshare_daily_report")
    finally:
        del airflow.env["BIKESHARE_DIR"]
    assert done.returncode == 0, done.stdout[-5000:]
    nb = read(bikeshare / "output" / f"report_{DAY}.ipynb")
    assert nb.metadata.papermill.parameters["date"] == DAY
    assert nb.metadata.papermill.parameters["data_path"] == str(bikeshare / "data" / "trips.csv")
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]


# -- warm kernels -----------------------------------------------------------------------------
WARM_DAG = """
import datetime
from pathlib import Path
from airflow.sdk import DAG
from paramill.integrations.airflow import NotebookOperator

WORK = Path({work!r})

with DAG("paramill_warm", schedule=None, start_date=datetime.datetime(2019, 1, 1)):
    NotebookOperator(
        task_id="warm",
        input_nb=str(WORK / "warm.ipynb"),
        output_nb=str(WORK / "out" / "warm_{{{{ ts_nodash }}}}.ipynb"),
        warm=True,
    )
"""


def test_warm_task_runs_on_a_kernel_forked_from_the_warm_server(
    airflow: Airflow, work: Path
) -> None:
    """``warm=True``: the first task run starts the worker user's warm kernel server; the next
    task runs on a kernel forked from it."""
    import time

    from paramill import warm

    folder = Path(tempfile.mkdtemp(prefix="pw-af-", dir="/tmp")) / "w"
    env = {**airflow.env, warm.DIR_VAR: str(folder), warm.IDLE_VAR: "120"}
    runner = Airflow(airflow.venv, airflow.home, env)
    write_notebook(
        work / "warm.ipynb", "import os, json\nprint('ppid', os.getppid())", parameters="x = 1"
    )
    write_dag(airflow, "paramill_warm", WARM_DAG, work)
    before = os.environ.get(warm.DIR_VAR)
    os.environ[warm.DIR_VAR] = str(folder)
    try:
        first = runner.dags_test("paramill_warm", "2019-11-07")
        assert first.returncode == 0, first.stdout[-5000:]
        deadline = time.monotonic() + 120
        servers: list[dict] = []
        while time.monotonic() < deadline:
            servers = [s for s in warm.servers() if s["state"] == "serving"]
            if servers and not [s for s in warm.servers() if s["state"] == "starting"]:
                break
            time.sleep(0.2)
        assert len(servers) == 1 and servers[0]["kind"] == "kernel", servers
        second = runner.dags_test("paramill_warm", "2019-11-08")
        assert second.returncode == 0, second.stdout[-5000:]
        outputs = sorted((work / "out").glob("warm_20191108*.ipynb"))
        assert len(outputs) == 1
        assert f"ppid {servers[0]['pid']}" in printed(read(outputs[0]))
    finally:
        warm.stop_all()
        if before is None:
            os.environ.pop(warm.DIR_VAR, None)
        else:
            os.environ[warm.DIR_VAR] = before
        shutil.rmtree(folder.parent, ignore_errors=True)
