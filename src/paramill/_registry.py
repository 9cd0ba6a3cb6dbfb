"""Plug-ins found by name through entry point groups (executors, engines, ...).

One lookup and one error for an unknown name, so every group answers the same way:
``no executor named 'x' (known: dask, local)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from .errors import InputError

#: the engine paramill ships; the only one that takes a kernel source (``kernel_source``)
DEFAULT_ENGINE = "nbclient"


def is_default_engine(name: str | None) -> bool:
    """Whether ``name`` (None or empty: not given) means paramill's own nbclient engine."""
    return name in (None, "", DEFAULT_ENGINE)


def known_names(group: str, builtins: Mapping[str, Any] | None = None) -> list[str]:
    """Every name ``group`` answers to, sorted."""
    return sorted({*(builtins or {}), *(ep.name for ep in entry_points(group=group))})


def lookup(group: str, name: str, what: str, builtins: Mapping[str, Any] | None = None) -> Any:
    """The object registered as ``name`` in entry point ``group`` (``builtins`` first: they
    work without an installed distribution); an unknown name is an InputError listing the
    known ones. ``what`` names the kind of plug-in in that message."""
    if builtins and name in builtins:
        return builtins[name]
    for ep in entry_points(group=group):
        if ep.name == name:
            return ep.load()
    known = ", ".join(known_names(group, builtins))
    raise InputError(f"no {what} named {name!r} (known: {known})")
