"""papermill's run metadata: per-cell status and timings, the notebook's start/end/duration."""

from __future__ import annotations

import datetime
import time
from typing import TYPE_CHECKING

from ..errors import ExecutionError
from .client import error_output

if TYPE_CHECKING:
    from nbformat import NotebookNode


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def reset(nb: NotebookNode) -> None:
    """Every cell pending, without outputs; the run's start time."""
    meta = nb.metadata.setdefault("papermill", {})
    meta.update(start_time=now_iso(), end_time=None, duration=None, exception=None)
    for cell in nb.cells:
        cell.metadata["papermill"] = {
            "exception": None,
            "start_time": None,
            "end_time": None,
            "duration": None,
            "status": "pending",
        }
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None


def start_cell(cell: NotebookNode) -> None:
    cell.metadata.papermill.update(start_time=now_iso(), status="running", exception=False)


def finish_cell(cell: NotebookNode) -> None:
    meta = cell.metadata.papermill
    meta["end_time"] = now_iso()
    if meta.get("start_time"):
        start = datetime.datetime.fromisoformat(meta["start_time"])
        end = datetime.datetime.fromisoformat(meta["end_time"])
        meta["duration"] = (end - start).total_seconds()
    if meta["status"] != "failed":
        meta["status"] = "completed"


def fail_cell(nb: NotebookNode, cell: NotebookNode) -> None:
    cell.metadata.papermill.update(exception=True, status="failed")
    nb.metadata.papermill["exception"] = True


def finish_notebook(nb: NotebookNode, started: float) -> None:
    # cells after a stop stay "pending": they did not run
    meta = nb.metadata.papermill
    meta["end_time"] = now_iso()
    meta["duration"] = round(time.monotonic() - started, 6)


def add_error_output(nb: NotebookNode, error: ExecutionError) -> None:
    # also when no cell ran (stopped while the kernel started): the run did fail
    nb.metadata.papermill["exception"] = True
    if error.cell_index is None:
        return
    cell = nb.cells[error.cell_index]
    if cell.cell_type == "code":
        cell.outputs.append(error_output(error.ename, error.evalue))
