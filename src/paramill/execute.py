"""The one path every run takes: read, parameterize, execute, mark failures, write.

``run`` returns a RunResult and never raises for a failed notebook; ``execute_notebook`` is
papermill's API on top of it (returns the notebook, raises the run's error).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import logging
import os
import signal
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from . import notebook as nbops
from . import storage, textnb
from ._registry import is_default_engine
from .errors import (
    ExecutionError,
    InputError,
    KernelError,
    MissingParameterError,
    OutputError,
    ParameterError,
    RunCancelledError,
    StorageError,
    UnsupportedLanguageError,
)
from .parameters import Translator, check_parameters, get_translator, json_safe, resolve

if TYPE_CHECKING:
    from nbformat import NotebookNode

logger = logging.getLogger("paramill")

PathLike = str | os.PathLike


@dataclass
class RunResult:
    """What a run produced: its status, the executed notebook and, on failure, the error."""

    status: str  # completed | failed | timeout | kernel-died | cancelled | output-error | prepared
    notebook: NotebookNode
    input_path: str | None
    output_path: str | None
    parameters: dict[str, Any]
    kernel_name: str | None = None
    error: ExecutionError | None = None
    start_time: str | None = None
    end_time: str | None = None
    duration: float | None = None
    cell_durations: list[float | None] = field(default_factory=list)
    #: values the notebook stored with ``paramill.record`` (see paramill.records)
    records: dict[str, Any] = field(default_factory=dict)
    html_output: str | None = None

    def __post_init__(self) -> None:
        # locations as shown and stored (run record, logs): URLs without credentials
        self.input_path = storage.display_url(self.input_path)
        self.output_path = storage.display_url(self.output_path)
        self.html_output = storage.display_url(self.html_output)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_record(self) -> dict[str, Any]:
        """The run record (``--run-record``): a JSON-able summary, secrets redacted."""
        from .records import run_record

        return run_record(self)

    def raise_for_error(self) -> None:
        if self.error is not None:
            raise self.error


class _Builtins(dict):
    """papermill's ``pm`` values: made by paramill, so they may hold any path text."""


def path_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """papermill's ``pm`` builtins for path templates, overridable by user parameters."""
    builtins: dict[str, Any] = {
        "pm": _Builtins(
            run_uuid=str(uuid.uuid4()),
            current_datetime_local=datetime.datetime.now(),
            current_datetime_utc=datetime.datetime.now(datetime.timezone.utc),
        )
    }
    builtins.update(parameters or {})
    return builtins


def template_path(
    path: Any, parameters: Mapping[str, Any], *, allow_path_values: bool = False
) -> Any:
    """Fill ``{name}`` fields of a path from parameters.

    A name that is not a parameter is an error; a path whose braces are not a valid template
    (a real ``{`` in a file name) is used as it is. A filled value stays one name in the
    template's folder (see ``check_path_values``) unless ``allow_path_values``.
    """
    if not isinstance(path, str) or "{" not in path or is_notebook_text(path):
        return path
    try:
        filled = path.format(**parameters)
    except KeyError as exc:
        raise MissingParameterError(
            f"path {storage.display_url(path)!r} uses {{{exc.args[0]}}}, which is not a parameter"
        ) from None
    except (ValueError, IndexError, AttributeError, TypeError):
        return path
    if not allow_path_values:
        check_path_values(path, parameters)
    return filled


_SEPARATORS = {"/", "\\", os.sep, os.altsep or "/"}


