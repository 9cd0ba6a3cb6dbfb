"""Shared fixtures: notebook factory, CLI runner in a subprocess, kernel-process accounting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

PARAMILL = [sys.executable, "-m", "paramill"]


def make_notebook(
    cells: list[Any], kernel: str = "python3", language: str = "python", **metadata: Any
) -> nbformat.NotebookNode:
    """cells: source strings (code), or (kind, source, *tags) tuples; kind is code/md/raw."""
    nb = nbformat.v4.new_notebook()
    if kernel:
        nb.metadata.kernelspec = {"name": kernel, "display_name": kernel, "language": language}
    if language:
        nb.metadata.language_info = {"name": language}
    nb.metadata.update(metadata)
    for spec in cells:
        kind, source, *tags = ("code", spec) if isinstance(spec, str) else spec
        if kind == "code":
            cell = nbformat.v4.new_code_cell(source)
        elif kind == "md":
            cell = nbformat.v4.new_markdown_cell(source)
        else:
            cell = nbformat.v4.new_raw_cell(source)
        if tags:
            cell.metadata["tags"] = list(tags)
        nb.cells.append(cell)
    return nb


@pytest.fixture
def write_nb(tmp_path: Path):
    """write_nb(cells, name='in.ipynb', **kw) -> path of a notebook written in tmp_path."""

    def write(cells: list[Any], name: str = "in.ipynb", **kw: Any) -> Path:
        path = tmp_path / name
        nbformat.write(make_notebook(cells, **kw), path)
        return path

    return write


def read_nb(path: Path | str) -> dict:
    """A saved notebook, with multi-line strings joined (as nbformat reads them)."""
    with open(path, encoding="utf-8") as f:
        return nbformat.reads(f.read(), as_version=4)


def run_cli(
    *args: str,
    cwd: Path | str | None = None,
    input: str | None = None,
    timeout: float = 120,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*PARAMILL, *map(str, args)],
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def kernel_processes() -> set[int]:
    """PIDs of running ipykernel processes (to prove no kernel is left behind)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        if b"ipykernel_launcher" in cmd or b"ipykernel" in cmd and b"-f" in cmd:
            pids.add(int(entry))
    return pids


@pytest.fixture
def no_orphan_kernels():
    """Fails the test if it leaves a kernel process behind."""
    import time

    before = kernel_processes()
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = kernel_processes() - before
        if not left:
            return
        time.sleep(0.1)
    pytest.fail(f"kernel processes left behind: {sorted(left)}")
