"""What a run produced (``RunResult``, its ``RunStatus``), and the step that reads it from the
executed notebook."""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import notebook as nbops
from .. import storage
from ..errors import ExecutionError, RunCancelledError
from ..records import decoded_records, run_record

if TYPE_CHECKING:
    from nbformat import NotebookNode

logger = logging.getLogger("paramill")


class RunStatus(str, enum.Enum):
    """A run's status; each equals (and prints as) its word in run records and the CLI."""

    PREPARED = "prepared"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    KERNEL_DIED = "kernel-died"
    CANCELLED = "cancelled"
    OUTPUT_ERROR = "output-error"

    def __str__(self) -> str:
        return self.value


@dataclass
class RunResult:
    """What a run produced: its status, the executed notebook and, on failure, the error."""

    status: RunStatus
    notebook: NotebookNode
    input_path: str | None
    output_path: str | None
    parameters: dict[str, Any]
    kernel_name: str | None = None
    error: ExecutionError | None = None
    start_time: str | None = None
    end_time: str | None = None
    duration: float | None = None
    cell_durations: list[float | None] = field(default_factory=list)
    #: values the notebook stored with ``paramill.record`` (see paramill.records)
    records: dict[str, Any] = field(default_factory=dict)
    html_output: str | None = None

    def __post_init__(self) -> None:
        # locations as shown and stored (run record, logs): URLs without credentials
        self.input_path = storage.display_url(self.input_path)
        self.output_path = storage.display_url(self.output_path)
        self.html_output = storage.display_url(self.html_output)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_record(self) -> dict[str, Any]:
        """The run record (``--run-record``): a JSON-able summary, secrets redacted."""
        return run_record(self)

    def raise_for_error(self) -> None:
        if self.error is not None:
            raise self.error


def mark_result(
    result: RunResult,
    nb: NotebookNode,
    error: ExecutionError | None,
    *,
    started: float,
    allow_errors: bool,
    strict: bool,
) -> NotebookNode:
    """Read the run's outcome from the executed notebook into ``result``: the error (the
    engine's, else the first cell error), error markers, timings, records. Returns the
    notebook as it is to be written."""
    import nbformat

    if error is None and not allow_errors:
        error = nbops.find_execution_error(nb, fail_on_allowed=strict)
    if error is not None:
        nb = nbops.add_error_markers(nb, error)
    result.status = RunStatus(error.status) if error is not None else RunStatus.COMPLETED
    result.notebook = nb = nbformat.from_dict(nb)  # attribute access all the way down
    result.error = error
    meta = nb.metadata.papermill
    result.start_time = meta.get("start_time")
    result.end_time = meta.get("end_time")
    result.duration = round(time.monotonic() - started, 6)
    result.cell_durations = [c.metadata.get("papermill", {}).get("duration") for c in nb.cells]
    result.records = decoded_records(nb)
    return nb


def interrupted_error(nb: NotebookNode, exc: BaseException) -> RunCancelledError:
    """Something outside paramill stopped the run (the engine has killed the kernel): the
    running cell is marked failed; the error to mark the partial output with."""
    running = [
        i
        for i, c in enumerate(nb.cells)
        if c.metadata.get("papermill", {}).get("status") == "running"
    ]
    index = running[0] if running else None
    if index is not None:
        nb.cells[index].metadata.papermill.update(status="failed", exception=True)
    return RunCancelledError(
        cell_index=index,
        exec_count=nb.cells[index].get("execution_count") if index is not None else None,
        ename=type(exc).__name__,
        evalue=f"stopped by {type(exc).__name__}: {exc}".rstrip(": "),
    )
