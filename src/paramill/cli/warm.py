"""``paramill warm status`` and ``paramill warm stop``."""

from __future__ import annotations

import json
import sys

import click

from .. import warm


def main(values: tuple[str, bool]) -> None:
    what, as_json = values
    try:
        if what == "stop":
            _stop()
        else:
            _status(as_json)
    except warm.Unavailable as exc:
        click.echo(f"paramill: error: {exc}", err=True)
        sys.exit(2)


def _status(as_json: bool) -> None:
    found = warm.servers()
    if as_json:
        click.echo(json.dumps(found, indent=1))
        return
    if not found:
        click.echo(f"no warm servers (folder {warm.folder_path()})")
        return
    for entry in found:
        line = f"{entry['key']}  {entry['state']:<8}  pid {entry.get('pid', '-')}"
        if entry["state"] == "serving":
            d = entry.get("describe", {})
            line += (
                f"  {entry.get('kind', 'kernel')}  age {entry['age']:.0f} s"
                f"  idle exit {entry['idle_timeout']:g} s  running {len(entry['kernels'])}"
                f"  forks {entry['forks']}  rss {entry.get('rss_kb', 0) // 1024} MB"
                f"  fds {entry.get('fds', '-')}\n"
                f"    kernel {d.get('kernelspec')}  python {d.get('python')}"
                f"  packages {d.get('packages')}\n"
                f"    preloads {', '.join(entry['preload']) or '-'}"
            )
        elif entry["state"] == "gone":
            line += f"  ({entry.get('error')})"
        click.echo(line)


def _stop() -> None:
    stopped = warm.stop_all()
    for entry in stopped:
        click.echo(f"stopped {entry['key']} (pid {entry.get('pid', '-')}, {entry['state']})")
    if not stopped:
        click.echo("no warm servers")
