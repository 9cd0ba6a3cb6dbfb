"""Command line: papermill's form (``paramill IN [OUT] -p name value``) plus subcommands.

A thin shell: parse options, call the library, turn errors into one line and an exit code.
Heavy modules are imported only once a command runs, so ``--help`` and ``--version`` are fast.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from . import __version__
from .errors import ExecutionError, ParamillError

LOG_LEVELS = ["NOTSET", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

EXIT_CODES = """\b
Exit codes:
  0    success (also a notebook that stops with sys.exit(0))
  1    a cell raised an exception
  2    command-line usage error
  3    the input notebook cannot be read or is not a valid notebook
  4    bad parameters (malformed, unknown with --strict, wrong type, not representable)
  5    kernel not installed or failed to start
  6    storage error (missing file, unreachable store, missing extra)
  7    a cell exceeded --execution-timeout
  8    the run exceeded --timeout
  9    the output notebook could not be written
  130  interrupted (SIGINT / Ctrl-C)      143  terminated (SIGTERM)
  138  the kernel died or stopped responding
"""


class DefaultGroup(click.Group):
    """A group whose default command is ``run``: ``paramill IN OUT`` works as in papermill."""

    default_command = "run"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands and args[0] not in ("--version",):
            if not (args and args[0] in ("-h", "--help") and len(args) == 1):
                args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        run_cmd = self.commands[self.default_command]
        with click.Context(run_cmd, info_name=ctx.info_name, parent=ctx.parent) as sub:
            run_cmd.format_help(sub, formatter)
        others = [
            (name, cmd.get_short_help_str(60))
            for name, cmd in self.commands.items()
            if name != self.default_command
        ]
        if others:
            formatter.write_paragraph()
            with formatter.section("Other commands"):
                formatter.write_dl(others)


def _print_version(ctx: click.Context, _param: Any, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(
        f"{__version__} from {os.path.abspath(__file__)} "
        f"({sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro})"
    )
    ctx.exit(0)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the version and exit.",
)
def main() -> None:
    """paramill: parameterize and run Jupyter notebooks."""


def fail(error: ParamillError, output_path: str | None = None) -> None:
    """Print one line (after the notebook's traceback for cell errors) and exit with its code."""
    if isinstance(error, ExecutionError) and error.traceback and error.ename != error.evalue:
        click.echo(str(error).rstrip(), err=True)
    line = f"paramill: error: {error.message}"
    if isinstance(error, ExecutionError) and output_path not in (None, "-"):
        line += f" (partial output saved to {output_path})"
    click.echo(line, err=True)
    sys.exit(error.exit_code)


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    logging.getLogger("paramill").setLevel(level)


@main.command("run", context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
@click.argument("notebook_path", required=False)
@click.argument("output_path", required=False)
@click.option("--help-notebook", is_flag=True, help="Print the notebook's parameters and exit.")
@click.option(
    "-p",
    "--parameters",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="Parameter, its value cast like papermill (int, float, True/False/None).",
)
@click.option(
    "-r",
    "--parameters_raw",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="Parameter whose value stays a string.",
)
@click.option("-f", "--parameters_file", multiple=True, help="YAML or JSON file of parameters.")
@click.option("-y", "--parameters_yaml", multiple=True, help="YAML text of parameters.")
@click.option("-b", "--parameters_base64", multiple=True, help="Base64-encoded YAML parameters.")
@click.option(
    "--inject-input-path", is_flag=True, help="Add PAPERMILL_INPUT_PATH to the parameters."
)
@click.option(
    "--inject-output-path", is_flag=True, help="Add PAPERMILL_OUTPUT_PATH to the parameters."
)
@click.option(
    "--inject-paths", is_flag=True, help="Both --inject-input-path and --inject-output-path."
)
@click.option("--engine", help="Execution engine name.")
@click.option(
    "--request-save-on-cell-execute/--no-request-save-on-cell-execute",
    default=True,
    help="Save the output notebook while the run goes on (coalesced, at most 1/s).",
)
@click.option(
    "--autosave-cell-every",
    default=30,
    type=int,
    show_default=True,
    help="Seconds between saves during a long cell on remote stores; 0 disables.",
)
@click.option(
    "--prepare-only/--prepare-execute",
    default=False,
    help="Only inject parameters; do not run the notebook.",
)
@click.option("-k", "--kernel", help="Kernel name (also written into the output's kernelspec).")
@click.option("-l", "--language", help="Language for parameter rendering.")
@click.option("--cwd", help="Directory the kernel runs in (this process does not chdir).")
@click.option("--progress-bar/--no-progress-bar", default=None, help="Show a progress bar.")
@click.option("--log-output/--no-log-output", default=False, help="Log cell outputs.")
@click.option(
    "--stdout-file",
    type=click.File(mode="w", encoding="utf-8"),
    help="Write the kernel's stdout to this file.",
)
@click.option(
    "--stderr-file",
    type=click.File(mode="w", encoding="utf-8"),
    help="Write the kernel's stderr to this file.",
)
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="INFO", show_default=True)
@click.option(
    "--start-timeout",
    "--start_timeout",
    type=int,
    default=60,
    show_default=True,
    help="Seconds to wait for the kernel to start.",
)
@click.option(
    "--execution-timeout", type=int, help="Per-cell time limit in seconds (0 or absent: none)."
)
@click.option(
    "--timeout",
    "run_timeout",
    type=float,
    help="Whole-run time limit in seconds (kernel start included).",
)
@click.option("--report-mode/--no-report-mode", default=False, help="Hide code inputs.")
@click.option(
    "--strict",
    is_flag=True,
    help="Unknown or mistyped parameters are errors; cells tagged raises-exception fail.",
)
@click.option(
    "--storage-option",
    "storage_option",
    multiple=True,
    metavar="KEY=VALUE",
    help="fsspec storage option for URLs (repeatable; dotted keys nest), "
    "e.g. endpoint_url=http://127.0.0.1:9000.",
)
@click.option(
    "--allow-errors",
    is_flag=True,
    help="Run every cell even after errors; errors do not fail the run.",
)
def run_command(
    notebook_path: str | None,
    output_path: str | None,
    help_notebook: bool,
    parameters: tuple,
    parameters_raw: tuple,
    parameters_file: tuple,
    parameters_yaml: tuple,
    parameters_base64: tuple,
    inject_input_path: bool,
    inject_output_path: bool,
    inject_paths: bool,
    engine: str | None,
    request_save_on_cell_execute: bool,
    autosave_cell_every: int,
    prepare_only: bool,
    kernel: str | None,
    language: str | None,
    cwd: str | None,
    progress_bar: bool | None,
    log_output: bool,
    stdout_file: Any,
    stderr_file: Any,
    log_level: str,
    start_timeout: int,
    execution_timeout: int | None,
    run_timeout: float | None,
    report_mode: bool,
    strict: bool,
    storage_option: tuple[str, ...],
    allow_errors: bool,
) -> None:
    """Run NOTEBOOK_PATH with parameters and write the executed notebook to OUTPUT_PATH.

    Paths may be local, '-' (stdin/stdout) or URLs (s3://, gs://, az://, http(s)://, ...).
    Without OUTPUT_PATH the notebook runs and nothing is written.
    """
    ctx = click.get_current_context()
    if notebook_path is None:
        if sys.stdin.isatty() or help_notebook:
            raise click.UsageError("Missing argument 'NOTEBOOK_PATH'.", ctx)
        notebook_path = "-"  # a notebook piped in: paramill < nb.ipynb or ... | paramill
    elif output_path is None and notebook_path != "-" and _stdin_is_pipe():
        if not os.path.exists(notebook_path):
            raise click.UsageError(
                f"{notebook_path} does not exist. To read the notebook from stdin, name it '-': "
                f"... | {ctx.find_root().info_name} - {notebook_path}",
                ctx,
            )
    if output_path == "-" and log_level == "INFO":
        log_level = "ERROR"  # keep stderr quiet when the notebook goes to stdout
    _setup_logging(log_level)
    if progress_bar is None:
        progress_bar = output_path not in (None, "-") and not log_output and sys.stderr.isatty()

    from .parameters import resolve

    try:
        storage_options = _parse_storage_options(storage_option)
        injected = {}
        if inject_input_path or inject_paths:
            injected["PAPERMILL_INPUT_PATH"] = notebook_path
        if inject_output_path or inject_paths:
            injected["PAPERMILL_OUTPUT_PATH"] = output_path
        params = resolve(
            injected=injected,
            base64s=parameters_base64,
            files=parameters_file,
            yamls=parameters_yaml,
            cast=parameters,
            raw=parameters_raw,
            storage_options=storage_options,
        )
        if help_notebook:
            sys.exit(_help_notebook(ctx, notebook_path, params, kernel, language))

        from .execute import run

        result = run(
            notebook_path,
            output_path,
            params,
            engine_name=engine,
            request_save_on_cell_execute=request_save_on_cell_execute,
            autosave_cell_every=autosave_cell_every,
            prepare_only=prepare_only,
            kernel_name=kernel,
            language=language,
            progress_bar=progress_bar,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
            start_timeout=start_timeout,
            execution_timeout=execution_timeout,
            run_timeout=run_timeout,
            report_mode=report_mode,
            cwd=cwd,
            strict=strict,
            storage_options=storage_options,
            **({"allow_errors": True} if allow_errors else {}),
        )
    except ParamillError as exc:
        fail(exc)
    except KeyboardInterrupt:  # before or after the kernel ran: nothing to save
        click.echo("paramill: error: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug in paramill or a library: say so, keep the traceback
        import traceback

        traceback.print_exc()
        click.echo(f"paramill: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    if result.error is not None:
        fail(result.error, result.output_path)


def _parse_storage_options(items: tuple[str, ...]) -> dict[str, Any] | None:
    """KEY=VALUE pairs; values are YAML scalars (true, 3, ...); dotted keys nest
    (client_kwargs.endpoint_url=...)."""
    from .errors import ParameterError
    from .parameters import load_yaml

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParameterError(f"--storage-option {item!r}: expected KEY=VALUE")
        target = options
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = load_yaml(f"v: {value}" if value else "v: ''").get("v", value)
    return options or None


def _stdin_is_pipe() -> bool:
    import stat

    try:
        return stat.S_ISFIFO(os.fstat(0).st_mode)
    except (OSError, ValueError):
        return False


def _help_notebook(
    ctx: click.Context, path: str, params: dict, kernel: str | None, language: str | None
) -> int:
    from .execute import declared_parameters, path_parameters, read_notebook_source, template_path

    nb = read_notebook_source(template_path(path, path_parameters(params)))
    click.echo(f"Usage: {ctx.find_root().info_name} [OPTIONS] NOTEBOOK_PATH [OUTPUT_PATH]")
    click.echo(f"\nParameters inferred for notebook '{path}':")
    try:
        declared = declared_parameters(nb, kernel_name=kernel, language=language)
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
