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
from .errors import ExecutionError, ParamillError, RunCancelledError

LOG_LEVELS = ["NOTSET", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

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


class DefaultGroup(click.Group):
    """A group whose default command is ``run``: ``paramill IN OUT`` works as in papermill."""

    default_command = "run"

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not (argv and argv[0] in self.commands):  # the run command: forked warm, maybe
            from .warm import run_cli, wants_cli_fork

            if wants_cli_fork(argv):
                code = run_cli(argv)
                if code is not None:
                    sys.exit(code)
        return super().main(args=argv, prog_name=prog_name, **extra)

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
    if isinstance(error, RunCancelledError):
        import signal

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
    help="fsspec storage option for URLs (repeatable; dotted keys nest; a protocol prefix "
    "scopes it to that store), e.g. s3.endpoint_url=http://127.0.0.1:9000.",
)
@click.option(
    "--allow-errors",
    is_flag=True,
    help="Run every cell even after errors; errors do not fail the run.",
)
@click.option(
    "--html",
    "html_output",
    metavar="REPORT.html",
    help="Also write an HTML report of the executed notebook (needs paramill[report]); "
    "with --report-mode code and injected parameters are hidden.",
)
@click.option(
    "-s",
    "--secret",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="A variable the notebook gets whose value is never written to the output, the "
    "report, logs or the run record (it reaches the kernel through its environment). The "
    "value is visible to local users in `ps`: prefer --secret-env or --secret-file.",
)
@click.option(
    "--secret-env",
    multiple=True,
    metavar="NAME=ENVVAR",
    help="Like --secret, with the value read from this process's environment variable ENVVAR "
    "(a safe form).",
)
@click.option(
    "--secret-file",
    multiple=True,
    metavar="NAME=PATH",
    help="Like --secret, with the value read from the file PATH, less one trailing newline "
    "(a safe form).",
)
@click.option(
    "--allow-short-secrets",
    is_flag=True,
    help="Accept secrets shorter than 6 characters (scrubbing them rewrites unrelated text).",
)
@click.option(
    "--run-record",
    metavar="FILE.json",
    help="Write a JSON record of the run (status, exit code, parameters, timings, error), "
    "also when the run fails or cannot start.",
)
@click.option(
    "--deterministic",
    is_flag=True,
    help="Leave timestamps and durations out of the output notebook, so that two runs of "
    "the same notebook give identical files.",
)
@click.option(
    "--allow-path-values",
    is_flag=True,
    help="Let parameter values filled into path templates ({name}) hold folders ('/', '..') "
    "and URL schemes. Without it such a value is an error (exit 4).",
)
@click.option(
    "--warm/--no-warm",
    default=None,
    help="Run a python kernel forked from your warm kernel server (started in the background "
    "by the first warm run; `paramill warm status|stop`) [default: PARAMILL_WARM, else off].",
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
    html_output: str | None,
    secret: tuple,
    secret_env: tuple[str, ...],
    secret_file: tuple[str, ...],
    allow_short_secrets: bool,
    run_record: str | None,
    deterministic: bool,
    allow_path_values: bool,
    warm: bool | None,
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

    storage_options = params = secrets = None
    record_refused = False
    try:
        secrets = _secrets(secret, secret_env, secret_file)
        storage_options = _parse_storage_options(storage_option)
        from .storage import display_url

        injected = {}  # written into the notebook: URLs without their credentials
        if inject_input_path or inject_paths:
            injected["PAPERMILL_INPUT_PATH"] = display_url(notebook_path)
        if inject_output_path or inject_paths:
            injected["PAPERMILL_OUTPUT_PATH"] = display_url(output_path)
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
            sys.exit(
                _help_notebook(
                    ctx,
                    notebook_path,
                    params,
                    kernel,
                    language,
                    storage_options,
                    allow_path_values,
                )
            )
        if run_record:  # a value it cannot take stops the run before the kernel starts
            record_refused = True
            _record_path(run_record, notebook_path, params, allow_path_values)
            record_refused = False

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
            html_output=html_output,
            secrets=secrets,
            allow_short_secrets=allow_short_secrets,
            deterministic=deterministic,
            allow_path_values=allow_path_values,
            warm=warm,
            **({"allow_errors": True} if allow_errors else {}),
        )
    except ParamillError as exc:
        if run_record and not record_refused:
            from .records import error_run_record

            record = error_run_record(
                exc, input_path=notebook_path, output_path=output_path, parameters=params
            )
            _write_run_record(
                run_record,
                record,
                notebook_path,
                params,
                secrets,
                storage_options,
                allow_path_values,
            )
        fail(exc)
    except KeyboardInterrupt:  # before or after the kernel ran: nothing to save
        click.echo("paramill: error: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug in paramill or a library: say so, keep the traceback
        import traceback

        traceback.print_exc()
        click.echo(f"paramill: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    record_failed = 0
    if run_record:
        record_failed = _write_run_record(
            run_record,
            result.to_record(),
            notebook_path,
            params,
            secrets,
            storage_options,
            allow_path_values,
        )
    if result.error is not None:
        fail(result.error, result.output_path)
    if record_failed:
        sys.exit(record_failed)


def _record_path(
    path: str, notebook_path: str, params: dict[str, Any] | None, allow_path_values: bool
) -> str:
    """The ``--run-record`` path, its ``{name}`` fields filled like the output path's; never
    the input notebook."""
    from .execute import path_parameters, refuse_overwriting_input, template_path

    values = path_parameters(params or {})
    filled = template_path(path, values, allow_path_values=allow_path_values)
    try:
        source = template_path(notebook_path, values, allow_path_values=allow_path_values)
    except ParamillError:
        return filled  # the run reports what is wrong with the input path
    refuse_overwriting_input(source, filled, "the run record")
    return filled


def _secrets(secret: tuple, secret_env: tuple[str, ...], secret_file: tuple[str, ...]) -> dict:
    """-s, --secret-env and --secret-file as one name -> value dict."""
    from .secrets import from_environment, from_files, parse_secret_env

    return {
        **dict(secret),
        **from_environment(parse_secret_env(secret_env)),
        **from_files(secret_file),
    }


def _write_run_record(
    path: str,
    record: dict[str, Any],
    notebook_path: str,
    params: dict[str, Any] | None,
    secrets: dict[str, str] | None,
    storage_options: dict[str, Any] | None,
    allow_path_values: bool,
) -> int:
    """``--run-record``: write the record. Returns the exit code of a failed write (0 when
    written)."""
    from .records import write_run_record

    try:
        path = _record_path(path, notebook_path, params, allow_path_values)
        write_run_record(path, record, storage_options, secrets=list((secrets or {}).values()))
    except ParamillError as exc:
        click.echo(f"paramill: error: the run record was not written: {exc.message}", err=True)
        return exc.exit_code
    return 0


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
    ctx: click.Context,
    path: str,
    params: dict,
    kernel: str | None,
    language: str | None,
    storage_options: dict[str, Any] | None = None,
    allow_path_values: bool = False,
) -> int:
    from .execute import declared_parameters, path_parameters, read_notebook_source, template_path
    from .storage import display_url

    source = template_path(path, path_parameters(params), allow_path_values=allow_path_values)
    nb = read_notebook_source(source, storage_options)
    click.echo(f"Usage: {ctx.find_root().info_name} [OPTIONS] NOTEBOOK_PATH [OUTPUT_PATH]")
    click.echo(f"\nParameters inferred for notebook '{display_url(path)}':")
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


@main.group("warm")
def warm_group() -> None:
    """Your warm kernel servers (paramill --warm): status, stop."""


@warm_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
def warm_status_command(as_json: bool) -> None:
    """Show your warm kernel servers: key, kernel, preloads, age, kernels, memory."""
    import json

    from . import warm

    try:
        found = warm.servers()
    except warm.Unavailable as exc:
        click.echo(f"paramill: error: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(found, indent=1))
        return
    if not found:
        click.echo(f"no warm kernel servers (folder {warm.folder_path()})")
        return
    for entry in found:
        line = f"{entry['key']}  {entry['state']:<8}  pid {entry.get('pid', '-')}"
        if entry["state"] == "serving":
            d = entry.get("describe", {})
            line += (
                f"  age {entry['age']:.0f} s  idle exit {entry['idle_timeout']:g} s"
                f"  kernels {len(entry['kernels'])}  forks {entry['forks']}"
                f"  rss {entry.get('rss_kb', 0) // 1024} MB  fds {entry.get('fds', '-')}\n"
                f"    kernel {d.get('kernelspec')}  python {d.get('python')}"
                f"  packages {d.get('packages')}\n"
                f"    preloads {', '.join(entry['preload']) or '-'}"
            )
        elif entry["state"] == "gone":
            line += f"  ({entry.get('error')})"
        click.echo(line)


@warm_group.command("stop")
def warm_stop_command() -> None:
    """Stop your warm kernel servers (the kernels they are running are killed)."""
    from . import warm

    try:
        stopped = warm.stop_all()
    except warm.Unavailable as exc:
        click.echo(f"paramill: error: {exc}", err=True)
        sys.exit(2)
    for entry in stopped:
        click.echo(f"stopped {entry['key']} (pid {entry.get('pid', '-')}, {entry['state']})")
    if not stopped:
        click.echo("no warm kernel servers")


@main.command("records")
@click.argument("notebook_path")
@click.option("--json", "as_json", is_flag=True, help="Print the records as one JSON object.")
@click.option(
    "--storage-option",
    "storage_option",
    multiple=True,
    metavar="KEY=VALUE",
    help="fsspec storage option for URLs (as for run).",
)
def records_command(notebook_path: str, as_json: bool, storage_option: tuple[str, ...]) -> None:
    """Print the values an executed notebook stored with paramill.record (or scrapbook's glue)."""
    import json

    from .records import read_notebook

    try:
        found = read_notebook(notebook_path, _parse_storage_options(storage_option)).raw_records
    except ParamillError as exc:
        fail(exc)
    if as_json:
        data = {name: rec.as_json() for name, rec in found.items()}
        click.echo(json.dumps(data, indent=1, ensure_ascii=False))
        return
    if not found:
        from .storage import display_url

        click.echo(f"{display_url(notebook_path)}: no records", err=True)
        return
    rows = [(name, rec.encoder, rec.summary()) for name, rec in found.items()]
    widths = [max(len(row[i]) for row in [("name", "kind", "value"), *rows]) for i in (0, 1)]
    for name, kind, value in [("name", "kind", "value"), *rows]:
        click.echo(f"{name:<{widths[0]}}  {kind:<{widths[1]}}  {value}")


def _reuse_run_options(*names: str) -> Any:
    """Give a command the run command's own options (same flags, help and defaults)."""

    def decorate(command: click.Command) -> click.Command:
        by_name = {param.name: param for param in run_command.params}
        command.params.extend(by_name[name] for name in names)
        return command

    return decorate


SWEEP_EXIT_CODES = """\b
Exit codes: 0 when every run completed; when runs failed, their exit code if they all
share one (see `paramill run --help`: 1 cell error, 7 cell timeout, ...), else 1;
2 usage error; 4 bad grid or two runs writing one output; 130/143 interrupted.
"""


@_reuse_run_options(
    "parameters",
    "parameters_raw",
    "parameters_file",
    "parameters_yaml",
    "parameters_base64",
    "engine",
    "kernel",
    "language",
    "cwd",
    "log_output",
    "log_level",
    "start_timeout",
    "execution_timeout",
    "run_timeout",
    "report_mode",
    "strict",
    "storage_option",
    "allow_errors",
    "secret",
    "secret_env",
    "secret_file",
    "allow_short_secrets",
    "allow_path_values",
)
@main.command(
    "sweep", context_settings={"help_option_names": ["-h", "--help"]}, epilog=SWEEP_EXIT_CODES
)
@click.argument("notebook_path")
@click.argument("output_template")
@click.option(
    "--grid",
    multiple=True,
    metavar="NAME=V1,V2,...",
    help="Values of one parameter, cast like -p; several --grid flags form a product.",
)
@click.option(
    "--grid-file",
    help="YAML/JSON: a mapping of lists (a product) or a list of parameter mappings.",
)
@click.option(
    "--max-runs",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Refuse a grid of more runs than this (checked before any run starts).",
)
@click.option("--workers", type=click.IntRange(min=1), help="Parallel runs [default: cores].")
@click.option("--fail-fast", is_flag=True, help="Start no new run after one fails.")
@click.option("--summary", metavar="FILE", help="Write the summary table as .json or .csv.")
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Where runs execute: worker threads here, or a Dask cluster.",
)
@click.option("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786.")
@click.option(
    "--preload",
    multiple=True,
    metavar="MOD1,MOD2",
    help="Modules to import in each warm kernel before its run, besides the notebook's own "
    "imports.",
)
@click.option("--no-preload", is_flag=True, help="Do not pre-import the notebook's imports.")
@click.option(
    "--warm/--no-warm",
    default=True,
    show_default=True,
    help="Start the next runs' kernels while runs execute.",
)
@click.option(
    "--fork-server/--no-fork-server",
    default=None,
    help="Fork python kernels from a process that imported ipykernel and the preloads once "
    "[default: on; PARAMILL_FORK_SERVER=0 turns it off].",
)
def sweep_command(
    notebook_path: str,
    output_template: str,
    grid: tuple[str, ...],
    grid_file: str | None,
    max_runs: int,
    workers: int | None,
    fail_fast: bool,
    summary: str | None,
    executor: str,
    scheduler: str | None,
    preload: tuple[str, ...],
    no_preload: bool,
    warm: bool,
    fork_server: bool | None,
    **options: Any,
) -> None:
    """Run NOTEBOOK_PATH once per parameter set; OUTPUT_TEMPLATE names each output.

    \b
    paramill sweep report.ipynb 'out/report_{date}_{region}.ipynb' \\
        --grid date=2019-11-01,2019-11-02 --grid region=north,south
    """
    import signal

    from . import sweeps
    from .parameters import resolve

    log_level = options.pop("log_level")
    if log_level == "INFO" and not options["log_output"]:
        log_level = "WARNING"  # the progress line and the table say what happened
    console = None

    interrupted: list[int] = []

    def stop(signum: int, _frame: Any) -> None:
        if not interrupted:  # once: a second Ctrl-C must not break the cleanup of the first
            interrupted.append(signum)
            raise KeyboardInterrupt(signum)

    # explicit handlers: a shell starts background jobs with SIGINT ignored
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        storage_options = _parse_storage_options(options.pop("storage_option"))
        base = resolve(
            base64s=options.pop("parameters_base64"),
            files=options.pop("parameters_file"),
            yamls=options.pop("parameters_yaml"),
            cast=options.pop("parameters"),
            raw=options.pop("parameters_raw"),
            storage_options=storage_options,
        )
        grids: list[Any] = []
        if grid:
            grids.append(sweeps.parse_grid_options(grid))
        if grid_file:
            grids.append(sweeps.load_grid_file(grid_file, storage_options))
        runs = sweeps.combine_grids(grids, max_runs)
        secrets = _secrets(*(options.pop(k) for k in ("secret", "secret_env", "secret_file")))
        console = sweeps.SweepConsole(len(runs))
        console.install(log_level)
        modules = [m.strip() for item in preload for m in item.split(",") if m.strip()]
        results = sweeps.sweep(
            notebook_path,
            output_template,
            runs,
            parameters=base,
            workers=workers,
            executor=executor,
            scheduler=scheduler,
            fail_fast=fail_fast,
            preload=False if no_preload and not modules else modules,
            warm=warm,
            fork_server=fork_server,
            max_runs=max_runs,
            events=console,
            engine_name=options.pop("engine"),
            kernel_name=options.pop("kernel"),
            storage_options=storage_options,
            secrets=secrets,
            **({"allow_errors": True} if options.pop("allow_errors") else {}),
            **options,
        )
    except ParamillError as exc:
        if console is not None:
            console.finish()
        fail(exc)
    except KeyboardInterrupt as exc:
        if console is not None:
            console.finish()
        signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else signal.SIGINT
        click.echo("paramill: error: sweep interrupted", err=True)
        sys.exit(128 + int(signum))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.finish()
    click.echo(sweeps.format_table(results))
    if summary:
        try:
            sweeps.write_summary(results, summary, storage_options)
        except ParamillError as exc:
            fail(exc)
    sys.exit(sweeps.sweep_exit_code(results))
