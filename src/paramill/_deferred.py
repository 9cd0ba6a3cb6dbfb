"""Third-party modules whose import is slow and seldom used, loaded on first use instead.

Every run imports nbformat, which imports jsonschema. When ``rfc3987_syntax`` is installed (it
comes with jupyter_server's dependencies, so with JupyterLab, Voila, ...), jsonschema imports it
at once to offer the "iri" format check, and that import compiles a Lark grammar: 1.2-1.8 s on
a 2-core machine, paid by every run (and by papermill's) for a check nbformat's schema never
uses. ``defer_slow_imports`` puts a stand-in in its place that imports the real module the
first time anything of it is used, so the check still works where something asks for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

IRI_MODULE = "rfc3987_syntax"


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


def _is_valid_syntax(*args: Any, **kwargs: Any) -> Any:
    # jsonschema does ``from rfc3987_syntax import is_valid_syntax`` at import: a name that must
    # exist on the stand-in without loading the real module
    return _real(IRI_MODULE).is_valid_syntax(*args, **kwargs)


def defer_slow_imports() -> None:
    """Install the stand-ins, unless the real modules (or jsonschema) are loaded already."""
    if IRI_MODULE in sys.modules or "jsonschema" in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(IRI_MODULE)
    except (ImportError, ValueError):
        return
    if spec is None:
        return
    stand_in = _Deferred(IRI_MODULE)
    stand_in.__spec__ = spec
    stand_in.is_valid_syntax = _is_valid_syntax  # type: ignore[attr-defined]
    sys.modules[IRI_MODULE] = stand_in
