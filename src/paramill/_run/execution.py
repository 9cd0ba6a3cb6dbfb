"""The kernel and execute steps of a run: pick the engine, let the kernel source start a kernel
ahead, run the notebook on the engine, read the outcome, write the output."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from .. import secrets as secrets_mod
from .._registry import DEFAULT_ENGINE, is_default_engine, lookup
from ..engine import NBClientEngine
from ..errors import KernelError, OutputError, UnsupportedLanguageError
from ..kernel.source import KernelRequest, KernelSource
from ..signals import SignalGuard
from .options import RunOptions
from .output import OutputWriter
from .plan import RunPlan
from .prepare import notebook_kernel_name, rewrite_kernelspec, translator_for
from .result import RunResult, mark_result

if TYPE_CHECKING:
    from nbformat import NotebookNode

logger = logging.getLogger("paramill")


def get_engine(name: str | None) -> type:
    """The engine class named ``name`` (``nbclient`` or one of the ``paramill.engines``)."""
    if is_default_engine(name):
        return NBClientEngine
    return lookup("paramill.engines", name or "", "engine", {DEFAULT_ENGINE: NBClientEngine})


def launch_ahead(source: KernelSource, plan: RunPlan, text: str | None, opts: RunOptions) -> None:
    """Let the source start the kernel while the notebook is read, checked and parameterized
    (~0.5 s): only for the default engine, a notebook read as text, a run that will execute."""
    if text is None or opts.prepare_only or opts.strict or get_engine(opts.engine_name) is not (
        NBClientEngine
    ):
        return
    if opts.cancel is not None and opts.cancel.cancelled:
        return
    try:
        name = opts.kernel_name or json.loads(text)["metadata"]["kernelspec"]["name"]
    except (ValueError, KeyError, TypeError):
        return  # the normal path reports it
    if isinstance(name, str) and name:
        source.prepare(_request(name, plan, opts))


def _request(kernel_name: str, plan: RunPlan, opts: RunOptions) -> KernelRequest:
    return KernelRequest(
        kernel_name,
        language=opts.language,
        cwd=plan.cwd,
        env=plan.kernel_env,
        startup_timeout=opts.timeouts.start,
    )


def execute(
    nb: NotebookNode,
    result: RunResult,
    *,
    plan: RunPlan,
    opts: RunOptions,
    source: KernelSource,
    guard: SignalGuard,
    writer: OutputWriter,
) -> None:
    """Run the notebook on its kernel; the outcome goes into ``result``, the notebook to the
    output (also when the run is interrupted from outside: then the exception goes on)."""
    kernel = notebook_kernel_name(nb, opts.kernel_name)
    if opts.kernel_name:
        rewrite_kernelspec(nb, kernel)
    result.kernel_name = kernel
    engine = _engine(nb, kernel, plan, opts, source, guard, writer)
    started = time.monotonic()
    with guard, secrets_mod.redacted_logs(plan.hidden_values):
        try:
            error = engine.execute(nb)
        except BaseException as exc:  # e.g. a scheduler's own SIGTERM exception
            writer.save_interrupted(nb, exc)
            raise
    secrets_mod.scrub_notebook(nb, plan.hidden_values)  # before errors are read from it
    allow_errors = bool(opts.engine_kwargs.get("allow_errors"))
    nb = mark_result(
        result, nb, error, started=started, allow_errors=allow_errors, strict=opts.strict
    )
    try:
        writer.save_final(nb)
    except OutputError as exc:
        if result.error is None:
            result.error, result.status = exc, type(result.status)(exc.status)
        else:
            logger.error("The output notebook could not be written: %s", exc.evalue)


def _engine(
    nb: NotebookNode,
    kernel: str,
    plan: RunPlan,
    opts: RunOptions,
    source: KernelSource,
    guard: SignalGuard,
    writer: OutputWriter,
) -> Any:
    engine_cls = get_engine(opts.engine_name)
    kwargs: dict[str, Any] = dict(opts.engine_kwargs)
    try:
        translator = translator_for(nb, kernel, opts.language)
        failure_check, setup_code = translator.find_failure, translator.kernel_setup()
    except (UnsupportedLanguageError, KernelError):
        failure_check, setup_code = None, ""
    if setup_code:  # only then: engines from entry points need not know the argument
        kwargs["setup_code"] = setup_code
    if plan.kernel_env:
        kwargs["kernel_env"] = plan.kernel_env
    if opts.timeouts.liveness is not None:
        kwargs["kernel_liveness_timeout"] = opts.timeouts.liveness
    own = issubclass(engine_cls, NBClientEngine)
    for name, value in (("kernel_source", source), ("signals", guard)):
        if own or opts.kernel_source is not None and name == "kernel_source":
            kwargs[name] = value
    for name in ("events", "cancel"):
        if getattr(opts, name) is not None:
            kwargs[name] = getattr(opts, name)
    return engine_cls(
        kernel_name=kernel,
        saver=writer.autosaver(opts.request_save_on_cell_execute, opts.autosave_cell_every),
        cwd=plan.cwd,
        start_timeout=opts.timeouts.start,
        execution_timeout=opts.timeouts.cell,
        run_timeout=opts.timeouts.run,
        log_output=opts.log_output,
        stdout_file=writer.stream(opts.stdout_file),
        stderr_file=writer.stream(opts.stderr_file),
        progress_bar=opts.progress_bar,
        handle_signals=opts.handle_signals,
        autosave_outputs=bool(opts.autosave_cell_every),
        failure_check=failure_check,
        **kwargs,
    )
