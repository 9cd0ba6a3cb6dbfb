"""``NotebookOperator``: one notebook run as one Airflow 3 task.

Arguments are papermill provider's (``input_nb``, ``output_nb``, ``parameters``, ``kernel_name``,
``language_name``, ``log_output``) plus paramill's run options. Timeouts, because BaseOperator
already owns ``execution_timeout`` (the whole task, a timedelta, enforced by Airflow):

=====================  ==================================  =================================
operator argument      paramill.run argument               papermill CLI flag
=====================  ==================================  =================================
``cell_timeout``       ``execution_timeout`` (per cell)    ``--execution-timeout``
``run_timeout``        ``run_timeout`` (whole notebook)    (none)
``start_timeout``      ``start_timeout`` (kernel start)    ``--start-timeout``
``execution_timeout``  ``run_timeout`` when that is unset  (none)
=====================  ==================================  =================================

Airflow enforces ``execution_timeout`` by raising inside the task, which would leave no output
notebook; so when ``run_timeout`` is not given, paramill gets a whole-run limit a little under
it (10%, at most 30 s less) and stops the kernel and writes the partial output itself first.

Templated parameters keep their types: the operator renders its templates natively (Airflow's
``render_template_as_native_obj``, on by default for this operator on Airflow >= 3.2), so
``"{{ params.flag }}"`` arrives as a bool and ``"{{ ds }}"`` stays the string ``"2019-11-07"``.
Strings without Jinja markers are left as they are, dates that a template returns as objects
become their ISO string (what string rendering gives), and the notebook paths are always
strings. Pass ``render_template_as_native_obj=False`` for papermill's all-strings behaviour.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import Asset, AssetAlias, BaseOperator

from paramill.api import run
from paramill.errors import InputError, ParameterError
from paramill.parameters import json_safe
from paramill.storage import display_url, is_url

if TYPE_CHECKING:
    from airflow.sdk import Context

_JINJA_MARKERS = ("{{", "{%")


def _supports_native_flag() -> bool:
    # Operator-level native rendering arrived in Airflow 3.2; before that only the Dag has it.
    return "render_template_as_native_obj" in inspect.signature(BaseOperator.__init__).parameters


def _plain(value: Any) -> Any:
    """A rendered parameter as a notebook should see it: dates as their string form."""
    if isinstance(value, (datetime.date, datetime.time)):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _is_templated(path: Any) -> bool:
    """True when the path is filled in at run time (Jinja, or paramill's ``{parameter}``)."""
    return isinstance(path, str) and "{" in path


@dataclasses.dataclass
class NoteBook:
    """A notebook as the papermill provider names one for ``input_nb``/``output_nb``: a
    ``url`` and, for an input, its ``parameters`` (the provider's ``NoteBook`` objects work
    too: anything with ``url`` and ``parameters``)."""

    url: str | None = None
    parameters: dict | None = dataclasses.field(default_factory=dict)
    type_hint: str | None = "jupyter_notebook"

    template_fields: ClassVar[tuple[str, ...]] = ("url", "parameters")


def _url(notebook: Any) -> Any:
    return getattr(notebook, "url", notebook)


def output_uri(path: str) -> str:
    """The Asset URI of an output location: URLs without credentials (user-info, a SAS query),
    local paths as file:// URIs."""
    if is_url(path):
        return display_url(path)
    return "file://" + os.path.abspath(path)


class NotebookOperator(BaseOperator):
    """Run a Jupyter notebook with parameters through paramill.

    :param input_nb: notebook to run (path or URL). Templated.
    :param output_nb: where the executed notebook goes (path or URL); may also use paramill's
        ``{parameter}`` fields. Templated. The partial notebook is written on failure too.
    :param parameters: values injected into the notebook. Templated, types kept (see module doc).
    :param parameters_file: YAML/JSON file(s) of parameters, merged under ``parameters``.
    :param kernel_name: kernel to use instead of the notebook's own. Templated.
    :param language_name: language of the parameters cell when the kernel does not say. Templated.
    :param log_output: stream cell output into the task log as it is produced.
    :param cwd: working directory of the kernel. Templated.
    :param cell_timeout: seconds one cell may run (papermill's ``--execution-timeout``).
    :param run_timeout: seconds the whole notebook may run.
    :param start_timeout: seconds to wait for the kernel to start.
    :param report_mode: hide input cells in the output notebook.
    :param strict: reject parameters the notebook does not declare, and allowed errors.
    :param html_output: also write an HTML report there (``paramill[report]``). Templated.
    :param warm: run on a kernel forked from the worker user's warm kernel server
        (``paramill --warm``; None: ``PARAMILL_WARM`` of the worker).
    :param run_options: further keyword arguments for ``paramill.run`` (``secrets``,
        ``deterministic``, ``storage_options``, ``engine_name``, ...).
    :param kernel_conn_id: run on an existing kernel: a ``jupyter_kernel`` connection (the
        papermill provider's type: host, ports and ``session_key`` in the extras). Templated.
    :param gateway_conn_id: run on a kernel started on a Jupyter gateway: a ``jupyter_gateway``
        connection (URL in host, token as password). Templated.
    :param nbconvert: after a successful run, convert the output notebook with
        ``jupyter nbconvert`` and ``nbconvert_args`` (default ``--to html``). Templated.

    ``input_nb``/``output_nb`` may be paths, URLs or ``NoteBook`` objects (``url`` and
    ``parameters``, the input's parameters merged over ``parameters``); they are checked when
    the task runs, not when the Dag is parsed (they may be templated or mapped), with the
    provider's messages. Defaults follow the provider's: ``report_mode=True``, no progress bar.

    Returns (XCom) ``{"output_nb", "uri", "status", "duration", "parameters", "records",
    "html_output"}``: ``records`` are the values the notebook stored with ``paramill.record``.

    Unless ``outlets`` is given, the output is declared as an Asset (a fixed path) or as an
    ``AssetAlias`` that each run fills in (a templated path). Mapped tasks
    (``.partial().expand()``) get no automatic outlet, since the Dag is serialized before the
    outputs are known: pass ``outlets=[AssetAlias(...)]`` to ``.partial()`` and every mapped
    run adds its output to it.
    """

    template_fields: Sequence[str] = (
        "input_nb",
        "output_nb",
        "parameters",
        "parameters_file",
        "kernel_name",
        "language_name",
        "cwd",
        "html_output",
        "kernel_conn_id",
        "gateway_conn_id",
        "nbconvert",
        "nbconvert_args",
    )
    template_fields_renderers = {"parameters": "py"}
    # a notebook path must never be read as a Jinja template file
    template_ext: Sequence[str] = ()
    ui_color = "#f7c873"

    def __init__(
        self,
        *,
        input_nb: str | NoteBook | None = None,
        output_nb: str | NoteBook | None = None,
        parameters: Mapping[str, Any] | str | None = None,
        parameters_file: str | list[str] | None = None,
        kernel_name: str | None = None,
        language_name: str | None = None,
        log_output: bool = True,
        cwd: str | None = None,
        cell_timeout: float | None = None,
        run_timeout: float | None = None,
        start_timeout: float = 60,
        report_mode: bool = True,
        strict: bool = False,
        html_output: str | None = None,
        run_options: Mapping[str, Any] | None = None,
        warm: bool | None = None,
        kernel_conn_id: str | None = None,
        gateway_conn_id: str | None = None,
        nbconvert: bool = False,
        nbconvert_args: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if _supports_native_flag():
            kwargs.setdefault("render_template_as_native_obj", True)
        from_mapped = getattr(self, "_BaseOperator__from_mapped", False)
        wants_auto_outlet = kwargs.get("outlets") is None and not from_mapped
        super().__init__(**kwargs)
        # checked in execute (the provider's messages): a mapped or templated path is only
        # known then
        self.input_nb = input_nb
        self.output_nb = output_nb
        # a dict, or anything that renders to one ("{{ dag_run.conf }}", an upstream XComArg)
        self.parameters = {} if parameters is None else parameters
        self.parameters_file = parameters_file
        self.kernel_name = kernel_name
        self.language_name = language_name
        self.log_output = log_output
        self.cwd = cwd
        self.cell_timeout = cell_timeout
        self.run_timeout = run_timeout
        self.start_timeout = start_timeout
        self.report_mode = report_mode
        self.strict = strict
        self.html_output = html_output
        self.run_options = dict(run_options or {})
        self.warm = warm
        self.kernel_conn_id = kernel_conn_id
        self.gateway_conn_id = gateway_conn_id
        self.nbconvert = nbconvert
        self.nbconvert_args = nbconvert_args
        out_url = _url(output_nb)
        if wants_auto_outlet and isinstance(out_url, str) and out_url and out_url != "-":
            self.outlets = [self._default_outlet(out_url)]

    def _default_outlet(self, output_nb: str) -> Asset | AssetAlias:
        if not _is_templated(output_nb):
            return Asset(output_uri(output_nb))
        owner = f"{self.dag_id}." if self.has_dag() else ""
        return AssetAlias(f"paramill:{owner}{self.task_id}")

    # -- templating --------------------------------------------------------------------------
    def render_template(
        self,
        content: Any,
        context: Context,
        jinja_env: Any = None,
        seen_oids: set[int] | None = None,
    ) -> Any:
        # Native rendering would literal_eval every string ("1" -> 1, "True" -> True); a value
        # with no Jinja in it is data, not a template, and stays exactly as written.
        if isinstance(content, str) and not any(m in content for m in _JINJA_MARKERS):
            return content
        return super().render_template(content, context, jinja_env, seen_oids)

    # -- running -----------------------------------------------------------------------------
    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``paramill.run`` from the fields."""
        parameters = self.parameters or {}
        nb_parameters = getattr(self.input_nb, "parameters", None)
        if nb_parameters and isinstance(parameters, Mapping):
            parameters = {**parameters, **nb_parameters}
        if not isinstance(parameters, Mapping):
            raise ParameterError(
                f"parameters rendered to a {type(parameters).__name__}, not a dict: "
                f"{str(parameters)[:200]!r}"
            )
        kwargs: dict[str, Any] = dict(self.run_options)
        kwargs.update(
            parameters=_plain(dict(parameters)),
            parameters_file=self.parameters_file or None,
            kernel_name=self.kernel_name or None,
            language=self.language_name or None,
            log_output=self.log_output,
            progress_bar=False,
            start_timeout=self.start_timeout,
            execution_timeout=self.cell_timeout,
            report_mode=self.report_mode,
            cwd=self.cwd or None,
            strict=self.strict,
            # Airflow owns the process's signals (SIGTERM on kill, SIGALRM for timeouts)
            handle_signals=False,
        )
        run_timeout = self.run_timeout or self._run_timeout_from_task_limit()
        if run_timeout:
            kwargs["run_timeout"] = run_timeout
        if self.warm is not None:
            kwargs["warm"] = self.warm
        if self.html_output:
            kwargs["html_output"] = str(self.html_output)
        if self.kernel_conn_id and self.gateway_conn_id:
            raise InputError("kernel_conn_id and gateway_conn_id cannot be used together")
        if self.kernel_conn_id:
            from .hooks import JupyterKernelHook

            hook = JupyterKernelHook(kernel_conn_id=self.kernel_conn_id)
            kwargs["connection_info"] = hook.get_conn().connection_info()
        if self.gateway_conn_id:
            from .hooks import JupyterGatewayHook

            kwargs["gateway"] = JupyterGatewayHook(gateway_conn_id=self.gateway_conn_id).get_conn()
        return kwargs

    def _run_timeout_from_task_limit(self) -> float | None:
        if not self.execution_timeout:
            return None
        limit = self.execution_timeout.total_seconds()
        return max(1.0, limit - min(30.0, limit * 0.1))

    def execute(self, context: Context) -> dict[str, Any]:
        # the papermill provider's checks and messages, at run time
        if not _url(self.input_nb):
            raise ValueError("Input notebook is not specified")
        if not _url(self.output_nb):
            raise ValueError("Output notebook is not specified")
        input_nb = str(_url(self.input_nb))
        output_nb = str(_url(self.output_nb))
        result = run(input_nb, output_nb, **self.run_kwargs())
        where = result.output_path or "(not saved)"
        if result.error is not None:
            error = result.error
            shown = result.input_path or "NotebookNode object"  # no credentials in the log
            self.log.error("Notebook %s %s: %s", shown, error.status, error.message)
            if error.cell_index is not None:
                self.log.error(
                    "Failing cell: index %s, ename %s, evalue %s",
                    error.cell_index,
                    error.ename,
                    error.evalue,
                )
            self.log.error("Partial output notebook: %s", where)
            raise error
        self.log.info("Notebook completed in %.1fs; output: %s", result.duration or 0, where)
        if self.nbconvert:
            self._convert(output_nb)
        summary: dict[str, Any] = {
            "output_nb": result.output_path,
            "uri": output_uri(result.output_path)
            if result.output_path not in (None, "-")
            else None,
            "status": result.status,
            "duration": result.duration,
            "parameters": json_safe(result.parameters),
            "records": json_safe(result.records),
            "html_output": json_safe(result.html_output),
        }
        self._announce_output(context, summary)
        return summary

    def _convert(self, output_nb: str) -> None:
        """``jupyter nbconvert`` on the output notebook (the provider's ``nbconvert``)."""
        from paramill.storage import is_local

        if output_nb == "-" or not is_local(output_nb):
            raise InputError(f"nbconvert needs a local output notebook, not {output_nb!r}")
        args = [str(a) for a in (self.nbconvert_args or ["--to", "html"])]
        command = [sys.executable, "-m", "nbconvert", *args, output_nb]
        self.log.info("Converting the output: jupyter nbconvert %s", " ".join(args))
        done = subprocess.run(command, capture_output=True, text=True)
        if done.stdout.strip():
            self.log.info("%s", done.stdout.strip())
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise InputError(f"nbconvert {' '.join(args)} failed: {last}")

    def _announce_output(self, context: Context, summary: dict[str, Any]) -> None:
        """Attach this run's output to the task's Asset outlets (aliases get the concrete file)."""
        uri = summary["uri"]
        if uri is None:
            return
        extra = {"status": summary["status"], "parameters": summary["parameters"]}
        events = context["outlet_events"]
        for outlet in self.outlets or []:
            if isinstance(outlet, AssetAlias):
                events[outlet].add(Asset(uri), extra=extra)
            elif isinstance(outlet, Asset) and outlet.uri == uri:
                events[outlet].extra.update(extra)


# papermill provider's name, so switching is a one-line import change
PapermillOperator = NotebookOperator
