"""paramill: parameterize and run Jupyter notebooks (a papermill-compatible runner).

The public surface is small and imported lazily, so ``paramill --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

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

_LAZY = {
    "execute_notebook": "execute",
    "inspect_notebook": "execute",
    "run": "execute",
    "RunResult": "execute",
    # records: `paramill.record` runs inside kernels, so records.py stays import-light
    "record": "records",
    "read_notebook": "records",
    "read_records": "records",
    "sweep": "sweeps",
    "SweepRun": "sweeps",
    "KernelPool": "pool",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paramill' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "CellTimeoutError",
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
    "__version__",
    "execute_notebook",
    "inspect_notebook",
    "read_notebook",
    "read_records",
    "record",
    "run",
    "sweep",
]
