"""paramill: parameterize and run Jupyter notebooks (a papermill-compatible runner).

The public surface is small and imported lazily, so ``paramill --help`` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ._deferred import defer_slow_imports
from .errors import (
    CellTimeoutError,
    ExecutionError,
    InputError,
    KernelDiedError,
    KernelError,
    OutputError,
    PapermillException,
    PapermillExecutionError,
    ParameterError,
    ParamillError,
    RunCancelledError,
    RunTimeoutError,
    StorageError,
)

__version__ = "0.1.0"

defer_slow_imports()  # before anything imports nbformat (and so jsonschema)

_LAZY = {
    "execute_notebook": "api",
    "inspect_notebook": "api",
    "run": "api",
    "RunResult": "api",
    "RunOptions": "api",
    "RunStatus": "api",
    "Timeouts": "api",
    "CancelToken": "_run.cancel",
    "KernelSource": "kernel.source",
    "KernelRequest": "kernel.source",
    "LocalKernelSource": "kernel.local",
    "ConnectionSource": "kernel.network",
    "KernelPool": "kernel.pool",
    "SignalGuard": "signals",
    # records: `paramill.record` runs inside kernels, so records.py stays import-light
    "record": "records",
    "read_notebook": "records",
    "read_records": "records",
    "sweep": "sweeps",
    "SweepRun": "sweeps",
    "Gateway": "kernel.gateway",
}


def _lazy_attributes(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``name`` from ``package.<table[name]>`` on first
    use and keeps it, so importing the package stays cheap."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        from importlib import import_module

        value = getattr(import_module(f".{module}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


__getattr__ = _lazy_attributes(__name__, _LAZY)


__all__ = [
    "CancelToken",
    "CellTimeoutError",
    "ConnectionSource",
    "ExecutionError",
    "InputError",
    "KernelDiedError",
    "KernelError",
    "OutputError",
    "ParameterError",
    "ParamillError",
    "PapermillException",
    "PapermillExecutionError",
    "RunCancelledError",
    "RunResult",
    "RunTimeoutError",
    "StorageError",
    "SweepRun",
    "KernelPool",
    "Gateway",
    "KernelRequest",
    "KernelSource",
    "LocalKernelSource",
    "RunOptions",
    "RunStatus",
    "SignalGuard",
    "Timeouts",
    "__version__",
    "execute_notebook",
    "inspect_notebook",
    "read_notebook",
    "read_records",
    "record",
    "run",
    "sweep",
]
