"""The command-line options: shared option blocks, and one typed object per command.

Each option is declared once here; ``run`` and ``sweep`` stack the blocks they share, in the
same order, so their help stays identical. click passes a command's values as keyword
arguments, which the command gathers into its options object (``RunOptions``,
``SweepOptions``) before anything else reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import click

from .remote import remote_kernel, remote_kwargs

LOG_LEVELS = ["NOTSET", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}

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

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def stack(*decorators: Decorator) -> Decorator:
    """Several click decorators as one, applied so that options list in the order given."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return decorate


def storage_option(help: str) -> Decorator:
    """``--storage-option KEY=VALUE`` (repeatable) with a command's own help text."""
    return click.option(
        "--storage-option", "storage_option", multiple=True, metavar="KEY=VALUE", help=help
    )


# -- shared by run and sweep ------------------------------------------------------------------

parameters = stack(
    click.option(
        "-p",
        "--parameters",
        nargs=2,
        multiple=True,
        metavar="NAME VALUE",
        help="Parameter, its value cast like papermill (int, float, True/False/None).",
    ),
    click.option(
        "-r",
        "--parameters_raw",
        nargs=2,
        multiple=True,
        metavar="NAME VALUE",
        help="Parameter whose value stays a string.",
    ),
    click.option("-f", "--parameters_file", multiple=True, help="YAML or JSON file of parameters."),
    click.option("-y", "--parameters_yaml", multiple=True, help="YAML text of parameters."),
    click.option(
        "-b", "--parameters_base64", multiple=True, help="Base64-encoded YAML parameters."
    ),
)

engine = click.option("--engine", help="Execution engine name.")

kernel = stack(
    click.option("-k", "--kernel", help="Kernel name (also written into the output's kernelspec)."),
    click.option("-l", "--language", help="Language for parameter rendering."),
    click.option("--cwd", help="Directory the kernel runs in (this process does not chdir)."),
)

log_output = click.option("--log-output/--no-log-output", default=False, help="Log cell outputs.")

execution = stack(
    click.option("--log-level", type=click.Choice(LOG_LEVELS), default="INFO", show_default=True),
    click.option(
        "--start-timeout",
        "--start_timeout",
        type=int,
        default=60,
        show_default=True,
        help="Seconds to wait for the kernel to start.",
    ),
    click.option(
        "--execution-timeout",
        type=int,
        help="Per-cell time limit in seconds (0 or absent: none).",
    ),
    click.option(
        "--timeout",
        "run_timeout",
        type=float,
        help="Whole-run time limit in seconds (kernel start included).",
    ),
    click.option("--report-mode/--no-report-mode", default=False, help="Hide code inputs."),
    click.option(
        "--strict",
        is_flag=True,
        help="Unknown or mistyped parameters are errors; cells tagged raises-exception fail.",
    ),
    storage_option(
        "fsspec storage option for URLs (repeatable; dotted keys nest; a protocol prefix "
        "scopes it to that store), e.g. s3.endpoint_url=http://127.0.0.1:9000."
    ),
    click.option(
        "--allow-errors",
        is_flag=True,
        help="Run every cell even after errors; errors do not fail the run.",
    ),
)

secrets = stack(
    click.option(
        "-s",
        "--secret",
        nargs=2,
        multiple=True,
        metavar="NAME VALUE",
        help="A variable the notebook gets whose value is never written to the output, the "
        "report, logs or the run record (it reaches the kernel through its environment). The "
        "value is visible to local users in `ps`: prefer --secret-env or --secret-file.",
    ),
    click.option(
        "--secret-env",
        multiple=True,
        metavar="NAME=ENVVAR",
        help="Like --secret, with the value read from this process's environment variable "
        "ENVVAR (a safe form).",
    ),
    click.option(
        "--secret-file",
        multiple=True,
        metavar="NAME=PATH",
        help="Like --secret, with the value read from the file PATH, less one trailing newline "
        "(a safe form).",
    ),
    click.option(
        "--allow-short-secrets",
        is_flag=True,
        help="Accept secrets shorter than 6 characters (scrubbing them rewrites unrelated text).",
    ),
)

allow_path_values = click.option(
    "--allow-path-values",
    is_flag=True,
    help="Let parameter values filled into path templates ({name}) hold folders ('/', '..') "
    "and URL schemes. Without it such a value is an error (exit 4).",
)