def check_path_values(template: str, parameters: Mapping[str, Any]) -> None:
    """Refuse a parameter value that would move a templated path out of its place: a value may
    not contain a path separator or ``..``, nor make (with its neighbours) a ``.``, ``..`` or
    empty path component, an absolute path or a URL scheme. paramill's own ``pm`` values may."""
    import re
    import string

    formatter = string.Formatter()
    pieces: list[tuple[str, str | None]] = []  # the filled path: (text, parameter it came from)
    for literal, key, spec, conversion in formatter.parse(template):
        pieces.append((literal, None))
        if key is None:
            continue
        value = formatter.convert_field(formatter.get_field(key, (), parameters)[0], conversion)
        text = formatter.format_field(value, formatter.vformat(spec or "", (), parameters))
        name = re.match(r"[^.\[]*", key)[0]  # type: ignore[index]
        if name == "pm" and isinstance(parameters.get("pm"), _Builtins):
            pieces.append((text, None))
            continue
        if ".." in text or any(sep in text for sep in _SEPARATORS):
            _refuse_path_value(template, {name}, text)
        pieces.append((text, name))
    components: list[tuple[str, set[str]]] = [("", set())]
    for text, name in pieces:
        parts = [text] if name else re.split("|".join(map(re.escape, _SEPARATORS)), text)
        last, names = components.pop()
        components.append((last + parts[0], names | ({name} if name else set())))
        components.extend((part, set()) for part in parts[1:])
    for text, names in components:
        if names and text in ("", ".", ".."):
            _refuse_path_value(template, names, text)
    skeleton = "".join(text if name is None else "x" for text, name in pieces)
    filled = "".join(text for text, _ in pieces)
    if storage.protocol_of(filled) != storage.protocol_of(skeleton):
        _refuse_path_value(template, {n for _, n in pieces if n}, filled)


def _refuse_path_value(template: str, names: set[str], text: str) -> None:
    named = " and ".join(f"parameter {n!r}" for n in sorted(names))
    raise ParameterError(
        f"{named} in the path {storage.display_url(template)!r} gives "
        f"{storage.display_url(text)[:80]!r}: a value filled into a path may not contain '/', "
        "'\\', '..' or a URL scheme, nor make an empty, '.' or '..' path part "
        "(--allow-path-values allows it)"
    )


def has_fields(path: Any) -> bool:
    """Whether ``path`` is a template (has ``{name}`` fields)."""
    import string

    if not isinstance(path, str) or "{" not in path or is_notebook_text(path):
        return False
    try:
        return any(key is not None for _, key, _, _ in string.Formatter().parse(path))
    except ValueError:
        return False


def refuse_overwriting_input(input_path: Any, path: Any, what: str) -> None:
    """A path a run writes may never be its input notebook (``what`` names the path)."""
    if storage.same_location(input_path, path):
        raise ParameterError(
            f"{what} {storage.display_url(path)!r} is the input notebook, which a run never "
            "overwrites"
        )


def is_notebook_text(path: Any) -> bool:
    return isinstance(path, str) and path.lstrip().startswith("{") and '"cells"' in path


def read_notebook_source(path: Any, storage_options: dict[str, Any] | None = None) -> NotebookNode:
    """A fresh notebook from a path/URL, ``-``, notebook JSON text, or a NotebookNode (copied)."""
    if isinstance(path, Mapping):
        return nbops.loads(nbops.dumps(path), "notebook object")
    if is_notebook_text(path):
        return nbops.loads(path, "notebook text")
    path = os.fspath(path)
    text = storage.read_text(path, storage_options)
    if textnb.is_text_notebook(path):
        return textnb.reads(text, path)
    return nbops.loads(text, storage.display_url(path))


def write_notebook(
    nb: NotebookNode, path: str, storage_options: dict[str, Any] | None = None
) -> None:
    text = textnb.writes(nb, path) if textnb.is_text_notebook(path) else nbops.dumps(nb)
    storage.write_text(path, text, storage_options)


def notebook_kernel_name(nb: NotebookNode, override: str | None = None) -> str:
    name = override or nb.metadata.get("kernelspec", {}).get("name")
    if not name:
        raise KernelError(
            "the notebook names no kernel (metadata.kernelspec.name is missing); pass -k KERNEL"
        )
    return name


def notebook_language(nb: NotebookNode, override: str | None = None) -> str:
    language = (
        override
        or nb.metadata.get("language_info", {}).get("name")
        or nb.metadata.get("kernelspec", {}).get("language")
    )
    if not language:
        raise KernelError(
            "the notebook names no language (metadata.language_info.name and "
            "kernelspec.language are missing); pass -l LANGUAGE"
        )
    return language


