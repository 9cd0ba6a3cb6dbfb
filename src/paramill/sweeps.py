"""Sweeps: one notebook run over many parameter sets, on warm kernels, locally or on Dask.

The same path as a single run (``execute.run``) taken many times: the grid is expanded, every
run's output name is filled from a template and checked for clashes before anything runs, and
the runs go to an executor (worker threads sharing a warm ``KernelPool``, or a Dask cluster).
Each run is reported as a ``SweepRun``; one failure does not stop the others (unless
``fail_fast``).
"""

from __future__ import annotations

import ast
import contextvars
import csv
import io
import itertools
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import IO, Any

from .errors import ExecutionError, InputError, ParameterError, ParamillError

logger = logging.getLogger("paramill")

#: the label of the run the current thread (or task) is executing, for log prefixes
current_run: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "paramill_run", default=None
)

Grid = Mapping[str, Any] | Sequence[Mapping[str, Any]]


# -- grids ---------------------------------------------------------------------------------------
def _values(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple, set, frozenset, range)) else [value]


def expand_grid(grid: Grid) -> list[dict[str, Any]]:
    """A mapping of lists is a cartesian product (first name varies slowest); a list of
    mappings is taken as it is. A scalar (or string) value counts as a one-element list."""
    if isinstance(grid, Mapping):
        names = list(grid)
        values = [_values(v) for v in grid.values()]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
    if isinstance(grid, (list, tuple)):
        runs = []
        for i, item in enumerate(grid):
            if not isinstance(item, Mapping):
                raise ParameterError(
                    f"grid item {i + 1} is a {type(item).__name__}, expected a mapping of "
                    "parameter names to values"
                )
            runs.append(dict(item))
        return runs
    raise ParameterError(
        f"a grid is a mapping of lists or a list of mappings, got a {type(grid).__name__}"
    )


def parse_grid_options(items: Iterable[str]) -> dict[str, list[Any]]:
    """``--grid name=v1,v2`` flags as a mapping of lists, values cast like ``-p``."""
    from .parameters import cast_value

    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ParameterError(f"--grid {item!r}: expected NAME=VALUE1,VALUE2,...")
        grid.setdefault(name, []).extend(cast_value(v) for v in values.split(","))
    return grid


def load_grid_file(path: str, storage_options: dict[str, Any] | None = None) -> Grid:
    """A YAML/JSON file holding a mapping of lists or a list of mappings, read like ``-f``
    (JSON exactly, YAML with its depth and alias-expansion limits)."""
    from . import storage
    from .parameters.sources import check_renderable, read_file

    shown = storage.display_url(path)
    try:
        data = read_file(path, storage_options, what="grid")
        if not isinstance(data, (Mapping, list)):
            raise ParameterError(f"{shown}: expected a mapping of lists or a list of mappings")
        check_renderable(data if isinstance(data, Mapping) else {"grid": data})
        if isinstance(data, list):
            expand_grid(data)  # every item a mapping (a list is not expanded: no product)
    except ParameterError as exc:
        message = exc.message  # every message starts "grid file g.yaml: ..."
        if not message.startswith("grid file "):
            where = "" if message.startswith(shown) else f"{shown}: "
            message = f"grid file {where}{message}"
        raise ParameterError(message) from None
    return data


#: more runs than this need ``max_runs=`` (``--max-runs``): a typo in a grid should not
#: start a million kernels
MAX_RUNS = 10_000


def grid_size(grid: Grid) -> int:
    """How many runs ``grid`` expands to, without expanding it."""
    if isinstance(grid, Mapping):
        return math.prod(len(_values(v)) for v in grid.values())
    if isinstance(grid, (list, tuple)):
        return len(grid)
    return 1  # expand_grid refuses it


