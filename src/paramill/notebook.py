"""Pure functions on notebooks: load, parameterize, stamp metadata, mark and find failures.

Nothing here starts a kernel or touches storage. Functions that transform a notebook take it and
return it; callers pass a notebook they own (``load`` makes a fresh one).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import (
    CellTimeoutError,
    ExecutionError,
    InputError,
    KernelDiedError,
    RunCancelledError,
    RunTimeoutError,
)

if TYPE_CHECKING:
    from nbformat import NotebookNode

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
ERROR_MARKER_TAG = "papermill-error-cell-tag"
RAISES_TAG = "raises-exception"

_STYLE = "color:red; font-family:Helvetica Neue, Helvetica, Arial, sans-serif; font-size:2em;"
ERROR_ANCHOR = (
    f'<span id="papermill-error-cell" style="{_STYLE}">'
    "Execution using papermill encountered an exception here and stopped:</span>"
)


def _version() -> str:
    return __version__


def loads(text: str, origin: str = "notebook") -> NotebookNode:
    """Parse notebook JSON, convert it to the newest nbformat 4 minor, and check its schema."""
    import nbformat
    from nbformat.validator import ValidationError

    if not text.strip():
        raise InputError(f"{origin}: empty file, not a notebook")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{origin}: not a notebook: invalid JSON at line {exc.lineno}") from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise InputError(f"{origin}: JSON but not a notebook (no 'cells')")
    try:
        nb = nbformat.reads(text, as_version=4, capture_validation_error={})
        upgraded = nbformat.v4.upgrade(nb)
        nb = upgraded if upgraded is not None else nb
        _, nb = nbformat.validator.normalize(nb)  # fills in e.g. missing cell ids
        nb = nbformat.from_dict(nb)
        _check_schema(nb, origin)
    except ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "notebook"
        raise InputError(f"{origin}: invalid notebook ({where}: {exc.message})") from None
    except InputError:
        raise
    except Exception as exc:  # nbformat raises several types for broken documents
        raise InputError(f"{origin}: not a valid notebook ({type(exc).__name__}: {exc})") from None
    return nb


def _check_schema(nb: NotebookNode, origin: str) -> None:
    """Schema errors in the structure (cells, sources, outputs) are fatal; metadata ones (a
    kernelspec without display_name, as many real notebooks have) only warn, as in papermill."""
    import logging

    from nbformat.validator import iter_validate

    for error in iter_validate(nb):
        path = [str(p) for p in error.absolute_path]
        where = "/".join(path) or "notebook"
        # a value of the wrong type (language_info: null, tags: "x") would break what reads it
        if "metadata" in path and error.validator != "type":
            logging.getLogger("paramill").warning("%s: %s: %s", origin, where, error.message)
            continue
        raise InputError(f"{origin}: invalid notebook ({where}: {error.message})")
    # outside the schema, but what picks the translator reads it
    language = nb.metadata.get("kernelspec", {}).get("language")
    if language is not None and not isinstance(language, str):
        raise InputError(
            f"{origin}: invalid notebook (metadata/kernelspec/language: {language!r} is not "
            "of type 'string')"
        )


def dumps(nb: NotebookNode) -> str:
    """nbformat's JSON (1-space indent, sorted keys), newline-terminated, without re-validation."""
    from nbformat.v4.nbjson import writes

    return writes(nb) + "\n"


