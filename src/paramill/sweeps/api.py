"""``paramill.sweep``: plan the runs of a grid, then hand them to an executor."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..parameters import resolve
from .executors import ExecutorOptions, SweepEvents, SweepJob, Tracker, get_executor
from .grid import MAX_RUNS, Grid, combine_grids
from .plan import plan_runs
from .run_one import SweepRun

#: run() options a sweep sets itself for every run
_SWEEP_OWNED = ("progress_bar", "handle_signals", "kernel_source")


def sweep(
    template: Any,
    output_template: str | None,
    grid: Grid,
    *,
    workers: int | None = None,
    parameters: Mapping[str, Any] | None = None,
    executor: str = "local",
    client: Any = None,
    scheduler: str | None = None,
    fail_fast: bool = False,
    preload: Iterable[str] | bool | None = None,
    warm: bool = True,
    keep_notebooks: bool = False,
    events: SweepEvents | None = None,
    fork_server: bool | None = None,
    allow_path_values: bool = False,
    max_runs: int = MAX_RUNS,
    **run_options: Any,
) -> list[SweepRun]:
    """Run ``template`` once per parameter set of ``grid``; one ``SweepRun`` per run, in grid
    order. A run's failure is its status, never an exception (see ``sweep_exit_code``).

    ``grid``: a mapping of lists (cartesian product) or a list of mappings. ``parameters``:
    values every run gets (the grid's win). ``output_template``: a path with ``{name}`` fields,
    e.g. ``'out/report_{date}.ipynb'``; two runs mapping to one output is a ParameterError
    raised before anything runs. ``workers``: parallel runs (default: the number of cores).
    ``executor="dask"`` runs on a Dask cluster (``client`` or ``scheduler`` address).
    ``preload``: modules imported in each warm kernel before its run (None: the template's own
    imports; a list adds to them; False: none). ``fork_server``: fork python kernels from a
    pre-imported server (local executor; None: on unless ``PARAMILL_FORK_SERVER=0``).
    ``allow_path_values``: values filled into the templates may hold folders and URLs.
    ``max_runs``: a grid of more runs is a ParameterError raised before anything runs. Other
    keyword arguments go to ``paramill.run`` (``kernel_name``, ``start_timeout``,
    ``execution_timeout``, ``run_timeout``, ``cwd``, ``report_mode``, ``strict``,
    ``log_output``, ``storage_options``, ...).
    """
    base = resolve(
        parameters=parameters,
        files=_as_list(run_options.pop("parameters_file", None)),
        yamls=_as_list(run_options.pop("parameters_yaml", None)),
        storage_options=run_options.get("storage_options"),
    )
    specs = plan_runs(
        template,
        output_template,
        combine_grids([grid], max_runs),
        base,
        allow_path_values=allow_path_values,
    )
    for name in _SWEEP_OWNED:
        run_options.pop(name, None)
    executor_class = get_executor(executor)
    tracker = Tracker(specs, events or SweepEvents(), fail_fast)
    job = SweepJob(
        specs,
        run_options,
        tracker,
        warm=warm and not run_options.get("prepare_only"),  # no run would use a warm kernel
        keep_notebooks=keep_notebooks,
        preload=preload,
    )
    executor_class(ExecutorOptions(workers, client, scheduler, fork_server)).run(job)
    return tracker.results()


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, (str, os.PathLike)) else list(value)