def combine_grids(grids: Iterable[Grid], max_runs: int = MAX_RUNS) -> list[dict[str, Any]]:
    """Several grids (``--grid`` flags and ``--grid-file``) form their cartesian product; more
    than ``max_runs`` runs is a ParameterError raised before any is built."""
    grids = list(grids)
    total = math.prod(grid_size(grid) for grid in grids)
    if total > max_runs:
        raise ParameterError(
            f"the sweep has {total:,} runs, more than the limit of {max_runs:,}; "
            "raise it with --max-runs N (Python: max_runs=N) if that many are meant"
        )
    runs: list[dict[str, Any]] = [{}]
    for grid in grids:
        runs = [{**left, **right} for left in runs for right in expand_grid(grid)]
    return runs


# -- planning ------------------------------------------------------------------------------------
@dataclass
class RunSpec:
    """One planned run: where it reads and writes and with which parameters."""

    index: int
    grid: dict[str, Any]
    parameters: dict[str, Any]
    input_path: Any
    output_path: str | None

    @property
    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.grid.items()) or f"run {self.index + 1}"


def _fill(path: Any, parameters: Mapping[str, Any], allow_path_values: bool) -> Any:
    from ._run.paths import path_parameters, template_path

    return template_path(
        path, path_parameters(parameters), allow_path_values=allow_path_values
    )


def _for_run(filled: Any, template: Any) -> Any:
    """run() fills templates again: a brace that came from a value must stay a brace."""
    if isinstance(filled, str) and filled != template and "{" in filled:
        return filled.replace("{", "{{").replace("}", "}}")
    return filled


def plan_runs(
    template: Any,
    output_template: str | None,
    runs: Sequence[Mapping[str, Any]],
    base: Mapping[str, Any] | None = None,
    *,
    allow_path_values: bool = False,
) -> list[RunSpec]:
    """The runs with their output names; two runs writing the same output, or a run writing
    over an input notebook (unless both paths are literal: one run in place), is an error."""
    from ._run.paths import has_fields, refuse_overwriting_input
    from .storage import display_url, location_key

    if not runs:
        raise ParameterError("the grid is empty: nothing to run")
    template, output_template = (
        os.fspath(p) if isinstance(p, os.PathLike) else p for p in (template, output_template)
    )
    specs, seen, inputs = [], {}, {}
    for index, values in enumerate(runs):
        params = {**(base or {}), **values}
        output = _fill(output_template, params, allow_path_values)
        source = _fill(template, params, allow_path_values)
        if output not in (None, "-") and not isinstance(output, str):
            raise ParameterError("a sweep's output template must be a path")
        if output == "-" and len(runs) > 1:
            raise ParameterError("a sweep cannot write every run to stdout ('-')")
        if output not in (None, "-"):
            place = location_key(output)
            if place in seen:
                raise ParameterError(
                    f"output template {display_url(output_template)!r} gives "
                    f"{display_url(output)!r} for two runs "
                    f"({seen[place][0]} and {_label(values, index)}); add a parameter to it, "
                    "e.g. 'out/report_{date}.ipynb'"
                )
            seen[place] = (_label(values, index), output)
        if isinstance(source, str) and source != "-":
            inputs[location_key(source)] = source
        specs.append(
            RunSpec(
                index,
                dict(values),
                params,
                _for_run(source, template),
                _for_run(output, output_template),
            )
        )
    if has_fields(template) or has_fields(output_template):
        for place, (label, output) in seen.items():
            if place in inputs:
                refuse_overwriting_input(inputs[place], output, f"run {label}: the output")
    return specs


def _label(values: Mapping[str, Any], index: int) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items()) or f"run {index + 1}"


def template_imports(nb: Any) -> list[str]:
    """Modules a Python notebook imports (``import a.b``, ``from a.b import c``), in order."""
    found: dict[str, None] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        # IPython magics and shell escapes are not Python: blank them so the rest parses
        lines = [
            "" if line.lstrip().startswith(("%", "!", "?")) else line
            for line in cell.source.splitlines()
        ]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found[alias.name] = None
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module != "__future__":
                    found[node.module] = None
    return list(found)


