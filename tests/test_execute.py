"""The Python API end to end on a real ipykernel: metadata, injection, failures, saving."""

from __future__ import annotations

import datetime
import pickle
import threading
import time

import nbformat
import pytest

import paramill
from paramill import storage
from paramill.errors import (
    CellTimeoutError,
    ExecutionError,
    InputError,
    KernelDiedError,
    KernelError,
    MissingParameterError,
    ParameterError,
    RunTimeoutError,
    StorageError,
)
from tests.conftest import COMPLEX_PARAMETERS, make_notebook, read_nb

pytestmark = pytest.mark.usefixtures("no_orphan_kernels")

PARAMS_CELL = ("code", "a = 1\nb = 'x'", "parameters")


def statuses(nb):
    return [c["metadata"].get("papermill", {}).get("status") for c in nb["cells"]]


def test_success_metadata_and_injection(write_nb, tmp_path):
    src = write_nb([("md", "# title"), PARAMS_CELL, "print(a, b)", ("raw", "raw")])
    out = tmp_path / "sub" / "dir" / "out.ipynb"
    nb = paramill.execute_notebook(src, out, {"a": 5, "b": "hi"}, progress_bar=False)
    saved = read_nb(out)
    assert out.read_text().endswith("}\n")  # newline-terminated, parents created
    cells = saved["cells"]
    assert cells[2]["metadata"]["tags"] == ["injected-parameters"]
    assert "".join(cells[2]["source"]) == '# Parameters\na = 5\nb = "hi"\n'
    assert cells[3]["outputs"][0]["text"] == "5 hi\n"
    assert [c.get("execution_count") for c in cells] == [None, 1, 2, 3, None]
    assert statuses(saved) == ["completed"] * 5
    meta = saved["metadata"]["papermill"]
    assert meta["parameters"] == {"a": 5, "b": "hi"}
    assert meta["input_path"] == str(src) and meta["output_path"] == str(out)
    assert meta["exception"] is None and meta["duration"] > 0
    assert set(meta) >= {"default_parameters", "environment_variables", "version", "start_time"}
    start = datetime.datetime.fromisoformat(meta["start_time"])
    assert start.tzinfo is not None
    for cell in cells:
        pm = cell["metadata"]["papermill"]
        assert set(pm) == {"exception", "start_time", "end_time", "duration", "status"}
        assert pm["duration"] >= 0
    assert saved["metadata"]["language_info"]["name"] == "python"
    assert nb.cells[3].outputs[0].text == "5 hi\n"


def test_injection_replaces_previous_injected_cell(write_nb, tmp_path):
    src = write_nb([PARAMS_CELL, "print(a)"])
    first = tmp_path / "first.ipynb"
    paramill.execute_notebook(src, first, {"a": 2}, progress_bar=False)
    second = paramill.execute_notebook(first, None, {"b": "y"}, progress_bar=False)
    injected = [c for c in second.cells if "injected-parameters" in c.metadata.tags]
    assert len(injected) == 1 and injected[0].source == '# Parameters\nb = "y"\n'
    assert second.cells[1] is injected[0]
    assert second.cells[2].outputs[0].text == "1\n"  # old injected a=2 discarded


def test_injection_at_top_without_parameters_cell(write_nb, caplog):
    src = write_nb([("md", "# t"), "print(a)"])
    nb = paramill.execute_notebook(src, None, {"a": 3}, progress_bar=False)
    assert nb.cells[0].metadata.tags == ["injected-parameters"]
    assert "does not contain a cell with tag 'parameters'" in caplog.text
    assert "Passed unknown parameter: a" in caplog.text
    assert nb.cells[2].outputs[0].text == "3\n"


def test_no_parameters_no_injection(write_nb):
    nb = paramill.execute_notebook(write_nb([PARAMS_CELL, "a"]), None, progress_bar=False)
    assert not any("injected-parameters" in c.metadata.tags for c in nb.cells)


def test_only_first_parameters_cell_counts(write_nb):
    src = write_nb([PARAMS_CELL, ("code", "a = 9", "parameters"), "print(a)"])
    nb = paramill.execute_notebook(src, None, {"a": 4}, progress_bar=False)
    assert nb.cells[1].metadata.tags == ["injected-parameters"]
    assert nb.cells[3].outputs[0].text == "9\n"