def has_tag(cell: Any, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def find_tagged(nb: NotebookNode, tag: str) -> int | None:
    """Index of the first cell carrying ``tag``."""
    for index, cell in enumerate(nb.cells):
        if has_tag(cell, tag):
            return index
    return None


def add_placeholders(nb: NotebookNode) -> NotebookNode:
    """papermill's metadata skeleton: notebook ``metadata.papermill``, cell tags and papermill.

    paramill owns the ``papermill`` keys: a value that is not a mapping is replaced.
    """
    if not isinstance(nb.metadata.get("papermill"), dict):
        nb.metadata["papermill"] = {
            "default_parameters": {},
            "parameters": {},
            "environment_variables": {},
        }
    nb.metadata.papermill.setdefault("version", _version())
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
        if not isinstance(cell.metadata.get("papermill"), dict):
            cell.metadata["papermill"] = {}
    return nb


def inject_parameters(
    nb: NotebookNode, source: str, parameters: dict[str, Any], report_mode: bool = False
) -> NotebookNode:
    """Insert the ``injected-parameters`` cell: in place of an old one, else after the first
    ``parameters`` cell, else at the top (with papermill's warning)."""
    import logging

    import nbformat

    # what nbformat.v4.new_code_cell makes, without its schema check (a jsonschema validation
    # per run, for a cell built here from a string)
    cell = nbformat.NotebookNode(
        id=nbformat.v4.nbbase.random_cell_id(),
        cell_type="code",
        metadata=nbformat.NotebookNode(tags=[INJECTED_TAG]),
        execution_count=None,
        source=source,
        outputs=[],
    )
    if report_mode:
        cell.metadata["jupyter"] = {"source_hidden": True}
    old = find_tagged(nb, INJECTED_TAG)
    params_index = find_tagged(nb, PARAMETERS_TAG)
    if old is not None:
        nb.cells[old] = cell
    elif params_index is not None:
        nb.cells.insert(params_index + 1, cell)
    else:
        logging.getLogger("paramill").warning(
            "Input notebook does not contain a cell with tag 'parameters'"
        )
        nb.cells.insert(0, cell)
    nb.metadata.papermill["parameters"] = parameters
    return nb


def apply_report_mode(nb: NotebookNode) -> NotebookNode:
    """Hide code inputs (JupyterLab's ``source_hidden``), keeping other ``jupyter`` keys."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
    return nb


def remove_error_markers(nb: NotebookNode) -> NotebookNode:
    nb.cells = [cell for cell in nb.cells if not has_tag(cell, ERROR_MARKER_TAG)]
    return nb


def _banner(error: ExecutionError) -> str:
    link = f'<a href="#papermill-error-cell">In [{error.exec_count}]</a>'
    if isinstance(error, CellTimeoutError):
        what = f"The cell '{link}' timed out: {error.evalue}."
    elif isinstance(error, RunTimeoutError):
        what = f"The run timed out at '{link}': {error.evalue}."
    elif isinstance(error, KernelDiedError):
        what = f"The kernel died at '{link}': {error.evalue}."
    elif isinstance(error, RunCancelledError):
        what = f"The run was cancelled at '{link}': {error.evalue}."
    else:
        what = f"An Exception was encountered at '{link}'."
    return f'<span style="{_STYLE}">{what}</span>'


def add_error_markers(nb: NotebookNode, error: ExecutionError) -> NotebookNode:
    """papermill's banner cell at the top and anchor cell above the failing cell."""
    import nbformat

    # an error found after the run (strict mode, a tagged cell) fails the run as much as any
    nb.metadata.setdefault("papermill", {})["exception"] = True

    def marker(source: str) -> Any:
        return nbformat.v4.new_markdown_cell(source=source, metadata={"tags": [ERROR_MARKER_TAG]})

    if error.cell_index is not None and 0 <= error.cell_index <= len(nb.cells):
        nb.cells.insert(error.cell_index, marker(ERROR_ANCHOR))
    nb.cells.insert(0, marker(_banner(error)))
    return nb


_TRACEBACK_HEADER = re.compile(r"^Traceback \(most recent call last\):$", re.MULTILINE)


def _reported_error(output: Any) -> tuple[str, str] | None:
    """(ename, evalue) of a Python traceback in a stderr stream or a display's text/plain."""
    if output.get("output_type") == "stream" and output.get("name") == "stderr":
        text = output.get("text", "")
    elif output.get("output_type") in ("display_data", "execute_result"):
        text = output.get("data", {}).get("text/plain", "")
    else:
        return None
    text = "".join(text) if isinstance(text, list) else str(text)
    header = _TRACEBACK_HEADER.search(text)
    if header is None:
        return None
    for line in text[header.end() :].splitlines():
        if line.strip() and not line[0].isspace():  # the exception line ends the frames
            name, _, value = line.partition(": ")
            return name.strip(), value.strip()
    return "Traceback", ""


def find_execution_error(
    nb: NotebookNode, *, fail_on_allowed: bool = False
) -> ExecutionError | None:
    """The first cell error that fails the run, or None.

    ``SystemExit`` with no code or 0 is a clean stop. Errors in cells tagged ``raises-exception``
    are expected and do not fail the run unless ``fail_on_allowed`` (strict mode). A cell marked
    failed without an error output (a failing magic that only writes stderr) is a failure too.
    Strict mode also fails on errors reported only as text: a traceback written to stderr or
    shown as a display (an exception caught and printed, one raised in a thread).
    """
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        clean_exit = False
        for output in cell.get("outputs", []):
            reported = _reported_error(output) if fail_on_allowed else None
            if reported:
                return ExecutionError(
                    cell_index=index,
                    exec_count=cell.execution_count,
                    source=cell.source,
                    ename=reported[0],
                    evalue=f"{reported[1]} (reported as {output.output_type} output; --strict)",
                    traceback=[],
                )
            if output.output_type != "error":
                continue
            if output.ename == "SystemExit" and output.evalue in ("", "0"):
                clean_exit = True
                continue
            if has_tag(cell, RAISES_TAG) and not fail_on_allowed:
                continue
            return ExecutionError(
                cell_index=index,
                exec_count=cell.execution_count,
                source=cell.source,
                ename=output.ename,
                evalue=output.evalue,
                traceback=output.traceback,
            )
        meta = cell.metadata.get("papermill", {})
        if not clean_exit and meta.get("exception") and meta.get("status") == "failed":
            return ExecutionError(
                cell_index=index,
                exec_count=cell.execution_count,
                source=cell.source,
                ename="CellExecutionError",
                evalue="",
                traceback=[],
            )
    return None


# Keys that change on every run: papermill's timings and nbclient's message timestamps.
_VOLATILE_PAPERMILL_KEYS = ("start_time", "end_time", "duration")


def without_volatile(nb: NotebookNode) -> NotebookNode:
    """A copy without timestamps, durations or random cell ids paramill added, so that two runs
    of the same notebook are byte-identical (``--deterministic``)."""
    import copy

    nb = copy.deepcopy(nb)
    for key in _VOLATILE_PAPERMILL_KEYS:
        nb.metadata.get("papermill", {}).pop(key, None)
    markers = 0
    for cell in nb.cells:
        for key in _VOLATILE_PAPERMILL_KEYS:
            cell.metadata.get("papermill", {}).pop(key, None)
        cell.metadata.pop("execution", None)
        if has_tag(cell, INJECTED_TAG):
            cell["id"] = INJECTED_TAG
        elif has_tag(cell, ERROR_MARKER_TAG):
            markers += 1
            cell["id"] = f"papermill-error-marker-{markers}"
    return nb
