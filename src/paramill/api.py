"""paramill's API: ``run`` (one run, top to bottom, as named steps; returns a RunResult and
never raises for a failed notebook), ``execute_notebook`` (papermill's API on top of it:
returns the notebook, raises the run's error) and ``inspect_notebook``.

A run: plan (parameters, paths, secrets) -> kernel started ahead by its source -> notebook
read and prepared -> executed on the engine -> result marked -> output written.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from . import notebook as nbops
from . import storage, textnb
from ._run.execution import execute, launch_ahead
from ._run.options import PathLike, RunOptions, Timeouts
from ._run.output import OutputWriter
from ._run.paths import path_parameters, template_path
from ._run.plan import RunPlan, plan_run
from ._run.prepare import declared_parameters, prepare_notebook
from ._run.result import RunResult, RunStatus
from .errors import RunCancelledError
from .kernel.local import LocalKernelSource
from .nbio import is_notebook_text, read_notebook_source
from .secrets import redacted
from .signals import SignalGuard

if TYPE_CHECKING:
    from nbformat import NotebookNode

logger = logging.getLogger("paramill")

__all__ = [
    "RunOptions",
    "RunResult",
    "RunStatus",
    "Timeouts",
    "execute_notebook",
    "inspect_notebook",
    "run",
]


def run(
    input_path: Any,
    output_path: Any = None,
    parameters: Mapping[str, Any] | None = None,
    *,
    options: RunOptions | None = None,
    **kwargs: Any,
) -> RunResult:
    """Run a notebook end to end and report what happened (see ``execute_notebook``).

    Options come as a ``RunOptions`` or as keyword arguments (``execute_notebook``'s, plus
    ``run_timeout``, ``strict``, ``html_output`` (needs ``paramill[report]``), ``secrets``
    (values the notebook gets as variables that are never written anywhere), ``deterministic``
    (no timestamps or durations in the output), ``allow_path_values``, ``kernel_source`` (where
    the kernel comes from: a KernelPool, a ConnectionSource, ...), ``events`` and ``cancel``
    (a CancelToken)); unknown keyword arguments go to the engine.
    """
    opts = _options(options, kwargs)
    plan = plan_run(input_path, output_path, parameters, opts)
    text = _read_ahead(plan.input_path, opts)
    writer = OutputWriter(
        plan.output_path,
        html_output=plan.html_output,
        storage_options=opts.storage_options,
        hidden_values=plan.hidden_values,
        deterministic=opts.deterministic,
        report_mode=opts.report_mode,
    )
    source = opts.kernel_source or _default_source(opts, text)
    with contextlib.ExitStack() as cleanup:
        # from the kernel's launch on, a signal is held; the engine stops the run for it
        guard = cleanup.enter_context(SignalGuard(opts.handle_signals))
        cleanup.callback(writer.close)
        if opts.kernel_source is None or getattr(source, "close_after_run", False):
            cleanup.callback(source.close)  # a kernel started ahead that no run took
        launch_ahead(source, plan, text, opts)
        nb = _prepare(plan, text, opts)
        result = _new_result(plan, nb)
        if opts.prepare_only:
            return _prepared(result, nb, writer)
        execute(nb, result, plan=plan, opts=opts, source=source, guard=guard, writer=writer)
    if guard.held and not isinstance(result.error, RunCancelledError):
        guard.deliver()  # arrived after the run finished
    return result


def _default_source(opts: RunOptions, text: str | None) -> Any:
    """A fresh local kernel; with ``warm``, one forked from the user's warm server."""
    from .warm import enabled

    if not enabled(opts.warm):
        return LocalKernelSource()
    from .kernel.warm import WarmSource

    return WarmSource.for_notebook(text)


def _options(options: RunOptions | None, kwargs: dict[str, Any]) -> RunOptions:
    if options is None:
        return RunOptions.from_kwargs(**kwargs)
    return options.replace(**kwargs) if kwargs else options


def _read_ahead(input_path: Any, opts: RunOptions) -> str | None:
    """The input's text, read before nbformat is even imported (so the kernel can boot
    meanwhile); None for inputs read otherwise (notebook objects or text, text notebooks)."""
    if (
        isinstance(input_path, str)
        and not is_notebook_text(input_path)
        and not textnb.is_text_notebook(input_path)
    ):
        return storage.read_text(input_path, opts.storage_options)
    return None


