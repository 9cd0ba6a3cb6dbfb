"""How the CLI ends: a paramill error becomes one line on stderr and its exit code.

The codes belong to the exception classes (``errors.py``); their table, for --help, is in
``options.py``. Loaded only once a command runs.
"""

from __future__ import annotations

import sys
import traceback
from typing import NoReturn

import click

from ..errors import ExecutionError, ParamillError, RunCancelledError
from ..signals import ignore_signals


def error(message: str) -> None:
    """One ``paramill: error:`` line on stderr (the run may still go on or end otherwise)."""
    click.echo(f"paramill: error: {message}", err=True)


def fail(error: ParamillError, output_path: str | None = None) -> NoReturn:
    """Print one line (after the notebook's traceback for cell errors) and exit with its code."""
    if isinstance(error, RunCancelledError):
        # cancelled, kernel stopped, output saved: a repeated Ctrl-C/TERM must not change the
        # exit code or interrupt the exit's cleanup
        ignore_signals()
    if isinstance(error, ExecutionError) and error.traceback and error.ename != error.evalue:
        click.echo(str(error).rstrip(), err=True)
    line = f"paramill: error: {error.message}"
    if isinstance(error, ExecutionError) and output_path not in (None, "-"):
        line += f" (partial output saved to {output_path})"
    click.echo(line, err=True)
    sys.exit(error.exit_code)


def interrupted(message: str, code: int) -> NoReturn:
    """Ctrl-C or SIGTERM where there is nothing to save: say so, exit 128 + the signal."""
    error(message)
    sys.exit(code)


def internal_error(exc: Exception) -> NoReturn:
    """A bug in paramill or a library: say so and keep the traceback."""
    traceback.print_exc()
    click.echo(f"paramill: internal error: {type(exc).__name__}: {exc}", err=True)
    sys.exit(1)