# -- results -------------------------------------------------------------------------------------
@dataclass
class SweepRun:
    """What one run of a sweep did (no notebook unless ``keep_notebooks``)."""

    index: int
    grid: dict[str, Any]
    parameters: dict[str, Any]
    output_path: str | None
    status: str  # completed | prepared (prepare_only) | skipped (--fail-fast) | failed | timeout
    #            | kernel-died | cancelled | output-error | error (before the kernel ran)
    duration: float | None = None
    error: ParamillError | None = None
    records: Any = None
    notebook: Any = None
    kernel_name: str | None = None

    def __post_init__(self) -> None:
        from .storage import display_url

        self.output_path = display_url(self.output_path)  # shown in summaries: no credentials

    @property
    def ok(self) -> bool:
        """No error, as ``RunResult.ok``: completed, prepared or skipped."""
        return self.error is None

    @property
    def label(self) -> str:
        return _label(self.grid, self.index)

    @property
    def exit_code(self) -> int:
        return 0 if self.error is None else self.error.exit_code

    @property
    def failing_cell(self) -> str:
        error = self.error
        if not isinstance(error, ExecutionError) or error.cell_index is None:
            return ""
        where = str(error.cell_index)
        if error.exec_count is not None:
            where += f" (In [{error.exec_count}])"
        return where

    def raise_for_error(self) -> None:
        if self.error is not None:
            raise self.error


def execute_one(
    spec: RunSpec,
    run_options: Mapping[str, Any],
    *,
    kernel_starter: Callable[..., Any] | None = None,
    keep_notebook: bool = False,
) -> SweepRun:
    """Run one planned run; every paramill error becomes the run's status, never an exception."""
    from .api import run

    options = dict(run_options)
    if kernel_starter is not None:
        options["kernel_source"] = kernel_starter
    token = current_run.set(spec.label)
    began = time.monotonic()
    outcome = SweepRun(spec.index, spec.grid, spec.parameters, spec.output_path, "error")
    try:
        result = run(
            spec.input_path,
            spec.output_path,
            spec.parameters,
            progress_bar=False,
            handle_signals=False,
            **options,
        )
    except ParamillError as exc:
        outcome.error = exc
    except Exception as exc:  # a bug: report it as this run's failure, keep the sweep going
        logger.exception("run %s: internal error", spec.label)
        outcome.error = ParamillError(f"internal error: {type(exc).__name__}: {exc}")
    else:
        outcome.status = result.status
        outcome.error = result.error
        outcome.records = getattr(result, "records", None)
        outcome.kernel_name = result.kernel_name
        if keep_notebook:
            outcome.notebook = result.notebook
    finally:
        current_run.reset(token)
    outcome.duration = round(time.monotonic() - began, 3)
    return outcome


def sweep_exit_code(runs: Iterable[SweepRun]) -> int:
    """0 when no run failed; the failed runs' exit code when they all share one
    (e.g. 1 for cell errors, 7 for cell timeouts); 1 for a mix of failures."""
    codes = {run.exit_code for run in runs if not run.ok}
    codes.discard(0)
    if not codes:
        return 0
    return codes.pop() if len(codes) == 1 else 1


# -- running -------------------------------------------------------------------------------------
class SweepEvents:
    """Receives progress; the CLI's console implements it. Called from worker threads."""

    def started(self, spec: RunSpec) -> None: ...

    def finished(self, run: SweepRun) -> None: ...


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
    from .parameters import resolve

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
    for name in ("progress_bar", "handle_signals", "kernel_starter"):
        run_options.pop(name, None)
    warm = warm and not run_options.get("prepare_only")  # no run would use a warm kernel
    events = events or SweepEvents()
    if executor == "dask":
        from .integrations.dask import run_on_dask

        return run_on_dask(
            specs,
            run_options,
            client=client,
            scheduler=scheduler,
            fail_fast=fail_fast,
            preload=_preload_list(first_notebook(specs, run_options), run_options, preload),
            warm=warm,
            keep_notebooks=keep_notebooks,
            events=events,
        )
    if executor != "local":
        raise InputError(f"no executor named {executor!r} (known: local, dask)")
    workers = max(1, int(workers or os.cpu_count() or 1))
    return _run_local(
        specs, run_options, workers, fail_fast, preload, warm, keep_notebooks, events, fork_server
    )


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, (str, os.PathLike)) else list(value)


