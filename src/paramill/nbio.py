"""Notebook input and output: read a notebook from a path/URL, ``-``, JSON text or an object;
write one (ipynb, or a text notebook by its extension) through storage."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import notebook as nbops
from . import storage, textnb

if TYPE_CHECKING:
    from nbformat import NotebookNode


def is_notebook_text(path: Any) -> bool:
    """Whether a "path" is really a notebook's JSON text."""
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
