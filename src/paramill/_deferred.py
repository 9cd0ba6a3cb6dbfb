"""Third-party modules whose import is slow and seldom used, loaded on first use instead.

Every run imports nbformat, which imports jsonschema, which imports at once every format
checker it finds installed. Two of them come with jupyter_server's dependencies (so with
JupyterLab, Voila, ...) and cost every run (and papermill's) for checks nbformat's schema never
uses: ``rfc3987_syntax`` compiles a Lark grammar at import (1.2-1.8 s on a 2-core machine) and
``rfc3986_validator`` compiles its regular expressions (~10 ms). ``defer_slow_imports`` puts a
stand-in in their place that imports the real module the first time anything of it is used, so
the checks still work where something asks for them.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Callable
from typing import Any

# module -> the names jsonschema takes from it with ``from module import name`` at its import
DEFERRED: dict[str, tuple[str, ...]] = {
    "rfc3987_syntax": ("is_valid_syntax",),
    "rfc3986_validator": ("validate_rfc3986",),
}


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is used."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system's probes (``__path__``, ...)
            raise AttributeError(name)
        return getattr(_real(self.__name__), name)


def _real(name: str) -> types.ModuleType:
    module = sys.modules.get(name)
    if isinstance(module, _Deferred):
        del sys.modules[name]
        try:
            return importlib.import_module(name)
        except BaseException:
            sys.modules[name] = module
            raise
    return importlib.import_module(name)


def _forwarder(module: str, name: str) -> Callable[..., Any]:
    """A function that stands for ``module.name`` and loads the module when called."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(_real(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


def defer_slow_imports() -> None:
    """Install the stand-ins, unless jsonschema (or the real module) is loaded already."""
    if "jsonschema" in sys.modules:
        return
    for module, names in DEFERRED.items():
        if module in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        stand_in = _Deferred(module)
        stand_in.__spec__ = spec
        for name in names:
            setattr(stand_in, name, _forwarder(module, name))
        sys.modules[module] = stand_in
