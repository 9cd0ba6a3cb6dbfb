"""``paramill sweep``: one notebook, many parameter sets, a summary table at the end."""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from .. import sweeps
from ..errors import ParamillError
from ..parameters import resolve
from ..signals import interrupt_once
from .exits import fail, interrupted
from .options import SweepOptions
from .values import parse_storage_options, secrets


def main(opts: SweepOptions) -> None:
    """Plan the runs, run them with a progress line, print the table, exit with the code the
    runs agree on."""
    console = None
    with interrupt_once():
        try:
            storage_options = parse_storage_options(opts.storage_option)
            base, runs, run_secrets = _plan(opts, storage_options)
            console = sweeps.SweepConsole(len(runs))
            console.install(_log_level(opts))
            results = _sweep(opts, base, runs, run_secrets, storage_options, console)
        except ParamillError as exc:
            if console is not None:
                console.finish()
            fail(exc)
        except KeyboardInterrupt as exc:
            if console is not None:
                console.finish()
            signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else signal.SIGINT
            interrupted("sweep interrupted", 128 + int(signum))
    console.finish()
    click.echo(sweeps.format_table(results))
    if opts.summary:
        try:
            sweeps.write_summary(results, opts.summary, storage_options)
        except ParamillError as exc:
            fail(exc)
    sys.exit(sweeps.sweep_exit_code(results))


def _log_level(opts: SweepOptions) -> str:
    if opts.log_level == "INFO" and not opts.log_output:
        return "WARNING"  # the progress line and the table say what happened
    return opts.log_level


def _plan(
    opts: SweepOptions, storage_options: dict[str, Any] | None
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]:
    """The base parameters, each run's grid values and the secrets, checked before any run
    starts (a bad grid or too many runs stops here)."""
    base = resolve(storage_options=storage_options, **opts.parameter_sources())
    grids: list[Any] = []
    if opts.grid:
        grids.append(sweeps.parse_grid_options(opts.grid))
    if opts.grid_file:
        grids.append(sweeps.load_grid_file(opts.grid_file, storage_options))
    runs = sweeps.combine_grids(grids, opts.max_runs)
    return base, runs, secrets(opts)


def _sweep(
    opts: SweepOptions,
    base: dict[str, Any],
    runs: list[dict[str, Any]],
    run_secrets: dict[str, str],
    storage_options: dict[str, Any] | None,
    console: sweeps.SweepConsole,
) -> list[sweeps.SweepRun]:
    return sweeps.sweep(
        opts.notebook_path,
        opts.output_template,
        runs,
        parameters=base,
        workers=opts.workers,
        executor=opts.executor,
        scheduler=opts.scheduler,
        fail_fast=opts.fail_fast,
        preload=opts.preload_modules(),
        warm=opts.warm,
        fork_server=opts.fork_server,
        max_runs=opts.max_runs,
        events=console,
        storage_options=storage_options,
        secrets=run_secrets,
        **opts.run_kwargs(),
    )
