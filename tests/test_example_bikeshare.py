"""The README's main job: the bikeshare daily report template, run on a real python3 kernel."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

import paramill

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "bikeshare"
DATE = "2019-11-07"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bikeshare_{name}", EXAMPLE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trips_on(path: Path, date: str) -> int:
    with open(path, newline="", encoding="utf-8") as f:
        return sum(row["start_time"].startswith(date) for row in csv.DictReader(f))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernel working directory holding data/trips.csv, the template's default data path."""
    root = tmp_path_factory.mktemp("bikeshare")
    _load("make_data").write(root / "data" / "trips.csv")
    return root


def test_make_data_is_deterministic_and_spans_early_november(tmp_path: Path) -> None:
    make_data = _load("make_data")
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    count = make_data.write(first)
    make_data.write(second)
    assert first.read_bytes() == second.read_bytes()
    with open(first, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == count and 2000 <= count <= 6000
    assert list(rows[0]) == [
        "start_time",
        "subscriber_type",
        "start_station_id",
        "duration_minutes",
    ]
    days = sorted({row["start_time"][:10] for row in rows})
    assert days[0] == "2019-11-01" and days[-1] == "2019-11-14" and len(days) == 14


def test_committed_template_is_clean_and_up_to_date() -> None:
    committed = json.loads((EXAMPLE / "report.ipynb").read_text(encoding="utf-8"))
    built = json.loads(nbformat.writes(_load("build_notebook").build()))
    assert committed == built, "report.ipynb drifted from build_notebook.py: rerun it"
    assert committed["metadata"]["kernelspec"]["name"] == "python3"
    for cell in committed["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    tagged = [c for c in committed["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1 and 'date = "2019-11-01"' in "".join(tagged[0]["source"])


def test_report_runs_for_the_given_date(workdir: Path) -> None:
    expected = _trips_on(workdir / "data" / "trips.csv", DATE)
    # the default day has a different count, so the check below proves the date was used
    assert expected != _trips_on(workdir / "data" / "trips.csv", "2019-11-01")
    output = workdir / "output" / f"report_{DATE}.ipynb"

    nb = paramill.execute_notebook(
        EXAMPLE / "report.ipynb",
        output,
        parameters={"date": DATE},
        cwd=workdir,
        progress_bar=False,
    )

    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and f'date = "{DATE}"' in injected[0].source
    assert nb.metadata.papermill["parameters"] == {"date": DATE}
    printed = "".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    )
    assert f"{expected} trips on {DATE}" in printed
    figures = [
        cell.id
        for cell in nb.cells
        if cell.cell_type == "code"
        and any("image/png" in out.get("data", {}) for out in cell.outputs)
    ]
    assert figures == ["hourly-usage-plot", "subscribers-plot", "stations-plot", "heatmap-plot"]
    assert all(c.metadata.papermill["status"] == "completed" for c in nb.cells)
    saved = nbformat.read(output, as_version=4)
    outputs = [out for cell in saved.cells for out in cell.get("outputs", [])]
    assert sum("image/png" in out.get("data", {}) for out in outputs) == 4


def test_report_for_a_day_without_trips_fails_clearly(workdir: Path) -> None:
    with pytest.raises(paramill.ExecutionError) as info:
        paramill.execute_notebook(
            EXAMPLE / "report.ipynb",
            None,
            parameters={"date": "2020-01-01"},
            cwd=workdir,
            progress_bar=False,
        )
    assert info.value.ename == "ValueError" and "no trips on 2020-01-01" in info.value.evalue
