"""The sweep summary: one row per run, as a table for the terminal, or JSON/CSV (``--summary``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .. import storage
from ..errors import ParameterError
from ..parameters import json_safe
from .run_one import SweepRun

SUMMARY_COLUMNS = ("run", "parameters", "status", "duration", "output", "failing_cell", "error")


def summary_rows(runs: Sequence[SweepRun]) -> list[dict[str, Any]]:
    """One row per run; records (if runs have them) become ``record.<name>`` columns."""
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "run": run.index + 1,
            "parameters": run.label,
            "status": run.status,
            "duration": run.duration,
            "output": run.output_path or "",
            "failing_cell": run.failing_cell,
            "error": run.error.message if run.error is not None else "",
            "exit_code": run.exit_code,
            "grid": run.grid,
        }
        if isinstance(run.records, Mapping):
            for name, value in run.records.items():
                row[f"record.{name}"] = _record_value(value)
        elif run.records is not None:
            row["records"] = _record_value(run.records)
        rows.append(row)
    return rows


def _record_value(value: Any) -> Any:
    value = getattr(value, "value", value)
    return json_safe(value)


def format_table(runs: Sequence[SweepRun], width: int = 48) -> str:
    rows = summary_rows(runs)
    extra = sorted({k for row in rows for k in row if k.startswith("record")})
    columns = [c for c in SUMMARY_COLUMNS if c != "run"] + extra
    heads = {"failing_cell": "failing cell"}

    def cell(row: dict, col: str) -> str:
        value = row.get(col, "")
        if col == "duration" and value is not None and value != "":
            value = f"{value:.2f}s"
        text = "" if value is None else str(value)
        return text if len(text) <= width else text[: width - 1] + "…"

    table = [[heads.get(c, c) for c in columns]] + [[cell(r, c) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in table
    ]
    failed = sum(1 for r in runs if not r.ok)
    skipped = sum(1 for r in runs if r.status == "skipped")
    prepared = sum(1 for r in runs if r.status == "prepared")  # prepare_only: all or none
    fine = f"{prepared} prepared" if prepared else f"{len(runs) - failed - skipped} completed"
    tail = f"{len(runs)} runs: {fine}, {failed} failed"
    if skipped:
        tail += f", {skipped} skipped"
    return "\n".join([*lines, tail])


def write_summary(
    runs: Sequence[SweepRun], path: str, storage_options: dict[str, Any] | None = None
) -> None:
    """The summary as JSON (a list of rows) or CSV (one column per grid parameter), by suffix."""
    rows = summary_rows(runs)
    if path.lower().endswith(".csv"):
        names = list(dict.fromkeys(k for row in rows for k in row["grid"]))
        extra = sorted({k for row in rows for k in row if k.startswith("record")})
        columns = [
            "run",
            *names,
            "status",
            "duration",
            "output",
            "failing_cell",
            "error",
            "exit_code",
            *extra,
        ]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            flat = {**row, **row["grid"]}
            writer.writerow({k: _csv_value(flat.get(k)) for k in columns})
        text = buffer.getvalue()
    elif path.lower().endswith(".json"):
        text = json.dumps(json_safe(rows), indent=1) + "\n"
    else:
        raise ParameterError(f"--summary {path}: name a .json or .csv file")
    storage.write_text(path, text, storage_options)


def _csv_value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else value
