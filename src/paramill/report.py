"""HTML reports of executed notebooks (nbconvert, the optional ``paramill[report]`` extra).

Plots are embedded (data URIs), so the report is one self-contained file. In report mode the
code inputs and the injected-parameters cell are left out; a failed run's report keeps
papermill's error banner at the top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import storage
from .errors import MissingDependencyError
from .notebook import INJECTED_TAG

if TYPE_CHECKING:
    from nbformat import NotebookNode


def require_nbconvert() -> None:
    """Fail before the run, not after it, when reports cannot be written."""
    try:
        import nbconvert  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "writing an HTML report needs nbconvert: pip install 'paramill[report]'"
        ) from None


def to_html(nb: NotebookNode, *, report_mode: bool = False, title: str | None = None) -> str:
    """The notebook as a standalone HTML page."""
    require_nbconvert()
    import copy
    import logging

    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    if report_mode:
        config.TagRemovePreprocessor.enabled = True
        config.TagRemovePreprocessor.remove_cell_tags = {INJECTED_TAG}
        config.HTMLExporter.exclude_input = True
        config.HTMLExporter.exclude_input_prompt = True
        config.HTMLExporter.exclude_output_prompt = True
    # nbconvert warns about every plot without alt text; a report run should not
    quiet = logging.getLogger("paramill.report.nbconvert")
    quiet.setLevel(logging.ERROR)
    exporter = HTMLExporter(config=config, log=quiet)
    nb = copy.deepcopy(nb)
    resources: dict[str, Any] = {}
    if title:
        nb.metadata["title"] = title
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return body


def write_html(
    nb: NotebookNode,
    path: str,
    *,
    report_mode: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> None:
    """Write the report to a local path or any store fsspec knows."""
    import os

    title = os.path.splitext(os.path.basename(str(storage.display_url(path))))[0] or None
    storage.write_text(path, to_html(nb, report_mode=report_mode, title=title), storage_options)
