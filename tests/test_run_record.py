"""--run-record on success, cell failures, timeouts and runs that never start; --deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

import paramill

from .conftest import run_cli


def _record(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_record_of_a_successful_run(write_nb, tmp_path: Path) -> None:
    source = write_nb([("code", "n = 1", "parameters"), "import paramill\nparamill.record('m', n)"])
    done = run_cli(
        source, tmp_path / "o.ipynb", "-p", "n", "3", "--run-record", tmp_path / "run_{n}.json"
    )
    assert done.returncode == 0, done.stderr
    rec = _record(tmp_path / "run_3.json")
    assert rec["status"] == "completed" and rec["exit_code"] == 0 and rec["error"] is None
    assert rec["parameters"] == {"n": 3}
    assert rec["input_path"] == str(source) and rec["output_path"] == str(tmp_path / "o.ipynb")
    assert rec["kernel"] == "python3"
    assert rec["start_time"] < rec["end_time"] and rec["duration"] > 0
    assert [c["status"] for c in rec["cells"]] == ["completed"] * 3
    assert all(isinstance(c["duration"], float) for c in rec["cells"])
    assert rec["records"] == ["m"]


def test_record_of_a_failed_cell_has_the_error(write_nb, tmp_path: Path) -> None:
    source = write_nb(["x = 1", "def f():\n    raise KeyError('missing-key')\nf()", "x"])
    done = run_cli(source, tmp_path / "o.ipynb", "--run-record", tmp_path / "run.json")
    assert done.returncode == 1
    rec = _record(tmp_path / "run.json")
    assert rec["status"] == "failed" and rec["exit_code"] == 1
    error = rec["error"]
    assert error["cell_index"] == 1 and error["ename"] == "KeyError"
    assert error["evalue"] == "'missing-key'"
    assert "raise KeyError('missing-key')" in error["traceback"]
    assert "\x1b[" not in error["traceback"]  # colours stripped
    assert [c["status"] for c in rec["cells"]][1:] == ["failed", "pending"]
    # the API's RunResult gives the same record
    result = paramill.run(source, None)
    assert result.to_record()["error"]["ename"] == "KeyError"
    assert result.to_record()["status"] == "failed"


def test_record_of_a_timeout_matches_the_exit_code(write_nb, tmp_path: Path) -> None:
    source = write_nb(["import time\ntime.sleep(30)"])
    done = run_cli(
        source, "--execution-timeout", "1", "--run-record", tmp_path / "run.json", timeout=60
    )
    assert done.returncode == 7
    rec = _record(tmp_path / "run.json")
    assert rec["status"] == "timeout" and rec["exit_code"] == 7
    assert rec["error"]["type"] == "CellTimeoutError" and rec["error"]["cell_index"] == 0


def test_record_is_written_when_the_run_cannot_start(write_nb, tmp_path: Path) -> None:
    missing = run_cli(tmp_path / "nope.ipynb", "--run-record", tmp_path / "a.json")
    assert missing.returncode == 6
    rec = _record(tmp_path / "a.json")
    assert rec["status"] == "error" and rec["exit_code"] == 6
    assert "no such file" in rec["error"]["message"]
    source = write_nb([("code", "n = 1", "parameters")])
    strict = run_cli(
        source, "-p", "typo", "1", "--strict", "--run-record", tmp_path / "b.json",
        "-s", "k", "v-long",
    )  # fmt: skip
    assert strict.returncode == 4
    rec = _record(tmp_path / "b.json")
    assert rec["status"] == "error" and rec["exit_code"] == 4
    assert rec["parameters"] == {"typo": 1}
    assert "typo" in rec["error"]["message"]


DETERMINISTIC_CELLS = [
    ("code", "n = 1", "parameters"),
    "import time\ntime.sleep(0.05)\nprint('n is', n)",
    "import matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\n"
    "import matplotlib.pyplot as plt\nplt.plot([1, n]); plt.show()",
]


def test_deterministic_runs_are_byte_identical(write_nb, tmp_path: Path) -> None:
    source = write_nb(DETERMINISTIC_CELLS)
    outputs = []
    out = tmp_path / "out.ipynb"  # the same path: it is recorded in the metadata
    for _ in range(2):
        done = run_cli(source, out, "-p", "n", "4", "--deterministic")
        assert done.returncode == 0, done.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    nb = nbformat.reads(outputs[0].decode(), as_version=4)
    assert "start_time" not in nb.metadata.papermill and "duration" not in nb.metadata.papermill
    for cell in nb.cells:
        assert "execution" not in cell.metadata
        assert not {"start_time", "end_time", "duration"} & set(cell.metadata.papermill)
    assert nb.cells[1].id == "injected-parameters"
    assert nb.cells[2].outputs[0].text == "n is 4\n"
    # without the flag, timings are there and differ from run to run
    plain = tmp_path / "plain.ipynb"
    paramill.run(source, plain, {"n": 4})
    assert nbformat.read(plain, as_version=4).metadata.papermill["duration"] > 0


def test_deterministic_failed_runs_are_identical_too(write_nb, tmp_path: Path) -> None:
    source = write_nb(["print('x')", "1 / 0"])
    texts = []
    for _ in range(2):
        result = paramill.run(source, tmp_path / "out.ipynb", deterministic=True)
        assert result.status == "failed"
        texts.append((tmp_path / "out.ipynb").read_text())
    assert texts[0] == texts[1]
    assert "papermill-error-marker-1" in texts[0]
