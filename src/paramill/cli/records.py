"""``paramill records``: print what an executed notebook stored with ``paramill.record``."""

from __future__ import annotations

import json

import click

from ..errors import ParamillError
from ..records import read_notebook
from ..storage import display_url
from .exits import fail
from .options import RecordsOptions
from .values import parse_storage_options


def main(opts: RecordsOptions) -> None:
    """Print the notebook's records as a table, or as one JSON object with ``--json``."""
    try:
        storage_options = parse_storage_options(opts.storage_option)
        found = read_notebook(opts.notebook_path, storage_options).raw_records
    except ParamillError as exc:
        fail(exc)
    if opts.as_json:
        data = {name: rec.as_json() for name, rec in found.items()}
        click.echo(json.dumps(data, indent=1, ensure_ascii=False))
        return
    if not found:
        click.echo(f"{display_url(opts.notebook_path)}: no records", err=True)
        return
    rows = [(name, rec.encoder, rec.summary()) for name, rec in found.items()]
    widths = [max(len(row[i]) for row in [("name", "kind", "value"), *rows]) for i in (0, 1)]
    for name, kind, value in [("name", "kind", "value"), *rows]:
        click.echo(f"{name:<{widths[0]}}  {kind:<{widths[1]}}  {value}")
