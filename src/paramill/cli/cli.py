"""The ``paramill`` command: a click group whose default command is ``run``.

This module and ``options.py`` only declare; they import click and nothing heavy, so ``paramill
--help`` and ``--version`` stay fast. A command's work lives in ``run.py``, ``sweep.py`` and
``records.py``, which import paramill's library at their top; ``_perform`` below is the one
place they are loaded, once a command really runs.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import Any

import click

from .. import __version__
from . import options


class DefaultGroup(click.Group):
    """A group whose default command is ``run``: ``paramill IN OUT`` works as in papermill."""

    default_command = "run"

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not (argv and argv[0] in self.commands):  # the run command: forked warm, maybe
            from ..warm import run_cli, wants_cli_fork  # (the standard library only)

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
    # papermill's form: "<version> from <path of .../cli.py> (<python version>)"
    click.echo(
        f"{__version__} from {os.path.abspath(__file__)} "
        f"({sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro})"
    )
    ctx.exit(0)


def _perform(command: str, values: Any) -> None:
    """Run ``paramill.cli.<command>.main(values)``: the CLI's one deferred import of the
    library, so that parsing and ``--help`` never pay for it."""
    import_module(f"{__package__}.{command}").main(values)


@click.group(cls=DefaultGroup, context_settings=options.HELP_OPTIONS)
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


@main.command("run", context_settings=options.HELP_OPTIONS, epilog=options.EXIT_CODES)
@options.run_options
def run_command(**values: Any) -> None:
    """Run NOTEBOOK_PATH with parameters and write the executed notebook to OUTPUT_PATH.

    Paths may be local, '-' (stdin/stdout) or URLs (s3://, gs://, az://, http(s)://, ...).
    Without OUTPUT_PATH the notebook runs and nothing is written.
    """
    _perform("run", options.RunOptions(**values))


@main.command("records")
@options.records_options
def records_command(**values: Any) -> None:
    """Print the values an executed notebook stored with paramill.record (or scrapbook's glue)."""
    _perform("records", options.RecordsOptions(**values))


@main.command("sweep", context_settings=options.HELP_OPTIONS, epilog=options.SWEEP_EXIT_CODES)
@options.sweep_options
def sweep_command(**values: Any) -> None:
    """Run NOTEBOOK_PATH once per parameter set; OUTPUT_TEMPLATE names each output.

    \b
    paramill sweep report.ipynb 'out/report_{date}_{region}.ipynb' \\
        --grid date=2019-11-01,2019-11-02 --grid region=north,south
    """
    _perform("sweep", options.SweepOptions(**values))


@main.group("warm")
def warm_group() -> None:
    """Your warm servers (paramill --warm): status, stop."""


@warm_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
def warm_status_command(as_json: bool) -> None:
    """Show your warm servers: key, kind, kernel, preloads, age, kernels, memory."""
    _perform("warm", ("status", as_json))


@warm_group.command("stop")
def warm_stop_command() -> None:
    """Stop your warm servers (the kernels and runs they are running are killed)."""
    _perform("warm", ("stop", False))


from ..serve.command import serve as _serve_command  # noqa: E402  (issue 14; imports only click)

main.add_command(_serve_command)