def test_failure_banner_anchor_and_error(write_nb, tmp_path):
    src = write_nb([("md", "m"), PARAMS_CELL, "x = 1", ("md", "m2"), "1/0", "print('after')"])
    out = tmp_path / "out.ipynb"
    with pytest.raises(ExecutionError) as info:
        paramill.execute_notebook(src, out, {"a": 2}, progress_bar=False)
    err = info.value
    assert (err.cell_index, err.exec_count, err.ename) == (5, 4, "ZeroDivisionError")
    assert err.evalue == "division by zero" and err.source == "1/0"
    assert any("ZeroDivisionError" in line for line in err.traceback)
    assert 'Exception encountered at "In [4]"' in str(err)
    assert str(pickle.loads(pickle.dumps(err))) == str(err)
    saved = read_nb(out)  # written before the error was raised
    tags = [c["metadata"].get("tags") for c in saved["cells"]]
    assert tags[0] == ["papermill-error-cell-tag"] and tags[6] == ["papermill-error-cell-tag"]
    assert "In [4]" in "".join(saved["cells"][0]["source"])
    assert 'id="papermill-error-cell"' in "".join(saved["cells"][6]["source"])
    assert statuses(saved)[7:] == ["failed", "pending"]
    assert saved["cells"][8]["execution_count"] is None
    assert saved["metadata"]["papermill"]["exception"] is True
    # a re-run removes old markers first
    src2 = tmp_path / "fixed.ipynb"
    nb = nbformat.read(out, as_version=4)
    nb.cells[7].source = "pass"
    nbformat.write(nb, src2)
    again = paramill.execute_notebook(src2, None, progress_bar=False)
    assert not any("papermill-error-cell-tag" in c.metadata.tags for c in again.cells)


@pytest.mark.parametrize(
    "code, fails, ename",
    [
        ("import sys; sys.exit(1)", True, "SystemExit"),
        ("import sys; sys.exit(0)", False, None),
        ("import sys; sys.exit()", False, None),
        ("raise SystemExit", False, None),
        ("%this_magic_does_not_exist", True, "UsageError"),
    ],
)
def test_exit_and_magic(write_nb, code, fails, ename):
    src = write_nb(["x = 1", code, "print('after')"])
    if fails:
        with pytest.raises(ExecutionError) as info:
            paramill.execute_notebook(src, None, progress_bar=False)
        assert info.value.ename == ename
    else:
        nb = paramill.execute_notebook(src, None, progress_bar=False)
        assert nb.cells[2].execution_count is None  # stopped there, cleanly
        assert not any("papermill-error-cell-tag" in c.metadata.tags for c in nb.cells)


def test_raises_exception_tag_allowed_unless_strict(write_nb):
    src = write_nb([("code", "1/0", "raises-exception"), "print('ran')"])
    nb = paramill.execute_notebook(src, None, progress_bar=False)
    assert nb.cells[1].outputs[0].text == "ran\n"
    with pytest.raises(ExecutionError):
        paramill.execute_notebook(src, None, progress_bar=False, strict=True)


def cell_seconds(nb: dict, text: str) -> float:
    """papermill's duration of the cell whose source contains ``text``."""
    cell = next(c for c in nb["cells"] if text in "".join(c["source"]) and c["cell_type"] == "code")
    return cell["metadata"]["papermill"]["duration"]


def test_cell_timeout(write_nb, tmp_path):
    src = write_nb(["x = 1", "import time; time.sleep(60)", "print('never')"])
    out = tmp_path / "out.ipynb"
    with pytest.raises(CellTimeoutError) as info:
        paramill.execute_notebook(src, out, execution_timeout=1, progress_bar=False)
    assert info.value.cell_index == 1 and info.value.exit_code == 7
    saved = read_nb(out)
    # from the cell's start, not the kernel's: stopped at the timeout, not at the sleep's end
    assert cell_seconds(saved, "time.sleep(60)") < 1 + 10
    assert "timed out" in "".join(saved["cells"][0]["source"])
    assert statuses(saved)[-2:] == ["failed", "pending"]
    assert saved["metadata"]["papermill"]["exception"] is True