def _rewrite_kernelspec(nb: NotebookNode, kernel_name: str) -> None:
    """With -k, the output names the kernel it actually ran on (papermill #856)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from .kernels import no_such_kernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        raise no_such_kernel(kernel_name) from None
    nb.metadata["kernelspec"] = {
        "name": kernel_name,
        "display_name": spec.display_name,
        "language": spec.language,
    }


def get_engine(name: str | None) -> type:
    from .engine import NBClientEngine

    if is_default_engine(name):
        return NBClientEngine
    from importlib.metadata import entry_points

    for ep in entry_points(group="paramill.engines"):
        if ep.name == name:
            return ep.load()
    known = sorted({"nbclient", *(ep.name for ep in entry_points(group="paramill.engines"))})
    raise InputError(f"no engine named {name!r} (known: {', '.join(known)})")


def translator_for(nb: NotebookNode, kernel_name: str | None, language: str | None) -> Translator:
    """The translator for the kernel (-k or kernelspec.name), else the notebook's language."""
    return get_translator(
        kernel_name or nb.metadata.get("kernelspec", {}).get("name"),
        notebook_language(nb, language),
    )


def parameterize(
    nb: NotebookNode,
    parameters: Mapping[str, Any],
    *,
    kernel_name: str | None = None,
    language: str | None = None,
    strict: bool = False,
    report_mode: bool = False,
    comment: str = "Parameters",
    secrets: Mapping[str, str] | None = None,
) -> NotebookNode:
    """Check ``parameters`` against the notebook's declarations and inject them (no kernel).

    ``secrets`` are bound from the kernel's environment; only their names reach the notebook.
    """
    from .secrets import redacted, secret_source

    translator = translator_for(nb, kernel_name, language)
    try:
        declared = declared_parameters(nb, language=language, translator=translator)
    except NotImplementedError:
        declared = None
    hidden = redacted(secrets or {})
    check_parameters(declared, {**parameters, **hidden}, strict=strict)
    source = translator.codify(parameters, comment) + secret_source(translator, list(hidden))
    stamped = {**json_safe(dict(parameters)), **hidden}
    return nbops.inject_parameters(nb, source, stamped, report_mode)


