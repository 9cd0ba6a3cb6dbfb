"""One run of a sweep: ``execute.run`` with its outcome kept as a ``SweepRun``, never raised."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..api import run
from ..errors import ExecutionError, ParamillError
from ..kernel.source import KernelSource
from ..storage import display_url
from .plan import RunSpec, run_label

logger = logging.getLogger("paramill")

#: the label of the run the current thread (or task) is executing, for log prefixes
current_run: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "paramill_run", default=None
)


@dataclass
class SweepRun:
    """What one run of a sweep did (no notebook unless ``keep_notebooks``)."""

    index: int
    grid: dict[str, Any]
    parameters: dict[str, Any]
    output_path: str | None
    status: str  # completed | prepared (prepare_only) | skipped (--fail-fast) | failed | timeout
    #            | kernel-died | cancelled | output-error | error (before the kernel ran)
    duration: float | None = None
    error: ParamillError | None = None
    records: Any = None
    notebook: Any = None
    kernel_name: str | None = None

    def __post_init__(self) -> None:
        self.output_path = display_url(self.output_path)  # shown in summaries: no credentials

    @classmethod
    def planned(cls, spec: RunSpec, status: str) -> SweepRun:
        """A run that has not run (yet): ``error`` until it does, ``skipped`` if it won't."""
        return cls(spec.index, spec.grid, spec.parameters, spec.output_path, status)

    @property
    def ok(self) -> bool:
        """No error, as ``RunResult.ok``: completed, prepared or skipped."""
        return self.error is None

    @property
    def label(self) -> str:
        return run_label(self.grid, self.index)

    @property
    def exit_code(self) -> int:
        return 0 if self.error is None else self.error.exit_code

    @property
    def failing_cell(self) -> str:
        error = self.error
        if not isinstance(error, ExecutionError) or error.cell_index is None:
            return ""
        where = str(error.cell_index)
        if error.exec_count is not None:
            where += f" (In [{error.exec_count}])"
        return where

    def raise_for_error(self) -> None:
        if self.error is not None:
            raise self.error


def execute_one(
    spec: RunSpec,
    run_options: Mapping[str, Any],
    *,
    kernel_source: KernelSource | None = None,
    keep_notebook: bool = False,
) -> SweepRun:
    """Run one planned run; every paramill error becomes the run's status, never an exception."""
    options = dict(run_options)
    if kernel_source is not None:
        options["kernel_source"] = kernel_source
    token = current_run.set(spec.label)
    began = time.monotonic()
    outcome = SweepRun.planned(spec, "error")
    try:
        result = run(
            spec.input_path,
            spec.output_path,
            spec.parameters,
            progress_bar=False,
            handle_signals=False,
            **options,
        )
    except ParamillError as exc:
        outcome.error = exc
    except Exception as exc:  # a bug: report it as this run's failure, keep the sweep going
        logger.exception("run %s: internal error", spec.label)
        outcome.error = ParamillError(f"internal error: {type(exc).__name__}: {exc}")
    else:
        outcome.status = result.status
        outcome.error = result.error
        outcome.records = getattr(result, "records", None)
        outcome.kernel_name = result.kernel_name
        if keep_notebook:
            outcome.notebook = result.notebook
    finally:
        current_run.reset(token)
    outcome.duration = round(time.monotonic() - began, 3)
    return outcome


def sweep_exit_code(runs: Iterable[SweepRun]) -> int:
    """0 when no run failed; the failed runs' exit code when they all share one
    (e.g. 1 for cell errors, 7 for cell timeouts); 1 for a mix of failures."""
    codes = {run.exit_code for run in runs if not run.ok}
    codes.discard(0)
    if not codes:
        return 0
    return codes.pop() if len(codes) == 1 else 1