def first_notebook(specs: Sequence[RunSpec], run_options: Mapping[str, Any]) -> Any:
    """The first run's notebook (to learn its kernel and imports), or None if unreadable."""
    from .nbio import read_notebook_source

    try:
        return read_notebook_source(specs[0].input_path, run_options.get("storage_options"))
    except ParamillError:
        return None  # every run will report it


def _preload_list(nb: Any, run_options: Mapping[str, Any], preload: Any) -> list[str]:
    if preload is False:
        return []
    if nb is None or _language(nb, run_options) != "python":
        return []
    return [*template_imports(nb), *(preload if isinstance(preload, Iterable) else ())]


def _language(nb: Any, run_options: Mapping[str, Any]) -> str | None:
    language = run_options.get("language")
    if language:
        return language.lower()
    spec = nb.metadata.get("kernelspec", {})
    name = nb.metadata.get("language_info", {}).get("name") or spec.get("language") or ""
    return name.lower() or None


def kernel_for(nb: Any, run_options: Mapping[str, Any]) -> str | None:
    return run_options.get("kernel_name") or nb.metadata.get("kernelspec", {}).get("name")


def _run_local(
    specs: list[RunSpec],
    run_options: dict[str, Any],
    workers: int,
    fail_fast: bool,
    preload: Any,
    warm: bool,
    keep_notebooks: bool,
    events: SweepEvents,
    fork_server: bool | None = None,
) -> list[SweepRun]:
    # imported before the threads start: a module half-imported by one thread fails in another
    import nbclient  # noqa: F401

    from . import engine as _engine  # noqa: F401
    from .kernel.forkserver import enabled
    from .kernel.pool import KernelPool
    from .secrets import kernel_env

    engine = run_options.get("engine_name")
    pooled = warm and engine in (None, "", "nbclient")  # other engines may not take a starter
    stop = threading.Event()

    def one(spec: RunSpec, starter: Any) -> SweepRun:
        if stop.is_set():
            return SweepRun(spec.index, spec.grid, spec.parameters, spec.output_path, "skipped")
        events.started(spec)
        outcome = execute_one(
            spec, run_options, kernel_starter=starter, keep_notebook=keep_notebooks
        )
        if fail_fast and not outcome.ok:
            stop.set()
        events.finished(outcome)
        return outcome

    results: list[SweepRun | None] = [None] * len(specs)
    # two ready kernels per worker: with one, a worker waits for its next kernel to boot
    # (measured on 2 cores: 9 -> 12 trivial runs/s; three per worker was slower again)
    size = min(2 * workers, len(specs)) if pooled else 0
    nb = first_notebook(specs, run_options) if pooled else None  # its kernel and imports
    with KernelPool(
        size,
        preload=_preload_list(nb, run_options, preload) if pooled else (),
        limit=len(specs),
        start_timeout=run_options.get("start_timeout", 60),
        fork_server=enabled(fork_server, default=True),
    ) as pool:
        starter = pool if pooled else None
        threads = ThreadPoolExecutor(workers, thread_name_prefix="paramill-sweep")
        futures: dict[Future, int] = {}
        try:
            if nb is not None:
                kernel = kernel_for(nb, run_options)
                if kernel:  # with the environment the runs ask for (secrets included)
                    env = {
                        **(run_options.get("kernel_env") or {}),
                        **kernel_env(run_options.get("secrets") or {}),
                    }
                    pool.warm(kernel, cwd=run_options.get("cwd"), env=env)
            for spec in specs:
                futures[threads.submit(one, spec, starter)] = spec.index
            pending = set(futures)
            while pending:
                # a timeout keeps the main thread responsive to Ctrl-C
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    results[futures[future]] = future.result()
        except BaseException:  # Ctrl-C / SIGTERM: start nothing new, end what runs
            stop.set()
            pool.kill_all()
            for future in futures:
                future.cancel()
            raise
        finally:
            threads.shutdown(wait=True)
    return [r for r in results if r is not None]