def run(
    input_path: Any,
    output_path: Any = None,
    parameters: Mapping[str, Any] | None = None,
    *,
    parameters_file: PathLike | list[PathLike] | None = None,
    parameters_yaml: str | list[str] | None = None,
    engine_name: str | None = None,
    request_save_on_cell_execute: bool = True,
    autosave_cell_every: float = 30,
    prepare_only: bool = False,
    kernel_name: str | None = None,
    language: str | None = None,
    progress_bar: bool | dict = False,
    log_output: bool = False,
    stdout_file: IO[str] | None = None,
    stderr_file: IO[str] | None = None,
    start_timeout: float = 60,
    execution_timeout: float | None = None,
    run_timeout: float | None = None,
    report_mode: bool = False,
    cwd: PathLike | None = None,
    strict: bool = False,
    storage_options: dict[str, Any] | None = None,
    handle_signals: bool = True,
    html_output: PathLike | None = None,
    secrets: Mapping[str, str] | None = None,
    allow_short_secrets: bool = False,
    deterministic: bool = False,
    allow_path_values: bool = False,
    warm: bool | None = None,
    **engine_kwargs: Any,
) -> RunResult:
    """Run a notebook end to end and report what happened (see ``execute_notebook``).

    ``html_output`` also writes an HTML report (needs ``paramill[report]``); ``secrets`` are
    values the notebook gets as variables that are never written anywhere (at least 6
    characters unless ``allow_short_secrets``); ``deterministic`` leaves timestamps and
    durations out of the output notebook. ``allow_path_values`` lets parameter values filled
    into path templates hold folders (``/``, ``..``) and URL schemes. ``warm``: a python
    kernel forked from the user's warm server (``paramill.warm``; None: ``PARAMILL_WARM``).
    """
    from . import secrets as secrets_mod
    from .warm import enabled as warm_enabled

    warm = warm_enabled(warm) and "kernel_starter" not in engine_kwargs

    input_path = os.fspath(input_path) if isinstance(input_path, os.PathLike) else input_path
    output_path = os.fspath(output_path) if isinstance(output_path, os.PathLike) else output_path
    files = (
        [parameters_file] if isinstance(parameters_file, (str, os.PathLike)) else parameters_file
    )
    yamls = [parameters_yaml] if isinstance(parameters_yaml, str) else parameters_yaml
    params = resolve(
        parameters=parameters,
        files=files or (),
        yamls=yamls or (),
        storage_options=storage_options,
    )
    path_params = path_parameters(params)
    in_place = not (has_fields(input_path) or has_fields(output_path))  # papermill's in-place run
    input_path = template_path(input_path, path_params, allow_path_values=allow_path_values)
    output_path = template_path(output_path, path_params, allow_path_values=allow_path_values)
    if not in_place:
        refuse_overwriting_input(input_path, output_path, "the output")
    secrets = secrets_mod.check_secrets(secrets or {}, params, allow_short_secrets)
    hidden_values = list(secrets.values())
    if html_output is not None:
        from .report import require_nbconvert

        html_output = template_path(
            os.fspath(html_output), path_params, allow_path_values=allow_path_values
        )
        refuse_overwriting_input(input_path, html_output, "the HTML report")
        require_nbconvert()

    def pretty(path: Any) -> str:
        if path is None:
            return "Notebook will not be saved"
        if isinstance(path, Mapping):
            return "NotebookNode object"
        return str(storage.display_url(path))[:200]

    logger.info("Input Notebook:  %s", pretty(input_path))
    logger.info("Output Notebook: %s", pretty(output_path))
    if cwd is not None:
        cwd = os.fspath(cwd)
        if not os.path.isdir(cwd):
            raise InputError(f"--cwd {cwd}: no such directory")
        logger.info("Working directory: %s", cwd)

    # The kernel boots (~0.5 s) while the notebook is parsed, checked and parameterized.
    text = None
    if (
        isinstance(input_path, str)
        and not is_notebook_text(input_path)
        and not textnb.is_text_notebook(input_path)
    ):
        text = storage.read_text(input_path, storage_options)
    early, deliver = None, None
    outer_hold = contextlib.nullcontext()
    writers: list[Any] = []  # scrubbing stdout/stderr files: what they hold goes out at the end
    try:
        if (
            text is not None
            and not (prepare_only or strict)
            and get_engine(engine_name) is _default_engine()
        ):
            from .engine import hold_signals

            # from here on a kernel exists: a signal is held, and the engine stops the run for it
            outer_hold = hold_signals(handle_signals)
            outer_hold.__enter__()
            early = _EarlyKernel.launch(
                text,
                kernel_name,
                cwd=cwd,
                env={**(engine_kwargs.get("kernel_env") or {}), **secrets_mod.kernel_env(secrets)},
                engine_kwargs=engine_kwargs,
                warm=warm,
            )
        import nbformat

        nb = (
            nbops.loads(text, storage.display_url(input_path))
            if text is not None
            else read_notebook_source(input_path, storage_options)
        )
        nb = nbops.add_placeholders(nb)
        if params or secrets:
            nb = parameterize(
                nb,
                params,
                kernel_name=kernel_name,
                language=language,
                strict=strict,
                report_mode=report_mode,
                secrets=secrets,
            )
        nb.metadata.papermill["input_path"] = (
            storage.display_url(input_path) if isinstance(input_path, str) else None
        )
        nb.metadata.papermill["output_path"] = storage.display_url(output_path)
        if report_mode:
            nb = nbops.apply_report_mode(nb)
        nb = nbops.remove_error_markers(nb)

        def for_storage(nb: NotebookNode) -> NotebookNode:
            # every write goes through here: secret values scrubbed, timings dropped. Outputs are
            # scrubbed in place; sources only in the written copy, as cells yet to run need theirs.
            if hidden_values:
                secrets_mod.scrub_notebook(nb, hidden_values, sources=False)
                nb = secrets_mod.scrub_notebook(copy.deepcopy(nb), hidden_values)
            return nbops.without_volatile(nb) if deterministic else nb

        def save_final(nb: NotebookNode) -> None:
            try:
                if output_path is not None:
                    write_notebook(for_storage(nb), output_path, storage_options)
                if html_output is not None and not prepare_only:
                    from .report import write_html

                    write_html(
                        for_storage(nb),
                        html_output,
                        report_mode=report_mode,
                        storage_options=storage_options,
                    )
            except StorageError as exc:
                raise OutputError(ename="OutputError", evalue=exc.message) from exc

        result = RunResult(
            status="prepared",
            notebook=nb,
            input_path=input_path if isinstance(input_path, str) else None,
            output_path=output_path,
            parameters={**params, **secrets_mod.redacted(secrets)},
            html_output=html_output,
        )
        if prepare_only:
            save_final(nb)
            result.notebook = nbformat.from_dict(nb)
            return result

        from .engine import Autosaver, hold_signals

        kernel = notebook_kernel_name(nb, kernel_name)
        if kernel_name:
            _rewrite_kernelspec(nb, kernel)
        result.kernel_name = kernel
        remote = output_path is not None and not storage.is_local(output_path)
        can_autosave = request_save_on_cell_execute and output_path not in (None, "-")
        interval = max(1.0, float(autosave_cell_every or 0)) if remote else 1.0
        saver = Autosaver(
            (lambda nb: write_notebook(for_storage(nb), output_path, storage_options))
            if can_autosave
            else None,
            interval,
        )
        try:
            translator = translator_for(nb, kernel, language)
            failure_check, setup_code = translator.find_failure, translator.kernel_setup()
        except (UnsupportedLanguageError, KernelError):
            failure_check, setup_code = None, ""
        if setup_code:  # only then: engines from entry points need not know the argument
            engine_kwargs["setup_code"] = setup_code
        if secrets:  # the values travel in the kernel's environment, never in the notebook
            engine_kwargs["kernel_env"] = {
                **(engine_kwargs.get("kernel_env") or {}),
                **secrets_mod.kernel_env(secrets),
            }
            if stdout_file is not None:
                stdout_file = secrets_mod.ScrubbingWriter(stdout_file, hidden_values)
                writers.append(stdout_file)
            if stderr_file is not None:
                stderr_file = secrets_mod.ScrubbingWriter(stderr_file, hidden_values)
                writers.append(stderr_file)
        if warm and early is None:
            from functools import partial

            from .kernels import start_kernel
            from .warm import notebook_imports, provisioner_stanza

            stanza = provisioner_stanza(notebook_imports(nb))
            engine_kwargs["kernel_starter"] = partial(start_kernel, provisioner=stanza)
        engine_cls = get_engine(engine_name)
        engine_kwargs.pop("input_path", None)
        # papermill: nbclient's `timeout` applies when execution_timeout is not given
        cell_timeout = execution_timeout or engine_kwargs.pop("timeout", None)
        engine = engine_cls(
            kernel_name=kernel,
            saver=saver,
            cwd=cwd,
            start_timeout=start_timeout,
            execution_timeout=cell_timeout,
            run_timeout=run_timeout,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
            progress_bar=progress_bar,
            handle_signals=handle_signals,
            autosave_outputs=bool(autosave_cell_every),
            failure_check=failure_check,
            **engine_kwargs,
        )
        started = time.monotonic()
        # SIGINT/SIGTERM after the engine's own handling (a repeated Ctrl-C, a scheduler's second
        # TERM) must not kill the process before the output is written: held until then
        with hold_signals(handle_signals) as held:
            with secrets_mod.redacted_logs(hidden_values):
                try:
                    error = engine.execute(nb)
                except BaseException as exc:  # e.g. a scheduler's own SIGTERM exception
                    _save_interrupted(nb, exc, save_final)
                    raise
            secrets_mod.scrub_notebook(nb, hidden_values)  # before errors are read from it
            if error is None and not engine_kwargs.get("allow_errors"):
                error = nbops.find_execution_error(nb, fail_on_allowed=strict)
            if error is not None:
                nb = nbops.add_error_markers(nb, error)
                result.status = error.status
            else:
                result.status = "completed"
            result.notebook = nb = nbformat.from_dict(nb)  # attribute access all the way down
            result.error = error
            meta = nb.metadata.papermill
            result.start_time = meta.get("start_time")
            result.end_time = meta.get("end_time")
            result.duration = round(time.monotonic() - started, 6)
            result.cell_durations = [
                c.metadata.get("papermill", {}).get("duration") for c in nb.cells
            ]
            from .records import decoded_records

            result.records = decoded_records(nb)
            try:
                save_final(nb)
            except OutputError as exc:
                if result.error is None:
                    result.error, result.status = exc, exc.status
                else:
                    logger.error("The output notebook could not be written: %s", exc.evalue)
        if held and not isinstance(result.error, RunCancelledError):
            deliver = held[0]  # arrived after the run finished: delivered below
        return result
    finally:
        for writer in writers:
            with contextlib.suppress(OSError, ValueError):  # a closed file: nothing to add
                writer.close()
        if early is not None:
            early.discard()
        outer_hold.__exit__(None, None, None)
        if deliver is not None:
            signal.raise_signal(deliver)


