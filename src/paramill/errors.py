"""paramill's one exception hierarchy.

Every error a user can meet is one of these classes, and each class knows the exit code the CLI
returns for it. Lower libraries' exceptions (nbclient, jupyter_client, fsspec, YAML, nbformat) are
translated into these at the boundary where they are caught, never leaked to callers.
"""

from __future__ import annotations

import re
from typing import Any

_ANSI = re.compile(r"\x1b\[K|\x1b\[[0-9;]*m")


def strip_color(text: str) -> str:
    """Remove ANSI color/style escape sequences (as papermill's ``strip_color``)."""
    return _ANSI.sub("", text)


class ParamillError(Exception):
    """Base class of every paramill error."""

    exit_code = 1

    @property
    def message(self) -> str:
        """One line for a person."""
        return str(self).strip().splitlines()[0] if str(self).strip() else type(self).__name__


# papermill's name, so `except PapermillException` keeps working after switching imports.
PapermillException = ParamillError


class InputError(ParamillError):
    """The input notebook cannot be read or is not a valid notebook."""

    exit_code = 3


class ParameterError(ParamillError):
    """A parameter is malformed, unknown (in strict mode), mistyped or cannot be rendered."""

    exit_code = 4


class MissingParameterError(ParameterError):
    """A ``{name}`` in a path template names no parameter."""


class KernelError(ParamillError):
    """No such kernel, or the kernel failed to start."""

    exit_code = 5


class StorageError(ParamillError):
    """A notebook or parameter file cannot be read from or written to its location."""

    exit_code = 6


class MissingDependencyError(ParamillError):
    """An optional dependency (an extra) is needed for a feature: Dask, jupytext, nbconvert,
    pandas, a storage backend. Exit code 6, as before it had its own class."""

    exit_code = 6


class MissingBackendError(MissingDependencyError, StorageError):
    """The storage backend of a location's protocol is not installed (``pip install
    'paramill[s3]'``): both a missing dependency and a storage error."""

    exit_code = 6


class RecordError(ParamillError, ValueError):
    """``paramill.record`` was given a name or value it cannot store."""


class UnsupportedLanguageError(ParameterError):
    """No parameter translator exists for the notebook's kernel or language."""


class ExecutionError(ParamillError):
    """A cell raised an error while the notebook ran (papermill's PapermillExecutionError)."""

    exit_code = 1
    #: short word used in run records and statuses
    status = "failed"

    def __init__(
        self,
        cell_index: int | None = None,
        exec_count: int | None = None,
        source: str = "",
        ename: str = "",
        evalue: str = "",
        traceback: list[str] | None = None,
    ) -> None:
        self.cell_index = cell_index
        self.exec_count = exec_count
        self.source = source
        self.ename = ename
        self.evalue = evalue
        self.traceback = list(traceback or [])
        super().__init__(cell_index, exec_count, source, ename, evalue, self.traceback)

    def __str__(self) -> str:
        message = "\n" + "-" * 75 + "\n"
        message += f'Exception encountered at "In [{self.exec_count}]":\n'
        message += strip_color("\n".join(self.traceback))
        message += "\n"
        return message

    #: what happened, for failures that are not an exception raised by the cell's code
    headline = ""

    @property
    def message(self) -> str:
        where = f"cell {self.cell_index}" if self.cell_index is not None else "the notebook"
        if self.exec_count is not None:
            where += f" (In [{self.exec_count}])"
        if self.headline:
            return f"{self.headline} at {where}: {self.evalue}"
        what = self.ename or type(self).__name__
        if self.evalue:
            what += f": {self.evalue}"
        return f"{where} failed with {what}"


PapermillExecutionError = ExecutionError


class CellTimeoutError(ExecutionError):
    """A cell ran longer than the per-cell execution timeout."""

    exit_code = 7
    status = "timeout"
    headline = "cell timed out"


class RunTimeoutError(ExecutionError):
    """The whole run took longer than the run timeout."""

    exit_code = 8
    status = "timeout"
    headline = "run timed out"


class KernelDiedError(ExecutionError):
    """The kernel process died or stopped responding during the run."""

    # papermill exits 138 when nbclient reports a dead kernel; kept for compatibility.
    exit_code = 138
    status = "kernel-died"
    headline = "kernel died"


class RunCancelledError(ExecutionError):
    """The run was stopped by a signal (Ctrl-C, SIGTERM) before it finished."""

    exit_code = 130
    status = "cancelled"
    headline = "run cancelled"

    def __init__(self, *args: Any, signal_number: int = 2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.signal_number = signal_number
        # the shell convention: 128 + signal number (130 for SIGINT, 143 for SIGTERM)
        self.exit_code = 128 + signal_number

    def __reduce__(self) -> Any:
        return (_rebuild_cancelled, (self.args, self.signal_number))


def _rebuild_cancelled(args: tuple, signal_number: int) -> RunCancelledError:
    return RunCancelledError(*args, signal_number=signal_number)


class OutputError(ExecutionError):
    """The output notebook could not be written during or after the run."""

    exit_code = 9
    status = "output-error"
    headline = "output not saved"