def test_run_timeout(write_nb, tmp_path):
    src = write_nb(["import time", "time.sleep(60)"])
    out = tmp_path / "out.ipynb"
    t0 = time.monotonic()  # the run's timeout counts from the run's start, kernel start included
    with pytest.raises(RunTimeoutError) as info:
        paramill.execute_notebook(src, out, run_timeout=3, progress_bar=False)
    assert time.monotonic() - t0 < 3 + 15
    assert info.value.cell_index == 1
    assert "run timed out" in "".join(read_nb(out)["cells"][0]["source"])


def test_kernel_killed_mid_cell(write_nb, tmp_path):
    src = write_nb(
        ["import os, signal", "print('dying'); os.kill(os.getpid(), signal.SIGKILL)", "2"]
    )
    out = tmp_path / "out.ipynb"
    with pytest.raises(KernelDiedError) as info:
        paramill.execute_notebook(src, out, progress_bar=False)
    assert info.value.cell_index == 1 and info.value.exit_code == 138
    saved = read_nb(out)
    assert cell_seconds(saved, "SIGKILL") < 10  # from the cell (the kill) to the detection
    assert "kernel died" in "".join(saved["cells"][0]["source"])
    assert statuses(saved)[-2:] == ["failed", "pending"]


def test_prepare_only_starts_no_kernel(write_nb, tmp_path):
    src = write_nb([PARAMS_CELL, "print(a)"], kernel="no-such-kernel")
    out = tmp_path / "prepared.ipynb"
    nb = paramill.execute_notebook(src, out, {"a": 7}, prepare_only=True)
    assert nb.cells[1].source == "# Parameters\na = 7\n"
    assert "start_time" not in read_nb(out)["metadata"]["papermill"]


def test_non_finite_parameters_keep_the_notebook_strict_json(write_nb, tmp_path):
    """README, "Where paramill differs": papermill writes a bare NaN token (not JSON)."""
    import json

    src = write_nb([PARAMS_CELL, "print(a, b)"])
    out = tmp_path / "out.ipynb"
    params = {"a": float("nan"), "b": [float("-inf")]}
    paramill.execute_notebook(src, out, params, progress_bar=False)

    def refuse(token):
        raise AssertionError(f"not JSON: {token}")

    saved = json.loads(out.read_text("utf-8"), parse_constant=refuse)
    assert saved["metadata"]["papermill"]["parameters"] == {"a": "nan", "b": ["-inf"]}
    assert saved["cells"][1]["source"][1:] == ["a = float('nan')\n", "b = [float('-inf')]\n"]
    assert saved["cells"][2]["outputs"][0]["text"] == ["nan [-inf]\n"]


def test_report_mode_keeps_other_jupyter_keys(write_nb):
    """README, "Where paramill differs": papermill replaces metadata.jupyter whole."""
    nb = make_notebook([PARAMS_CELL, "1"])
    nb.cells[1].metadata["jupyter"] = {"outputs_hidden": True}
    src = write_nb([])
    nbformat.write(nb, src)
    out = paramill.execute_notebook(src, None, {"a": 1}, report_mode=True, progress_bar=False)
    code = [c for c in out.cells if c.cell_type == "code"]
    assert all(c.metadata.jupyter.source_hidden for c in code)
    assert out.cells[2].metadata.jupyter.outputs_hidden is True