# -- reporting -----------------------------------------------------------------------------------
SUMMARY_COLUMNS = ("run", "parameters", "status", "duration", "output", "failing_cell", "error")


def summary_rows(runs: Sequence[SweepRun]) -> list[dict[str, Any]]:
    """One row per run; records (if runs have them) become ``record.<name>`` columns."""
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "run": run.index + 1,
            "parameters": run.label,
            "status": run.status,
            "duration": run.duration,
            "output": run.output_path or "",
            "failing_cell": run.failing_cell,
            "error": run.error.message if run.error is not None else "",
            "exit_code": run.exit_code,
            "grid": run.grid,
        }
        if isinstance(run.records, Mapping):
            for name, value in run.records.items():
                row[f"record.{name}"] = _record_value(value)
        elif run.records is not None:
            row["records"] = _record_value(run.records)
        rows.append(row)
    return rows


def _record_value(value: Any) -> Any:
    from .parameters import json_safe

    value = getattr(value, "value", value)
    return json_safe(value)


def format_table(runs: Sequence[SweepRun], width: int = 48) -> str:
    rows = summary_rows(runs)
    extra = sorted({k for row in rows for k in row if k.startswith("record")})
    columns = [c for c in SUMMARY_COLUMNS if c != "run"] + extra
    heads = {"failing_cell": "failing cell"}

    def cell(row: dict, col: str) -> str:
        value = row.get(col, "")
        if col == "duration" and value is not None and value != "":
            value = f"{value:.2f}s"
        text = "" if value is None else str(value)
        return text if len(text) <= width else text[: width - 1] + "…"

    table = [[heads.get(c, c) for c in columns]] + [[cell(r, c) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in table
    ]
    failed = sum(1 for r in runs if not r.ok)
    skipped = sum(1 for r in runs if r.status == "skipped")
    prepared = sum(1 for r in runs if r.status == "prepared")  # prepare_only: all or none
    fine = f"{prepared} prepared" if prepared else f"{len(runs) - failed - skipped} completed"
    tail = f"{len(runs)} runs: {fine}, {failed} failed"
    if skipped:
        tail += f", {skipped} skipped"
    return "\n".join([*lines, tail])


def write_summary(
    runs: Sequence[SweepRun], path: str, storage_options: dict[str, Any] | None = None
) -> None:
    """The summary as JSON (a list of rows) or CSV (one column per grid parameter), by suffix."""
    from . import storage

    rows = summary_rows(runs)
    if path.lower().endswith(".csv"):
        names = list(dict.fromkeys(k for row in rows for k in row["grid"]))
        extra = sorted({k for row in rows for k in row if k.startswith("record")})
        columns = [
            "run",
            *names,
            "status",
            "duration",
            "output",
            "failing_cell",
            "error",
            "exit_code",
            *extra,
        ]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            flat = {**row, **row["grid"]}
            writer.writerow({k: _csv_value(flat.get(k)) for k in columns})
        text = buffer.getvalue()
    elif path.lower().endswith(".json"):
        from .parameters import json_safe

        text = json.dumps(json_safe(rows), indent=1) + "\n"
    else:
        raise ParameterError(f"--summary {path}: name a .json or .csv file")
    storage.write_text(path, text, storage_options)


def _csv_value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else value


class SweepConsole(logging.Handler, SweepEvents):
    """Progress (done/failed/running, ETA) and the runs' log lines on one stream, never mixed.

    On a terminal the progress is one status line redrawn in place, cleared before each log
    line; otherwise a line is printed as each run finishes. Log lines are prefixed with their
    run (``[date=2019-11-01] ...``).
    """

    def __init__(self, total: int, stream: IO[str] | None = None, live: bool | None = None):
        super().__init__()
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.total = total
        self.done = self.failed = self.running = 0
        self.began = time.monotonic()
        self._shown = False
        self.setFormatter(logging.Formatter("%(message)s"))

    def status(self) -> str:
        finished = self.done + self.failed
        text = (
            f"sweep: {finished}/{self.total}  done {self.done}  failed {self.failed}  "
            f"running {self.running}"
        )
        if finished:
            eta = (time.monotonic() - self.began) / finished * (self.total - finished)
            text += f"  ETA {int(eta // 60)}:{int(eta % 60):02d}"
        return text

    def _clear(self) -> None:
        if self.live and self._shown:
            self.stream.write("\r\x1b[K")
            self._shown = False

    def _draw(self) -> None:
        if self.live:
            self.stream.write("\r\x1b[K" + self.status())
            self._shown = True
        self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.write_lines(text)

    def write_lines(self, text: str) -> None:
        """Write lines named by the run of the calling thread or task (``[sweep]`` outside)."""
        label = current_run.get() or "sweep"
        text = "\n".join(f"[{label}] {line}" for line in text.splitlines() or [""])
        with self.lock:
            self._clear()
            self.stream.write(text + "\n")
            self._draw()

    def install(self, level: int | str) -> None:
        """Take over this process's log output and ``sys.stderr`` until ``finish``: paramill's
        logs at ``level``, other libraries' warnings, Python warnings and thread tracebacks all
        come out as named lines instead of cutting through the progress."""
        paramill, root = logging.getLogger("paramill"), logging.getLogger()
        paramill.handlers[:] = [self]
        paramill.propagate = False
        paramill.setLevel(level)
        root.handlers[:] = [self]
        logging.captureWarnings(True)
        self._stderr = sys.stderr
        sys.stderr = _ConsoleStream(self, self._stderr)  # type: ignore[assignment]

    def started(self, spec: RunSpec) -> None:
        with self.lock:
            self.running += 1
            self._clear()
            self._draw()

    def finished(self, run: SweepRun) -> None:
        with self.lock:
            self.running -= 1
            if run.ok:
                self.done += 1
            else:
                self.failed += 1
            self._clear()
            if not self.live:
                what = run.status
                if run.error is not None:
                    what += f": {run.error.message}"
                took = f"{run.duration or 0:.2f}s"
                self.stream.write(f"[{run.label}] {what} ({took}) — {self.status()}\n")
            self._draw()

    def finish(self) -> None:
        with self.lock:
            if isinstance(sys.stderr, _ConsoleStream) and sys.stderr.console is self:
                sys.stderr.close()
                sys.stderr = self._stderr
            self._clear()
            self.stream.flush()


class _ConsoleStream(io.TextIOBase):
    """``sys.stderr`` during a sweep: whole lines go through the console, each thread's
    partial line waits for its newline. Writes to the file descriptor itself bypass it."""

    def __init__(self, console: SweepConsole, real: IO[str]):
        self.console, self.real = console, real
        self._partial: dict[int, str] = {}

    def write(self, text: str) -> int:
        thread = threading.get_ident()
        lines, newline, rest = (self._partial.pop(thread, "") + text).rpartition("\n")
        if rest:
            self._partial[thread] = rest
        if newline:
            self.console.write_lines(lines)
        return len(text)

    def close(self) -> None:
        for rest in self._partial.values():
            self.console.write_lines(rest)
        self._partial.clear()
        super().close()

    def fileno(self) -> int:
        return self.real.fileno()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.real.encoding