def _prepare(plan: RunPlan, text: str | None, opts: RunOptions) -> NotebookNode:
    if text is not None:
        nb = nbops.loads(text, storage.display_url(plan.input_path))
    else:
        nb = read_notebook_source(plan.input_path, opts.storage_options)
    return prepare_notebook(
        nb,
        plan.parameters,
        input_path=plan.input_path,
        output_path=plan.output_path,
        kernel_name=opts.kernel_name,
        language=opts.language,
        strict=opts.strict,
        report_mode=opts.report_mode,
        secrets=plan.secrets,
    )


def _new_result(plan: RunPlan, nb: NotebookNode) -> RunResult:
    return RunResult(
        status=RunStatus.PREPARED,
        notebook=nb,
        input_path=plan.input_path if isinstance(plan.input_path, str) else None,
        output_path=plan.output_path,
        parameters={**plan.parameters, **redacted(plan.secrets)},
        html_output=plan.html_output,
    )


def _prepared(result: RunResult, nb: NotebookNode, writer: OutputWriter) -> RunResult:
    """``prepare_only``: the parameterized notebook is the output."""
    import nbformat

    writer.save_final(nb, html=False)
    result.notebook = nbformat.from_dict(nb)
    return result


def execute_notebook(
    input_path: Any,
    output_path: Any = None,
    parameters: Mapping[str, Any] | None = None,
    engine_name: str | None = None,
    request_save_on_cell_execute: bool = True,
    prepare_only: bool = False,
    kernel_name: str | None = None,
    language: str | None = None,
    progress_bar: bool | dict = True,
    log_output: bool = False,
    stdout_file: IO[str] | None = None,
    stderr_file: IO[str] | None = None,
    start_timeout: float = 60,
    report_mode: bool = False,
    cwd: PathLike | None = None,
    **kwargs: Any,
) -> NotebookNode:
    """Execute a notebook with parameters, papermill-style.

    Returns the executed notebook. If the run fails the output (with the error banner) is
    written first, then the error is raised: ExecutionError for a cell exception, or one of its
    subclasses for a timeout, a dead kernel, a cancelled run or an unwritable output.
    Beyond papermill: ``output_path`` may be None, ``parameters_file``/``parameters_yaml`` add
    parameter sources, ``run_timeout`` bounds the whole run, ``strict`` checks parameters.
    """
    if not isinstance(progress_bar, (bool, dict)):
        raise TypeError(
            "progress_bar must be instance of bool or dict, but actual type "
            f"'{type(progress_bar).__name__}'."
        )
    result = run(
        input_path,
        output_path,
        parameters,
        engine_name=engine_name,
        request_save_on_cell_execute=request_save_on_cell_execute,
        prepare_only=prepare_only,
        kernel_name=kernel_name,
        language=language,
        progress_bar=progress_bar,
        log_output=log_output,
        stdout_file=stdout_file,
        stderr_file=stderr_file,
        start_timeout=start_timeout,
        report_mode=report_mode,
        cwd=cwd,
        **kwargs,
    )
    result.raise_for_error()
    return result.notebook


def inspect_notebook(
    notebook_path: Any,
    parameters: Mapping[str, Any] | None = None,
    *,
    kernel_name: str | None = None,
    language: str | None = None,
    storage_options: dict[str, Any] | None = None,
    allow_path_values: bool = False,
) -> dict[str, dict[str, str]]:
    """Parameters declared by the notebook's ``parameters`` cell, papermill's format:
    name -> {name, inferred_type_name, default, help}. Empty when there is no such cell."""
    path = template_path(
        os.fspath(notebook_path) if isinstance(notebook_path, os.PathLike) else notebook_path,
        path_parameters(parameters),
        allow_path_values=allow_path_values,
    )
    nb = read_notebook_source(path, storage_options)
    try:
        declared = declared_parameters(nb, kernel_name=kernel_name, language=language)
    except NotImplementedError:
        return {}
    return {p.name: p.as_papermill() for p in declared or []}