def _default_engine() -> type:
    from .engine import NBClientEngine

    return NBClientEngine


class _EarlyKernel:
    """A kernel launched before the notebook is prepared, handed to the engine when it asks for
    the same kernel, cwd and environment; stopped if the run ends before that."""

    def __init__(self, km: Any, kernel_name: str, cwd: str | None, env: dict) -> None:
        self.km, self.kernel_name, self.cwd, self.env = km, kernel_name, cwd, env
        self.provisioner: dict | None = None

    @classmethod
    def launch(
        cls,
        text: str,
        kernel_name: str | None,
        *,
        cwd: Any,
        env: dict,
        engine_kwargs: dict,
        warm: bool = False,
    ) -> _EarlyKernel | None:
        if "kernel_starter" in engine_kwargs:  # a pool or fork server provides kernels
            return None
        try:
            import json

            from .kernels import installed_kernels, launch_kernel

            data = json.loads(text)
            name = kernel_name or data["metadata"]["kernelspec"]["name"]
            if not isinstance(name, str) or not name or name not in installed_kernels():
                return None
            from jupyter_core.utils import run_sync

            provisioner = None
            if warm:  # a fork of the user's warm server, with the notebook's imports
                from .warm import notebook_imports, provisioner_stanza

                provisioner = provisioner_stanza(notebook_imports(data))
            km = run_sync(launch_kernel)(name, cwd=cwd, env=env or None, provisioner=provisioner)
        except Exception:  # no kernel name, not installed, ...: the normal path reports it
            return None
        early = cls(km, name, cwd, env or {})
        early.provisioner = provisioner
        engine_kwargs["kernel_starter"] = early.take
        return early

    async def take(self, kernel_name: str, *, cwd: Any, startup_timeout: float, env: Any) -> Any:
        from .kernels import connect_kernel, start_kernel

        km, self.km = self.km, None
        if km is None or (kernel_name, cwd, env or {}) != (self.kernel_name, self.cwd, self.env):
            if km is not None:
                from .kernels import stop_kernel

                await stop_kernel(km, None, grace=0)
            return await start_kernel(
                kernel_name,
                cwd=cwd,
                startup_timeout=startup_timeout,
                env=env,
                provisioner=self.provisioner,
            )
        return km, await connect_kernel(km, startup_timeout)

    def discard(self) -> None:
        km, self.km = self.km, None
        if km is not None:
            from jupyter_core.utils import run_sync

            from .kernels import stop_kernel

            run_sync(stop_kernel)(km, None, grace=0)


