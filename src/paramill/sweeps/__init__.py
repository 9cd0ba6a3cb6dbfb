"""Sweeps: one notebook run over many parameter sets, on warm kernels, locally or on Dask.

The same path as a single run (``execute.run``) taken many times: the grid is expanded
(``grid``), every run's output name is filled from a template and checked for clashes before
anything runs (``plan``), and the runs go to an executor (``executors``: worker threads
sharing a warm ``KernelPool``; ``dask``: a Dask cluster), each run reported as a ``SweepRun``
(``run_one``). One failure does not stop the others (unless ``fail_fast``). ``summary`` and
``console`` show the outcome and the progress.
"""

from __future__ import annotations

from .api import sweep
from .console import SweepConsole
from .executors import (
    Executor,
    ExecutorOptions,
    LocalExecutor,
    SweepEvents,
    SweepJob,
    Tracker,
    get_executor,
)
from .grid import (
    MAX_RUNS,
    Grid,
    combine_grids,
    expand_grid,
    grid_size,
    load_grid_file,
    parse_grid_options,
)
from .plan import RunSpec, first_notebook, kernel_for, plan_runs, template_imports
from .run_one import SweepRun, current_run, execute_one, sweep_exit_code
from .summary import SUMMARY_COLUMNS, format_table, summary_rows, write_summary

__all__ = [
    "MAX_RUNS",
    "SUMMARY_COLUMNS",
    "Executor",
    "ExecutorOptions",
    "Grid",
    "LocalExecutor",
    "RunSpec",
    "SweepConsole",
    "SweepEvents",
    "SweepJob",
    "SweepRun",
    "Tracker",
    "combine_grids",
    "current_run",
    "execute_one",
    "expand_grid",
    "first_notebook",
    "format_table",
    "get_executor",
    "grid_size",
    "kernel_for",
    "load_grid_file",
    "parse_grid_options",
    "plan_runs",
    "summary_rows",
    "sweep",
    "sweep_exit_code",
    "template_imports",
    "write_summary",
]
