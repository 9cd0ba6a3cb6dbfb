"""How the CLI ends: a paramill error becomes one line on stderr and its exit code.

The codes themselves belong to the exception classes (``errors.py``); this module only prints.
"""

from __future__ import annotations

import signal
import sys
import traceback
from typing import NoReturn

import click

from ..errors import ExecutionError, ParamillError, RunCancelledError

EXIT_CODES = """\b
Exit codes:
  0    success (also a notebook that stops with sys.exit(0))
  1    a cell raised an exception
  2    command-line usage error
  3    the input notebook cannot be read or is not a valid notebook
  4    bad parameters (malformed, unknown with --strict, wrong type, not representable,
       a value that would move a templated path)
  5    kernel not installed or failed to start
  6    storage error (missing file, unreachable store, missing extra)
  7    a cell exceeded --execution-timeout
  8    the run exceeded --timeout
  9    the output notebook could not be written
  130  interrupted (SIGINT / Ctrl-C)      143  terminated (SIGTERM)
  138  the kernel died or stopped responding
"""

SWEEP_EXIT_CODES = """\b
Exit codes: 0 when every run completed; when runs failed, their exit code if they all
share one (see `paramill run --help`: 1 cell error, 7 cell timeout, ...), else 1;
2 usage error; 4 bad grid or two runs writing one output; 130/143 interrupted.
"""


def error(message: str) -> None:
    """One ``paramill: error:`` line on stderr (the run may still go on or end otherwise)."""
    click.echo(f"paramill: error: {message}", err=True)


def fail(error: ParamillError, output_path: str | None = None) -> NoReturn:
    """Print one line (after the notebook's traceback for cell errors) and exit with its code."""
    if isinstance(error, RunCancelledError):
        # cancelled, kernel stopped, output saved: a repeated Ctrl-C/TERM must not change the
        # exit code or interrupt the exit's cleanup
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
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
