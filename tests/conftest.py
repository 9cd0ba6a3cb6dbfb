"""Shared fixtures: notebook factory, CLI runner in a subprocess, kernel-process accounting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import settings

PARAMILL = [sys.executable, "-m", "paramill"]

# Every Hypothesis test draws the same examples on every run (CI must be reproducible) and keeps
# no example database; a test's own @settings still sets its example count. tests/test_fuzz.py's
# PARAMILL_FUZZ_EXPLORE=1 switches its own tests back to random draws.
settings.register_profile("paramill", derandomize=True, database=None, deadline=None)
settings.load_profile("paramill")


# The parameters cell of papermill's fixture tests/notebooks/complex_parameters.ipynb (papermill
# 2.x, unchanged since 2020), verbatim: two lines papermill cannot read, one not even Python.
COMPLEX_PARAMETERS = (
    "msg = None\n"
    "a: float = 2.25 # Variable a\n"
    "b = [\n"
    "    'Hello', # First element\n"
    "# Dummy comment\n"
    "    'World'\n"
    "] # type: List[str] Nice list\n"
    "\n"
    "# Interesting c variable\n"
    'c: "NoneType" = None\n'
    "# Not introspectable line\n"
    "d = a == 3\n"
    "# Broken name definition\n"
    "= 2"
)


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


def processes_with_env(token: str) -> set[int]:
    """PIDs (other than this one) whose environment holds ``token``: processes started by this
    test, as kernels and their children inherit the environment, even once re-parented."""
    found = set()
    needle = token.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read():
                    found.add(int(entry))
        except OSError:
            continue
    return found


@pytest.fixture
def no_orphan_kernels(monkeypatch):
    """Fails the test if a process it started (a kernel, a kernel's child) outlives it."""
    import time
    import uuid

    token = f"paramill-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("PARAMILL_TEST_TOKEN", token)
    yield
    deadline = time.monotonic() + 10
    while (left := processes_with_env(token)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        pytest.fail(f"processes left behind: {sorted(left)}")
