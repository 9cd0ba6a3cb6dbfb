"""``paramill run`` (the default command): one notebook, papermill's flags.

Steps in order: check the input path, set up logging, parse parameters / secrets / storage
options, then either list the notebook's parameters (``--help-notebook``) or run it, and end
with its exit code -- writing ``--run-record`` whatever happened.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from typing import Any

import click

from .._run.paths import path_parameters, refuse_overwriting_input, template_path
from .._run.prepare import declared_parameters
from ..api import RunResult, run
from ..errors import ParamillError
from ..nbio import read_notebook_source
from ..parameters import resolve
from ..records import error_run_record, write_run_record
from ..storage import display_url
from .exits import fail, internal_error, interrupted
from .options import RunOptions
from .values import parse_storage_options, secrets, setup_logging


@dataclass
class _Known:
    """What the command has worked out so far; a run record of a failed start uses it."""

    params: dict[str, Any] | None = None
    secrets: dict[str, str] | None = None
    storage_options: dict[str, Any] | None = None
    record_refused: bool = False  # the --run-record path itself is what is wrong


def main(opts: RunOptions) -> None:
    """Run the notebook (or list its parameters) and exit with the run's code."""
    ctx = click.get_current_context()
    opts.notebook_path = _notebook_path(ctx, opts)
    if opts.output_path == "-" and opts.log_level == "INFO":
        opts.log_level = "ERROR"  # keep stderr quiet when the notebook goes to stdout
    setup_logging(opts.log_level)
    if opts.progress_bar is None:
        opts.progress_bar = (
            opts.output_path not in (None, "-") and not opts.log_output and sys.stderr.isatty()
        )
    known = _Known()
    try:
        result = _run(ctx, opts, known)
    except ParamillError as exc:
        if opts.run_record and not known.record_refused:
            record = error_run_record(
                exc,
                input_path=opts.notebook_path,
                output_path=opts.output_path,
                parameters=known.params,
            )
            _write_run_record(opts, record, known)
        fail(exc)
    except KeyboardInterrupt:  # before or after the kernel ran: nothing to save
        interrupted("interrupted", 130)
    except Exception as exc:
        internal_error(exc)
    record_failed = _write_run_record(opts, result.to_record(), known) if opts.run_record else 0
    if result.error is not None:
        fail(result.error, result.output_path)
    if record_failed:
        sys.exit(record_failed)


def _notebook_path(ctx: click.Context, opts: RunOptions) -> str:
    """NOTEBOOK_PATH, or '-' when a notebook is piped in (``paramill < nb.ipynb``)."""
    path = opts.notebook_path
    if path is None:
        if sys.stdin.isatty() or opts.help_notebook:
            raise click.UsageError("Missing argument 'NOTEBOOK_PATH'.", ctx)
        return "-"
    if opts.output_path is None and path != "-" and _stdin_is_pipe():
        if not os.path.exists(path):
            raise click.UsageError(
                f"{path} does not exist. To read the notebook from stdin, name it '-': "
                f"... | {ctx.find_root().info_name} - {path}",
                ctx,
            )
    return path


def _stdin_is_pipe() -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(0).st_mode)
    except (OSError, ValueError):
        return False


def _run(ctx: click.Context, opts: RunOptions, known: _Known) -> RunResult:
    """Parse what the library needs, then run (``--help-notebook`` lists and exits instead)."""
    assert opts.notebook_path is not None
    known.secrets = secrets(opts)
    known.storage_options = parse_storage_options(opts.storage_option)
    known.params = _parameters(opts, known.storage_options)
    if opts.help_notebook:
        sys.exit(_help_notebook(ctx, opts, known.params, known.storage_options))
    if opts.run_record:  # a value it cannot take stops the run before the kernel starts
        known.record_refused = True
        _record_path(opts, known.params)
        known.record_refused = False
    return run(
        opts.notebook_path,
        opts.output_path,
        known.params,
        request_save_on_cell_execute=opts.request_save_on_cell_execute,
        autosave_cell_every=opts.autosave_cell_every,
        prepare_only=opts.prepare_only,
        progress_bar=opts.progress_bar,
        stdout_file=opts.stdout_file,
        stderr_file=opts.stderr_file,
        storage_options=known.storage_options,
        html_output=opts.html_output,
        secrets=known.secrets,
        deterministic=opts.deterministic,
        warm=opts.warm,
        **opts.run_kwargs(),
    )


def _parameters(opts: RunOptions, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """The run's parameters: injected paths, then -b, -f, -y, -p, -r (later ones win)."""
    injected = {}  # written into the notebook: URLs without their credentials
    if opts.inject_input_path or opts.inject_paths:
        injected["PAPERMILL_INPUT_PATH"] = display_url(opts.notebook_path)
    if opts.inject_output_path or opts.inject_paths:
        injected["PAPERMILL_OUTPUT_PATH"] = display_url(opts.output_path)
    return resolve(
        injected=injected, storage_options=storage_options, **opts.parameter_sources()
    )


def _record_path(opts: RunOptions, params: dict[str, Any] | None) -> str:
    """The ``--run-record`` path, its ``{name}`` fields filled like the output path's; never
    the input notebook."""
    assert opts.run_record is not None and opts.notebook_path is not None
    values = path_parameters(params or {})
    filled = template_path(opts.run_record, values, allow_path_values=opts.allow_path_values)
    try:
        source = template_path(opts.notebook_path, values, allow_path_values=opts.allow_path_values)
    except ParamillError:
        return filled  # the run reports what is wrong with the input path
    refuse_overwriting_input(source, filled, "the run record")
    return filled


def _write_run_record(opts: RunOptions, record: dict[str, Any], known: _Known) -> int:
    """``--run-record``: write the record. Returns the exit code of a failed write (0 when
    written)."""
    try:
        path = _record_path(opts, known.params)
        write_run_record(
            path,
            record,
            known.storage_options,
            secrets=list((known.secrets or {}).values()),
        )
    except ParamillError as exc:
        click.echo(f"paramill: error: the run record was not written: {exc.message}", err=True)
        return exc.exit_code
    return 0


def _help_notebook(
    ctx: click.Context,
    opts: RunOptions,
    params: dict[str, Any],
    storage_options: dict[str, Any] | None,
) -> int:
    """``--help-notebook``: list the parameters the notebook declares. Returns the exit code."""
    path = opts.notebook_path
    assert path is not None
    allow = opts.allow_path_values
    source = template_path(path, path_parameters(params), allow_path_values=allow)
    nb = read_notebook_source(source, storage_options)
    click.echo(f"Usage: {ctx.find_root().info_name} [OPTIONS] NOTEBOOK_PATH [OUTPUT_PATH]")
    click.echo(f"\nParameters inferred for notebook '{display_url(path)}':")
    try:
        declared = declared_parameters(nb, kernel_name=opts.kernel, language=opts.language)
    except NotImplementedError as exc:
        click.echo(f"\n  {exc}; no parameters can be listed.")
        return 0
    if declared is None:
        click.echo("\n  No cell tagged 'parameters'")
        return 1
    if not declared:
        click.echo(
            "\n  Can't infer anything about this notebook's parameters. "
            "It may not have any parameter defined."
        )
        return 0
    for param in declared:
        type_name = "Unknown type" if param.type_name == "None" else param.type_name
        definition = f"  {param.name}: {type_name} (default {param.default})"
        if len(definition) > 30:
            if param.help:
                definition += "\n" + " " * 34 + param.help
            click.echo(definition)
        else:
            click.echo(f"{definition:<34}{param.help}")
    return 0
