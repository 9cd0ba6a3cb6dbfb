"""A run's options as one typed object (``RunOptions``), its timeouts together (``Timeouts``).

``RunOptions.from_kwargs`` takes papermill-style keyword arguments (``execute_notebook``'s and
``run``'s); what it does not know goes to the engine (``engine_kwargs``: nbclient options such as
``allow_errors``), as papermill passes them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from ..kernel.source import KernelSource
from .cancel import CancelToken

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Timeouts:
    """Seconds: ``start`` for the kernel to answer, ``cell`` per cell (None: no limit), ``run``
    for the whole run (None: no limit), ``liveness`` of a kernel that stops answering
    heartbeats (None: the engine's default)."""

    start: float = 60
    cell: float | None = None
    run: float | None = None
    liveness: float | None = None


@dataclass
class RunOptions:
    """Everything about a run except its input, output and parameters."""

    parameters_file: PathLike | list[PathLike] | None = None
    parameters_yaml: str | list[str] | None = None
    engine_name: str | None = None
    kernel_name: str | None = None
    language: str | None = None
    cwd: PathLike | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    prepare_only: bool = False
    request_save_on_cell_execute: bool = True
    autosave_cell_every: float = 30
    progress_bar: bool | dict = False
    log_output: bool = False
    stdout_file: IO[str] | None = None
    stderr_file: IO[str] | None = None
    report_mode: bool = False
    strict: bool = False
    storage_options: dict[str, Any] | None = None
    handle_signals: bool = True
    html_output: PathLike | None = None
    secrets: Mapping[str, str] | None = None
    allow_short_secrets: bool = False
    deterministic: bool = False
    allow_path_values: bool = False
    #: variables added to the kernel's environment
    kernel_env: Mapping[str, str] | None = None
    #: where the kernel comes from (None: a fresh local kernel, launched ahead)
    kernel_source: KernelSource | None = None
    #: without a kernel_source: a kernel forked from the user's warm server (paramill.warm;
    #: None: PARAMILL_WARM, else ``warm`` under [tool.paramill] in ./pyproject.toml)
    warm: bool | None = None
    #: an object with any of ``cell_started(index, cell)``, ``cell_finished(index, cell)``,
    #: ``output(index, output)``, called as the run goes
    events: Any = None
    cancel: CancelToken | None = None
    #: passed to the engine as they are (nbclient options such as ``allow_errors``)
    engine_kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> RunOptions:
        """From papermill-style keyword arguments: ``start_timeout``, ``execution_timeout``
        (nbclient's ``timeout`` when it is not given), ``run_timeout``,
        ``kernel_liveness_timeout``; unknown names are engine options."""
        names = {f.name for f in dataclasses.fields(cls)} - {"timeouts", "engine_kwargs"}
        known = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        remote = _remote_source(kwargs.pop("gateway", None), kwargs.pop("connection_info", None))
        if remote is not None and known.get("kernel_source") is None:
            known["kernel_source"] = remote
        kwargs.pop("input_path", None)  # papermill passes it on to engines; paramill need not
        cell = kwargs.pop("execution_timeout", None)
        nbclient_timeout = kwargs.pop("timeout", None)
        timeouts = Timeouts(
            start=kwargs.pop("start_timeout", 60),
            cell=cell or nbclient_timeout,  # papermill: nbclient's `timeout` applies then
            run=kwargs.pop("run_timeout", None),
            liveness=kwargs.pop("kernel_liveness_timeout", None),
        )
        return cls(**known, timeouts=timeouts, engine_kwargs=kwargs)

    def replace(self, **changes: Any) -> RunOptions:
        return dataclasses.replace(self, **changes)


def _remote_source(gateway: Any, connection: Any) -> KernelSource | None:
    """``gateway=`` (a Jupyter gateway: URL, dict or ``paramill.Gateway``) or
    ``connection_info=`` (an existing kernel: a dict or a connection file) as a kernel source
    the run owns (closed when the run ends)."""
    from ..errors import KernelError

    if gateway is not None and connection is not None:
        raise KernelError("gateway= and connection_info= cannot be used together")
    source: Any = None
    if gateway is not None:
        from ..kernel.gateway import GatewaySource

        source = gateway if isinstance(gateway, GatewaySource) else GatewaySource(gateway)
    elif connection is not None:
        from ..kernel.network import ConnectionSource

        source = ConnectionSource(connection)
    if source is not None:
        source.close_after_run = True
    return source