def test_cwd_without_chdir(write_nb, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.txt").write_text("from-cwd")
    src = write_nb(["print(open('data.txt').read())"])
    import os

    before = os.getcwd()
    nb = paramill.execute_notebook(src, None, cwd=work, progress_bar=False)
    assert nb.cells[0].outputs[0].text == "from-cwd\n"
    assert os.getcwd() == before


def test_concurrent_runs_in_threads_with_different_cwd(write_nb, tmp_path):
    src = write_nb(["import os; print(os.getcwd())"])
    results = {}

    def go(name):
        d = tmp_path / name
        d.mkdir()
        nb = paramill.execute_notebook(src, None, cwd=d, progress_bar=False)
        results[name] = nb.cells[0].outputs[0].text.strip()

    threads = [threading.Thread(target=go, args=(n,)) for n in ("t1", "t2", "t3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == {n: str(tmp_path / n) for n in ("t1", "t2", "t3")}


def test_output_none_and_path_templating(write_nb, tmp_path):
    src = write_nb([PARAMS_CELL, "a"])
    nb = paramill.execute_notebook(src, None, {"a": 1}, progress_bar=False)
    assert nb.metadata.papermill.output_path is None
    out = paramill.execute_notebook(
        str(src), str(tmp_path / "out_{a}_{b}.ipynb"), {"a": 3, "b": "z"}, progress_bar=False
    )
    assert (tmp_path / "out_3_z.ipynb").exists()
    assert out.metadata.papermill.output_path == str(tmp_path / "out_3_z.ipynb")
    res = paramill.run(src, str(tmp_path / "{pm[run_uuid]}.ipynb"), {"a": 1})
    assert len(list(tmp_path.glob("*-*-*-*-*.ipynb"))) == 1 and res.ok
    with pytest.raises(MissingParameterError, match="nope"):
        paramill.execute_notebook(src, str(tmp_path / "{nope}.ipynb"), {"a": 1})
    literal = tmp_path / "odd{name.ipynb"
    paramill.execute_notebook(src, literal, {"a": 1}, progress_bar=False)
    assert literal.exists()


def test_parameters_file_and_yaml_in_api(write_nb, tmp_path):
    pf = tmp_path / "p.yaml"
    pf.write_text("a: 10\nb: from-file\n")
    src = write_nb([PARAMS_CELL, "print(a, b)"])
    nb = paramill.execute_notebook(
        src, None, {"b": "dict"}, parameters_file=pf, parameters_yaml="a: 20", progress_bar=False
    )
    assert nb.cells[2].outputs[0].text == "20 dict\n"


def test_strict_rejects_before_kernel_start(write_nb):
    src = write_nb([("code", "a: int = 1", "parameters"), "a"], kernel="no-such-kernel")
    with pytest.raises(ParameterError, match="unknown parameter 'zz'"):
        paramill.execute_notebook(src, None, {"zz": 1}, strict=True)
    with pytest.raises(ParameterError, match="expected int"):
        paramill.execute_notebook(src, None, {"a": "x"}, strict=True)


def test_invalid_parameter_name(write_nb):
    with pytest.raises(ParameterError, match="not a valid Python identifier"):
        paramill.execute_notebook(write_nb(["1"]), None, {"bad name": 1})


def test_stdout_and_stderr_files(write_nb, tmp_path):
    src = write_nb(["import sys; print('out1'); print('err1', file=sys.stderr)", "print('out2')"])
    with open(tmp_path / "o.txt", "w") as o, open(tmp_path / "e.txt", "w") as e:
        paramill.execute_notebook(src, None, stdout_file=o, stderr_file=e, progress_bar=False)
    assert (tmp_path / "o.txt").read_text() == "out1\nout2\n"
    assert (tmp_path / "e.txt").read_text() == "err1\n"


def test_saves_are_coalesced_and_progress_visible(write_nb, tmp_path, monkeypatch):
    writes = []
    real = storage.write_text
    monkeypatch.setattr(
        storage, "write_text", lambda p, t, o=None: (writes.append(t), real(p, t, o))
    )
    src = write_nb([f"x = {i}" for i in range(60)] + ["import time; time.sleep(2.5)", "1"])
    out = tmp_path / "out.ipynb"
    seen = {}

    def watch():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "running" not in seen:
            try:
                nb = read_nb(out)
                if statuses(nb)[60] == "running":
                    seen["running"] = True
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    paramill.execute_notebook(src, out, progress_bar=False)
    watcher.join()
    # papermill writes 2 per cell + 2 (here ~126); we write about once a second
    assert len(writes) <= 10, len(writes)
    assert seen.get("running"), "the long cell never showed as running in the saved output"


def test_no_request_save_writes_once(write_nb, tmp_path, monkeypatch):
    writes = []
    real = storage.write_text
    monkeypatch.setattr(
        storage, "write_text", lambda p, t, o=None: (writes.append(t), real(p, t, o))
    )
    src = write_nb(["import time; time.sleep(1.2)", "time.sleep(1.2)"])
    paramill.execute_notebook(
        src, tmp_path / "o.ipynb", request_save_on_cell_execute=False, progress_bar=False
    )
    assert len(writes) == 1


def test_missing_kernel_lists_installed(write_nb):
    with pytest.raises(KernelError, match="python3"):
        paramill.execute_notebook(write_nb(["1"]), None, kernel_name="nope-kernel")


def test_kernel_override_rewrites_kernelspec(write_nb):
    nb = paramill.execute_notebook(write_nb(["1"], kernel="other"), None, kernel_name="python3")
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.metadata.kernelspec.language == "python"


def test_unknown_engine(write_nb):
    with pytest.raises(InputError, match="no engine named 'warp'"):
        paramill.execute_notebook(write_nb(["1"]), None, engine_name="warp")


@pytest.mark.parametrize(
    "content, error, match",
    [
        ("", InputError, "empty"),
        ("{not json", InputError, "invalid JSON"),
        ('{"a": 1}', InputError, "not a notebook"),
        (
            '{"cells": "x", "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
            InputError,
            "invalid",
        ),
    ],
)
def test_bad_input_notebooks(tmp_path, content, error, match):
    src = tmp_path / "bad.ipynb"
    src.write_text(content)
    with pytest.raises(error, match=match):
        paramill.execute_notebook(src, tmp_path / "out.ipynb")
    assert src.read_text() == content and not (tmp_path / "out.ipynb").exists()


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(StorageError, match="no such file"):
        paramill.execute_notebook(tmp_path / "missing.ipynb", None)
    with pytest.raises(StorageError, match="directory"):
        paramill.execute_notebook(tmp_path, None)


def test_nbformat3_is_upgraded(tmp_path):
    v3 = {
        "metadata": {"name": "", "kernelspec": {"name": "python3", "language": "python"}},
        "nbformat": 3,
        "nbformat_minor": 0,
        "worksheets": [
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "input": "print(6*7)",
                        "language": "python",
                        "metadata": {},
                        "outputs": [],
                    }
                ],
                "metadata": {},
            }
        ],
    }
    import json

    src = tmp_path / "v3.ipynb"
    src.write_text(json.dumps(v3))
    nb = paramill.execute_notebook(src, None, progress_bar=False)
    assert nb.nbformat == 4 and nb.cells[0].outputs[0].text == "42\n"


