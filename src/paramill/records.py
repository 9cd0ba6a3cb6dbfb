"""Values that come out of a run: ``record`` inside a notebook, ``read_notebook`` outside.

A record is a ``display_data`` output holding a paramill mimetype (the value, machine-readable)
next to an ordinary rendering (text/plain, text/html or image/png) for Jupyter and HTML reports.
Readers also understand scrapbook's scraps and papermill's old ``record`` outputs, so notebooks
written with those keep their values.

This module is imported inside kernels by ``paramill.record``: keep its top level light (no
nbformat, nbclient, pandas or matplotlib imports here).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from . import __version__, storage
from .errors import MissingDependencyError, ParamillError, RecordError, strip_color
from .nbio import read_notebook_source
from .notebook import ERROR_MARKER_TAG
from .secrets import scrub_notebook

MIMETYPE = "application/vnd.paramill.record+json"
VERSION = 1
# scrapbook: application/scrapbook.scrap.<encoder>+json holding {name, data, encoder, version}
SCRAPBOOK_PREFIX = "application/scrapbook.scrap."
# papermill < 1.0: application/papermill.record+json holding {name: value}
PAPERMILL_RECORD = "application/papermill.record+json"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- inside the notebook ---------------------------------------------------------------------------
def record(name: str, value: Any, *, display: bool = True) -> None:
    """Store ``value`` under ``name`` in the running notebook's outputs.

    JSON-able values (numbers, strings, lists, dicts, None; numpy scalars and arrays too) are
    stored as JSON, a pandas DataFrame as a table (read back as a DataFrame), a matplotlib
    figure or PNG image as an image. With ``display=False`` nothing is shown in the notebook.
    """

    if not isinstance(name, str) or not name:
        raise RecordError(f"a record's name must be a non-empty string, not {name!r}")
    payload, shown = _encode(name, value)
    bundle = {MIMETYPE: payload}
    if display:
        bundle.update(shown)
    else:  # nothing a renderer picks, but text/plain is required by some frontends
        bundle["text/plain"] = ""
    from IPython.display import display as ip_display

    ip_display(bundle, raw=True, metadata={"paramill": {"record": name}})


def _encode(name: str, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the paramill payload, the human renderings) for one value."""

    payload: dict[str, Any] = {"name": name, "version": VERSION}
    if _is_dataframe(value):
        table = json.loads(value.to_json(orient="table", date_format="iso", default_handler=str))
        payload.update(encoder="dataframe", data=table)
        return payload, {
            "text/html": value.to_html(max_rows=20, max_cols=20),
            "text/plain": f"{name}:\n{value.to_string(max_rows=20, max_cols=20)}",
        }
    png = _png_bytes(value)
    if png is not None:
        # the image lives once, under image/png; the payload points at it
        payload.update(encoder="image", mimetype="image/png", data=None)
        return payload, {
            "image/png": base64.b64encode(png).decode("ascii"),
            "text/plain": f"<{name}: PNG image, {len(png)} bytes>",
        }
    try:
        text = json.dumps(value, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RecordError(
            f"record {name!r}: {type(value).__name__} is not JSON-able, a DataFrame or an "
            f"image ({exc})"
        ) from None
    payload.update(encoder="json", data=json.loads(text))
    pretty = json.dumps(payload["data"], ensure_ascii=False)
    if len(pretty) > 80:
        pretty = json.dumps(payload["data"], indent=1, ensure_ascii=False)
    if len(pretty) > 2000:
        pretty = pretty[:2000] + " ..."
    return payload, {"text/plain": f"{name} = {pretty}"}


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays, without importing numpy
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _is_dataframe(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "DataFrame" and cls.__module__.startswith("pandas")


def _png_bytes(value: Any) -> bytes | None:
    if isinstance(value, (bytes, bytearray)) and bytes(value[:8]) == _PNG_MAGIC:
        return bytes(value)
    if hasattr(value, "savefig"):  # a matplotlib Figure
        import io

        buffer = io.BytesIO()
        value.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
    render = getattr(value, "_repr_png_", None)  # IPython.display.Image, PIL images
    if callable(render):
        data = render()
        if isinstance(data, tuple):
            data = data[0]
        if isinstance(data, (bytes, bytearray)):
            return bytes(data)
    return None


# -- outside: reading records back -----------------------------------------------------------------
@dataclass
class Record:
    """One stored value as found in a notebook, before decoding."""

    name: str
    encoder: str  # json | dataframe | image | text | pandas (scrapbook's parquet)
    data: Any
    cell_index: int
    mimetype: str | None = None

    @property
    def value(self) -> Any:
        """The value: JSON data, a pandas DataFrame, or the image's bytes."""
        if self.encoder == "dataframe":
            import io

            import pandas as pd

            return pd.read_json(io.StringIO(json.dumps(self.data)), orient="table")
        if self.encoder == "image":
            return base64.b64decode(self.data) if isinstance(self.data, str) else self.data
        if self.encoder == "pandas":
            return _scrapbook_parquet(self)
        return self.data

    def as_json(self) -> Any:
        """A JSON-able form (``paramill records --json``), no pandas needed."""
        if self.encoder == "dataframe" and isinstance(self.data, dict):
            return self.data.get("data", [])
        if self.encoder == "image":
            return {"mimetype": self.mimetype, "base64": self.data}
        if self.encoder == "pandas":
            return {"encoder": "pandas", "parquet_base64": self.data}
        return self.data

    def summary(self, width: int = 60) -> str:
        """A one-line preview for the records table."""
        if self.encoder == "dataframe" and isinstance(self.data, dict):
            rows = self.data.get("data", [])
            schema = self.data.get("schema", {})
            index = set(schema.get("primaryKey") or [])
            columns = [f for f in schema.get("fields", []) if f.get("name") not in index]
            return f"DataFrame: {len(rows)} rows x {len(columns)} columns"
        if self.encoder == "image":
            size = len(self.data) * 3 // 4 if isinstance(self.data, str) else 0
            return f"{self.mimetype or 'image'}, ~{size} bytes"
        if self.encoder == "pandas":
            return "DataFrame (scrapbook parquet)"
        text = json.dumps(self.data, ensure_ascii=False)
        return text if len(text) <= width else text[: width - 3] + "..."


def _scrapbook_parquet(record: Record) -> Any:
    import io

    try:
        import pandas as pd

        return pd.read_parquet(io.BytesIO(base64.b64decode(record.data)))
    except ImportError:
        raise MissingDependencyError(
            f"record {record.name!r} is a scrapbook DataFrame (parquet): pip install pandas pyarrow"
        ) from None


def find_records(nb: Any) -> dict[str, Record]:
    """Every record in the notebook's outputs, by name; a later record of a name wins."""
    found: dict[str, Record] = {}
    for index, cell in enumerate(nb.get("cells", [])):
        for output in cell.get("outputs", []):
            if output.get("output_type") not in ("display_data", "execute_result"):
                continue
            for rec in _records_in(output.get("data", {}), index):
                found.pop(rec.name, None)  # keep the order of the latest
                found[rec.name] = rec
    return found


def _records_in(data: dict[str, Any], index: int) -> list[Record]:
    out = []
    for mimetype, payload in data.items():
        if mimetype == MIMETYPE and isinstance(payload, dict):
            encoder = payload.get("encoder", "json")
            value = payload.get("data")
            image_type = payload.get("mimetype")
            if encoder == "image" and value is None and image_type:
                value = _joined(data.get(image_type))
            out.append(Record(payload.get("name", ""), encoder, value, index, image_type))
        elif mimetype.startswith(SCRAPBOOK_PREFIX) and isinstance(payload, dict):
            encoder = payload.get("encoder") or mimetype[len(SCRAPBOOK_PREFIX) :].split("+")[0]
            value = payload.get("data")
            if encoder == "json" and isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            out.append(Record(payload.get("name", ""), encoder, value, index))
        elif mimetype == PAPERMILL_RECORD and isinstance(payload, dict):
            out.extend(Record(name, "json", value, index) for name, value in payload.items())
    return out


def _joined(value: Any) -> Any:
    # nbformat may store multi-line strings as lists of lines
    return "".join(value) if isinstance(value, list) else value


class OutputNotebook:
    """An executed notebook read back: its records, parameters and the notebook itself."""

    def __init__(self, nb: Any, path: str | None = None) -> None:
        self.notebook = nb
        self.path = path
        self._raw: dict[str, Record] | None = None

    @property
    def raw_records(self) -> dict[str, Record]:
        if self._raw is None:
            self._raw = find_records(self.notebook)
        return self._raw

    @property
    def records(self) -> dict[str, Any]:
        """name -> value (DataFrames as DataFrames, images as PNG bytes)."""
        return {name: rec.value for name, rec in self.raw_records.items()}

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.notebook.get("metadata", {}).get("papermill", {}).get("parameters", {}))

    def __repr__(self) -> str:
        return f"OutputNotebook({self.path!r}, records={list(self.raw_records)})"


def read_notebook(path: Any, storage_options: dict[str, Any] | None = None) -> OutputNotebook:
    """Read an executed notebook (local path, URL, or notebook object) for its records."""
    import os

    nb = read_notebook_source(path, storage_options)
    shown = storage.display_url(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else None
    return OutputNotebook(nb, shown)


def read_records(path: Any, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``read_notebook(path).records``."""
    return read_notebook(path, storage_options).records


def decoded_records(nb: Any) -> dict[str, Any]:
    """Records of a notebook just run, decoded where this process can (a DataFrame record
    stays its JSON table when pandas is not installed here, only in the kernel)."""

    values = {}
    for name, rec in find_records(nb).items():
        try:
            values[name] = rec.value
        except (ImportError, MissingDependencyError):
            values[name] = rec.as_json()
        except Exception as exc:  # a broken record must not fail the run
            import logging

            logging.getLogger("paramill").warning("record %r cannot be read: %s", name, exc)
    return values


# -- the run record (--run-record): what happened, for schedulers and people -----------------------
def run_record(result: Any) -> dict[str, Any]:
    """A JSON-able summary of a RunResult; its parameters already show secrets redacted."""

    error = result.error
    cells = []
    # the cells as they ran (without the error banner cells), so indices match the error's
    ran = [
        c
        for c in result.notebook.get("cells", [])
        if ERROR_MARKER_TAG not in c.get("metadata", {}).get("tags", [])
    ]
    for index, cell in enumerate(ran):
        meta = cell.get("metadata", {}).get("papermill", {})
        cells.append(
            {
                "index": index,
                "cell_type": cell.get("cell_type"),
                "execution_count": cell.get("execution_count"),
                "status": meta.get("status"),
                "duration": meta.get("duration"),
            }
        )
    record: dict[str, Any] = {
        "paramill_version": __version__,
        "status": result.status,
        "exit_code": 0 if error is None else error.exit_code,
        "input_path": result.input_path,
        "output_path": result.output_path,
        "html_output": getattr(result, "html_output", None),
        "kernel": result.kernel_name,
        "parameters": _jsonable(result.parameters),
        "start_time": result.start_time,
        "end_time": result.end_time,
        "duration": result.duration,
        "cells": cells,
        "records": sorted(getattr(result, "records", {}) or {}),
        "error": None,
    }
    if error is not None:
        record["error"] = {
            "type": type(error).__name__,
            "message": error.message,
            "cell_index": error.cell_index,
            "execution_count": error.exec_count,
            "ename": error.ename,
            "evalue": strip_color(error.evalue or ""),
            "traceback": strip_color("\n".join(error.traceback)),
        }
    return record


def error_run_record(
    error: BaseException,
    *,
    input_path: Any = None,
    output_path: Any = None,
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run record of a run that did not start (bad input, parameters, kernel, storage)."""

    message = error.message if isinstance(error, ParamillError) else str(error)
    return {
        "paramill_version": __version__,
        "status": "error",
        "exit_code": getattr(error, "exit_code", 1),
        "input_path": storage.display_url(input_path) if isinstance(input_path, str) else None,
        "output_path": storage.display_url(output_path) if isinstance(output_path, str) else None,
        "parameters": _jsonable(parameters or {}),
        "error": {"type": type(error).__name__, "message": message},
    }


def write_run_record(
    path: str,
    record: dict[str, Any],
    storage_options: dict[str, Any] | None = None,
    *,
    secrets: list[str] | None = None,
) -> None:
    """Write the record as JSON; any secret value in it (an error message quoting one) is
    redacted first."""

    record = scrub_notebook(_jsonable(record), list(secrets or []))
    text = json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    storage.write_text(path, text, storage_options)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
