"""paramill.record inside a real python3 kernel; reading records back (paramill, scrapbook and
papermill formats) through the API, RunResult and the `paramill records` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

import paramill
from paramill.errors import RecordError
from paramill.records import MIMETYPE, _encode, find_records

from .conftest import make_notebook, run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

RECORDING_CELLS = [
    ("code", "n = 1", "parameters"),
    "import paramill, pandas as pd, numpy as np\n"
    "import matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt",
    "paramill.record('answer', n * 21)\n"
    "paramill.record('mixed', {'xs': [1, 2.5, None], 'ok': True, 's': 'é'})\n"
    "paramill.record('np_scalar', np.int64(7))\n"
    "paramill.record('table', pd.DataFrame({'a': [1, 2], 'when': pd.to_datetime("
    "['2019-11-07', '2019-11-08']), 'b': ['x', 'y']}))\n"
    "fig, ax = plt.subplots(figsize=(2, 2)); ax.plot([1, 2, 3])\n"
    "paramill.record('chart', fig); plt.close(fig)\n"
    "paramill.record('hidden', 'quiet', display=False)",
    "paramill.record('answer', n * 42)  # a later record of a name wins",
]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, paramill.RunResult]:
    folder = tmp_path_factory.mktemp("records")
    source = folder / "in.ipynb"
    nbformat.write(make_notebook(RECORDING_CELLS), source)
    out = folder / "out.ipynb"
    result = paramill.run(source, out, {"n": 2})
    assert result.ok, result.error
    return out, result


def test_run_result_and_read_notebook_give_the_values_back(recorded) -> None:
    out, result = recorded
    for records in (result.records, paramill.read_notebook(out).records):
        assert list(records) == ["mixed", "np_scalar", "table", "chart", "hidden", "answer"]
        assert records["answer"] == 84
        assert records["mixed"] == {"xs": [1, 2.5, None], "ok": True, "s": "é"}
        assert records["np_scalar"] == 7
        assert records["hidden"] == "quiet"
        table = records["table"]
        assert isinstance(table, pd.DataFrame)
        expected = pd.DataFrame(
            {"a": [1, 2], "when": pd.to_datetime(["2019-11-07", "2019-11-08"]), "b": ["x", "y"]}
        )
        pd.testing.assert_frame_equal(table, expected, check_dtype=False)
        assert str(table["when"].dtype).startswith("datetime64")
        assert records["chart"].startswith(PNG_MAGIC) and len(records["chart"]) > 500
    assert paramill.read_records(str(out))["answer"] == 84
    assert paramill.read_notebook(out).parameters == {"n": 2}


def test_records_display_with_a_fallback_for_people(recorded) -> None:
    out, _ = recorded
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "display_data"]
    by_name = {o.data[MIMETYPE]["name"]: o for o in outputs if MIMETYPE in o.data}
    assert by_name["mixed"].data["text/plain"].startswith("mixed = {")
    assert "<table" in by_name["table"].data["text/html"]
    assert by_name["chart"].data["image/png"]  # the figure shows as an image
    assert by_name["chart"].data[MIMETYPE]["data"] is None  # and is stored once
    assert by_name["hidden"].data["text/plain"] == ""
    assert by_name["answer"].metadata == {"paramill": {"record": "answer"}}


def test_records_command_prints_a_table_and_json(recorded) -> None:
    out, _ = recorded
    table = run_cli("records", out)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["name", "kind", "value"]
    assert any(line.split()[:3] == ["answer", "json", "84"] for line in lines)
    assert any("DataFrame: 2 rows x 3 columns" in line for line in lines)
    as_json = run_cli("records", out, "--json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["answer"] == 84 and data["mixed"]["s"] == "é"
    assert [row["b"] for row in data["table"]] == ["x", "y"]
    assert data["chart"]["mimetype"] == "image/png"
    missing = run_cli("records", out.parent / "nope.ipynb")
    assert missing.returncode == 6 and "no such file" in missing.stderr


def test_scrapbook_scraps_and_papermill_records_are_read(tmp_path: Path) -> None:
    nb = make_notebook(["sb.glue(...)"])
    nb.cells[0].outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "application/scrapbook.scrap.json+json": {
                    "name": "metrics",
                    "data": {"auc": 0.91},
                    "encoder": "json",
                    "version": 1,
                }
            },
            metadata={"scrapbook": {"name": "metrics", "data": True, "display": False}},
        ),
        nbformat.v4.new_output(
            "display_data",
            data={
                "application/scrapbook.scrap.text+json": {
                    "name": "label",
                    "data": "hello",
                    "encoder": "text",
                    "version": 2,
                }
            },
        ),
        nbformat.v4.new_output(
            "display_data", data={"application/papermill.record+json": {"old": [1, 3, 5]}}
        ),
        # a display-only scrap carries no value
        nbformat.v4.new_output(
            "display_data",
            data={"text/plain": "'Just here!'"},
            metadata={"scrapbook": {"name": "shown", "data": False, "display": True}},
        ),
    ]
    path = tmp_path / "scraps.ipynb"
    nbformat.write(nb, path)
    assert paramill.read_notebook(path).records == {
        "metrics": {"auc": 0.91},
        "label": "hello",
        "old": [1, 3, 5],
    }
    cli = run_cli("records", path, "--json")
    assert json.loads(cli.stdout)["metrics"] == {"auc": 0.91}


def test_values_that_cannot_be_stored_are_refused() -> None:
    with pytest.raises(RecordError, match="not JSON-able"):
        _encode("obj", object())
    with pytest.raises(RecordError):
        _encode("nan", float("nan"))
    with pytest.raises(RecordError, match="non-empty string"):
        paramill.record("", 1)
    payload, shown = _encode("png", PNG_MAGIC + b"rest")
    assert payload["encoder"] == "image" and shown["image/png"]


def test_find_records_ignores_other_outputs() -> None:
    nb = make_notebook(["print(1)"])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    assert find_records(nb) == {}


def test_importing_paramill_in_a_kernel_stays_light() -> None:
    code = (
        "import sys, paramill\n"
        "paramill.record\n"
        "heavy = [m for m in ('nbclient', 'nbformat', 'paramill.execute', 'pandas', "
        "'matplotlib', 'jupyter_client') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