def test_inspect_notebook(write_nb):
    src = write_nb([("code", "a: float = 2.25  # Variable a\nmsg = None", "parameters")])
    assert paramill.inspect_notebook(src) == {
        "a": {"name": "a", "inferred_type_name": "float", "default": "2.25", "help": "Variable a"},
        "msg": {"name": "msg", "inferred_type_name": "None", "default": "None", "help": ""},
    }
    assert paramill.inspect_notebook(write_nb(["1"], name="none.ipynb")) == {}


def test_inspect_notebook_matches_papermill_on_its_fixture(write_nb):
    src = write_nb([("code", COMPLEX_PARAMETERS, "parameters")])
    # papermill's test_inspect_notebook expectation for complex_parameters.ipynb
    assert paramill.inspect_notebook(src) == {
        "msg": {"name": "msg", "inferred_type_name": "None", "default": "None", "help": ""},
        "a": {"name": "a", "inferred_type_name": "float", "default": "2.25", "help": "Variable a"},
        "b": {
            "name": "b",
            "inferred_type_name": "List[str]",
            "default": "['Hello','World']",
            "help": "Nice list",
        },
        "c": {"name": "c", "inferred_type_name": "NoneType", "default": "None", "help": ""},
    }


def test_notebook_node_input_not_mutated():
    nb = make_notebook([PARAMS_CELL, "print(a)"])
    before = nbformat.writes(nb)
    out = paramill.execute_notebook(nb, None, {"a": 2}, progress_bar=False)
    assert nbformat.writes(nb) == before and out.cells[2].outputs[0].text == "2\n"


def test_exception_from_outside_kills_kernel_and_saves(tmp_path):
    """A scheduler's SIGTERM handler raising in the main thread (Airflow's way) mid-cell: the
    exception goes on, but the kernel is killed and the partial output saved, marked cancelled."""
    import os
    import signal

    class Terminated(BaseException):
        pass

    def handler(signum, frame):
        raise Terminated("task terminated")

    previous = signal.signal(signal.SIGUSR1, handler)
    timer = threading.Timer(3, lambda: os.kill(os.getpid(), signal.SIGUSR1))
    out = tmp_path / "out.ipynb"
    try:
        timer.start()
        with pytest.raises(Terminated):
            paramill.run(
                make_notebook(["1", "import time; time.sleep(30)"]), out, handle_signals=False
            )
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)
    saved = read_nb(out)
    assert "cancelled" in saved.cells[0].source
    assert statuses(saved)[-1] == "failed"