def _save_interrupted(nb: NotebookNode, exc: BaseException, save: Any) -> None:
    """Something outside paramill stopped the run (the engine has killed the kernel): keep the
    partial output, marked cancelled, before the exception goes on."""
    running = [
        i
        for i, c in enumerate(nb.cells)
        if c.metadata.get("papermill", {}).get("status") == "running"
    ]
    index = running[0] if running else None
    if index is not None:
        nb.cells[index].metadata.papermill.update(status="failed", exception=True)
    error = RunCancelledError(
        cell_index=index,
        exec_count=nb.cells[index].get("execution_count") if index is not None else None,
        ename=type(exc).__name__,
        evalue=f"stopped by {type(exc).__name__}: {exc}".rstrip(": "),
    )
    try:
        save(nbops.add_error_markers(nb, error))
    except Exception:
        logger.exception("The partial output could not be saved")


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


def declared_parameters(
    nb: NotebookNode,
    *,
    kernel_name: str | None = None,
    language: str | None = None,
    translator: Translator | None = None,
) -> list | None:
    """Declared parameters, or None when there is no parameters cell.

    When the language has no introspection, logs papermill's warning (naming the notebook's
    language, as papermill does) and raises NotImplementedError.
    """
    index = nbops.find_tagged(nb, nbops.PARAMETERS_TAG)
    if index is None:
        return None
    translator = translator or translator_for(nb, kernel_name, language)
    try:
        return translator.inspect(nb.cells[index].source)
    except NotImplementedError:
        logger.warning(
            "Translator for '%s' language does not support parameter introspection.",
            notebook_language(nb, language),
        )
        raise
