"""Text notebooks (jupytext): ``.py`` (percent and light), ``.md``, ``.R``... as inputs and outputs.

The format is chosen by the file extension. Reading keeps jupytext's record of the text format,
so a percent ``.py`` is written back as percent; a notebook that never was text is written in the
percent format, which keeps cell tags (``parameters``, ``injected-parameters``) in its headers.
Outputs of executed cells have no place in a text notebook: write ``.ipynb`` to keep them.
"""

from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import notebook as nbops
from .errors import InputError, MissingDependencyError
from .storage import display_url, is_url

if TYPE_CHECKING:
    from nbformat import NotebookNode

#: extensions read and written as text notebooks (all known to jupytext)
TEXT_EXTENSIONS = frozenset(
    ".py .R .r .jl .md .markdown .Rmd .qmd .myst .sh .scala .m .js .ts .cs .fs .fsx .ps1".split()
)
#: extensions where jupytext's script formats (light, percent) apply
_SCRIPT_EXTENSIONS = TEXT_EXTENSIONS - {".md", ".markdown", ".Rmd", ".qmd", ".myst"}
#: metadata written by a run that would clutter every cell header of a text notebook
_RUN_CELL_METADATA = ("papermill", "execution", "collapsed", "scrolled")


def extension(path: Any) -> str:
    """The file extension of a local path or a URL (``s3://b/nb.py?v=1`` -> ``.py``)."""
    if not isinstance(path, (str, os.PathLike)):
        return ""
    path = os.fspath(path)
    if is_url(path):
        path = urlsplit(path).path
    return os.path.splitext(path)[1]


def is_text_notebook(path: Any) -> bool:
    return extension(path) in TEXT_EXTENSIONS


def _jupytext() -> Any:
    try:
        import jupytext
    except ImportError:
        raise MissingDependencyError(
            "text notebooks (.py, .md, .R, ...) need jupytext: pip install 'paramill[text]'"
        ) from None
    return jupytext


def _default_kernelspec(language: str | None) -> dict[str, str] | None:
    if not language:
        return None
    if language == "python":
        return {"name": "python3", "language": "python", "display_name": "Python 3"}
    from jupytext.kernels import kernelspec_from_language

    try:
        return dict(kernelspec_from_language(language))
    except ValueError:  # no installed kernel for it: -k names one, or the run says none
        return None


def reads(text: str, path: str) -> NotebookNode:
    """A notebook from the text of a jupytext file (its format chosen by the path's extension)."""
    import nbformat

    jupytext = _jupytext()
    shown = display_url(path)
    try:
        nb = jupytext.reads(text, fmt=extension(path)[1:])
    except Exception as exc:  # jupytext raises several types for text it cannot parse
        raise InputError(f"{shown}: not a readable text notebook ({exc})") from None
    if not nb.metadata.get("kernelspec"):
        language = nb.metadata.get("jupytext", {}).get("main_language")
        spec = _default_kernelspec(language)
        if spec:
            nb.metadata["kernelspec"] = spec
    info = nb.metadata.get("jupytext", {})
    if "cell_metadata_filter" in info and "tags" not in info["cell_metadata_filter"]:
        # keep tags when written back: the injected-parameters cell must stay recognisable
        info["cell_metadata_filter"] = "tags," + info["cell_metadata_filter"]
    return nbops.loads(nbformat.writes(nb), shown)


def writes(nb: NotebookNode, path: str) -> str:
    """The text of ``nb`` as a jupytext file for ``path``'s extension."""
    jupytext = _jupytext()
    ext = extension(path)
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        for key in _RUN_CELL_METADATA:
            cell.metadata.pop(key, None)
        # the injected cell ends with a newline, which a text format shows as a blank line
        cell.source = cell.source.rstrip("\n")
    fmt: dict[str, str] = {"extension": ext}
    previous = nb.metadata.get("jupytext", {}).get("text_representation", {})
    if previous.get("extension") == ext and previous.get("format_name"):
        fmt["format_name"] = previous["format_name"]
    elif ext in _SCRIPT_EXTENSIONS:
        fmt["format_name"] = "percent"
    return jupytext.writes(nb, fmt=fmt)