@dataclass
class SharedOptions:
    """The options ``run`` and ``sweep`` have in common (same flags, same meaning)."""

    parameters: tuple[tuple[str, str], ...]
    parameters_raw: tuple[tuple[str, str], ...]
    parameters_file: tuple[str, ...]
    parameters_yaml: tuple[str, ...]
    parameters_base64: tuple[str, ...]
    engine: str | None
    kernel: str | None
    language: str | None
    cwd: str | None
    log_output: bool
    log_level: str
    start_timeout: int
    execution_timeout: int | None
    run_timeout: float | None
    report_mode: bool
    strict: bool
    storage_option: tuple[str, ...]
    allow_errors: bool
    secret: tuple[tuple[str, str], ...]
    secret_env: tuple[str, ...]
    secret_file: tuple[str, ...]
    allow_short_secrets: bool
    allow_path_values: bool
    # kernels elsewhere (cli/remote.py)
    gateway_url: str | None
    gateway_token: str | None = field(repr=False)
    gateway_header: tuple[str, ...] = field(repr=False)
    gateway_validate_cert: bool | None
    gateway_ca_bundle: str | None
    connection_file: str | None
    liveness_timeout: tuple[str, ...]

    def __post_init__(self) -> None:
        # checked while click is in charge: a value that cannot work is a usage error (exit 2)
        self.remote = remote_kwargs(vars(self))

    def parameter_sources(self) -> dict[str, Any]:
        """The -b, -f, -y, -p, -r values as ``parameters.resolve`` takes them."""
        return {
            "base64s": self.parameters_base64,
            "files": self.parameters_file,
            "yamls": self.parameters_yaml,
            "cast": self.parameters,
            "raw": self.parameters_raw,
        }

    def run_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``paramill.run`` these options give directly (those that
        need parsing first -- parameters, secrets, storage options -- are left out)."""
        return {
            "engine_name": self.engine,
            "kernel_name": self.kernel,
            "language": self.language,
            "cwd": self.cwd,
            "log_output": self.log_output,
            "start_timeout": self.start_timeout,
            "execution_timeout": self.execution_timeout,
            "run_timeout": self.run_timeout,
            "report_mode": self.report_mode,
            "strict": self.strict,
            "allow_short_secrets": self.allow_short_secrets,
            "allow_path_values": self.allow_path_values,
            # absent unless given, so the library's default (papermill's) stays in charge
            **({"allow_errors": True} if self.allow_errors else {}),
            **self.remote,
        }


# -- run only ---------------------------------------------------------------------------------

run_saving = stack(
    click.option(
        "--request-save-on-cell-execute/--no-request-save-on-cell-execute",
        default=True,
        help="Save the output notebook while the run goes on (coalesced, at most 1/s).",
    ),
    click.option(
        "--autosave-cell-every",
        default=30,
        type=int,
        show_default=True,
        help="Seconds between saves during a long cell on remote stores; 0 disables.",
    ),
    click.option(
        "--prepare-only/--prepare-execute",
        default=False,
        help="Only inject parameters; do not run the notebook.",
    ),
)

run_streams = stack(
    click.option(
        "--stdout-file",
        type=click.File(mode="w", encoding="utf-8"),
        help="Write the kernel's stdout to this file.",
    ),
    click.option(
        "--stderr-file",
        type=click.File(mode="w", encoding="utf-8"),
        help="Write the kernel's stderr to this file.",
    ),
)

run_options = stack(
    click.argument("notebook_path", required=False),
    click.argument("output_path", required=False),
    click.option("--help-notebook", is_flag=True, help="Print the notebook's parameters and exit."),
    parameters,
    click.option(
        "--inject-input-path", is_flag=True, help="Add PAPERMILL_INPUT_PATH to the parameters."
    ),
    click.option(
        "--inject-output-path", is_flag=True, help="Add PAPERMILL_OUTPUT_PATH to the parameters."
    ),
    click.option(
        "--inject-paths", is_flag=True, help="Both --inject-input-path and --inject-output-path."
    ),
    engine,
    run_saving,
    kernel,
    click.option("--progress-bar/--no-progress-bar", default=None, help="Show a progress bar."),
    log_output,
    run_streams,
    execution,
    remote_kernel,
    click.option(
        "--html",
        "html_output",
        metavar="REPORT.html",
        help="Also write an HTML report of the executed notebook (needs paramill[report]); "
        "with --report-mode code and injected parameters are hidden.",
    ),
    secrets,
    click.option(
        "--run-record",
        metavar="FILE.json",
        help="Write a JSON record of the run (status, exit code, parameters, timings, error), "
        "also when the run fails or cannot start.",
    ),
    click.option(
        "--deterministic",
        is_flag=True,
        help="Leave timestamps and durations out of the output notebook, so that two runs of "
        "the same notebook give identical files.",
    ),
    allow_path_values,
    click.option(
        "--warm/--no-warm",
        default=None,
        help="Run as a fork of your warm paramill, on a python kernel forked from your warm "
        "kernel server (both started in the background by the first warm run; `paramill "
        "warm status|stop`) [default: PARAMILL_WARM, else off].",
    ),
)


@dataclass
class RunOptions(SharedOptions):
    """Everything ``paramill run`` was given."""

    notebook_path: str | None
    output_path: str | None
    help_notebook: bool
    inject_input_path: bool
    inject_output_path: bool
    inject_paths: bool
    request_save_on_cell_execute: bool
    autosave_cell_every: int
    prepare_only: bool
    progress_bar: bool | None
    stdout_file: IO[str] | None
    stderr_file: IO[str] | None
    html_output: str | None
    run_record: str | None
    deterministic: bool
    warm: bool | None


# -- sweep only -------------------------------------------------------------------------------

sweep_options = stack(
    click.argument("notebook_path"),
    click.argument("output_template"),
    click.option(
        "--grid",
        multiple=True,
        metavar="NAME=V1,V2,...",
        help="Values of one parameter, cast like -p; several --grid flags form a product.",
    ),
    click.option(
        "--grid-file",
        help="YAML/JSON: a mapping of lists (a product) or a list of parameter mappings.",
    ),
    click.option(
        "--max-runs",
        type=click.IntRange(min=1),
        default=10_000,
        show_default=True,
        help="Refuse a grid of more runs than this (checked before any run starts).",
    ),
    click.option("--workers", type=click.IntRange(min=1), help="Parallel runs [default: cores]."),
    click.option("--fail-fast", is_flag=True, help="Start no new run after one fails."),
    click.option("--summary", metavar="FILE", help="Write the summary table as .json or .csv."),
    # checked when the sweep starts (entry point group paramill.executors), so --help scans
    # no entry points
    click.option(
        "--executor",
        metavar="NAME",
        default="local",
        show_default=True,
        help="Where runs execute: 'local' (worker threads here), 'dask' (a Dask cluster), or an "
        "executor a plug-in registers.",
    ),
    click.option("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786."),
    click.option(
        "--preload",
        multiple=True,
        metavar="MOD1,MOD2",
        help="Modules to import in each warm kernel before its run, besides the notebook's own "
        "imports.",
    ),
    click.option("--no-preload", is_flag=True, help="Do not pre-import the notebook's imports."),
    click.option(
        "--warm/--no-warm",
        default=True,
        show_default=True,
        help="Start the next runs' kernels while runs execute.",
    ),
    click.option(
        "--fork-server/--no-fork-server",
        default=None,
        help="Fork python kernels from a process that imported ipykernel and the preloads once "
        "[default: on; PARAMILL_FORK_SERVER=0 turns it off].",
    ),
    # run's options, in run's order
    parameters,
    engine,
    kernel,
    log_output,
    execution,
    remote_kernel,
    secrets,
    allow_path_values,
)


@dataclass
class SweepOptions(SharedOptions):
    """Everything ``paramill sweep`` was given."""

    notebook_path: str
    output_template: str
    grid: tuple[str, ...]
    grid_file: str | None
    max_runs: int
    workers: int | None
    fail_fast: bool
    summary: str | None
    executor: str
    scheduler: str | None
    preload: tuple[str, ...]
    no_preload: bool
    warm: bool
    fork_server: bool | None

    def preload_modules(self) -> list[str] | bool:
        """``--preload`` as a module list; False when ``--no-preload`` leaves nothing to load."""
        modules = [m.strip() for item in self.preload for m in item.split(",") if m.strip()]
        return False if self.no_preload and not modules else modules


records_options = stack(
    click.argument("notebook_path"),
    click.option("--json", "as_json", is_flag=True, help="Print the records as one JSON object."),
    storage_option("fsspec storage option for URLs (as for run)."),
)


@dataclass
class RecordsOptions:
    """Everything ``paramill records`` was given."""

    notebook_path: str
    as_json: bool
    storage_option: tuple[str, ...]
