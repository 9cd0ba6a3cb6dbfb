"""Bad input through the command line: every case gets one line naming the problem, its own exit
code (3 notebook, 4 parameters, 6 storage), no Python traceback, and the input file unchanged."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
import time
from pathlib import Path

import nbformat
import pytest

from tests.conftest import make_notebook, read_nb
from tests.conftest import run_cli as run_cli_anywhere
from tests.reliability_support import Sandbox, sandbox  # noqa: F401 - fixture


@pytest.fixture(autouse=True)
def cli(sandbox: Sandbox):  # noqa: F811
    """Every paramill process of these tests runs in the sandbox; none may leave a kernel."""
    yield
    sandbox.assert_clean()


@pytest.fixture
def run_cli(sandbox: Sandbox):  # noqa: F811
    def run(*args, **kw):
        return run_cli_anywhere(*args, env=sandbox.env, **kw)

    return run


VALID = make_notebook([("code", "a = 1", "parameters"), "print(a)"])
VALID_TEXT = nbformat.writes(VALID)


def v3_notebook() -> str:
    cell = {"cell_type": "code", "input": "print(6 * 7)", "language": "python", "outputs": []}
    return json.dumps(
        {
            "metadata": {"name": "", "kernelspec": {"name": "python3", "language": "python"}},
            "nbformat": 3,
            "nbformat_minor": 0,
            "worksheets": [{"cells": [{**cell, "metadata": {}}], "metadata": {}}],
        }
    )


def with_cells(cells: list) -> str:
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


# name: (file content (str or bytes), extra CLI args, exit code, words the message must contain)
NOTEBOOKS = {
    "not JSON": ("{nope", [], 3, "invalid JSON"),
    "truncated JSON": (VALID_TEXT[: len(VALID_TEXT) // 2], [], 3, "invalid JSON"),
    "JSON list": ("[1, 2]", [], 3, "not a notebook"),
    "JSON without cells": ('{"metadata": {}}', [], 3, "not a notebook"),
    "cells not a list": (with_cells("x"), [], 3, "invalid notebook"),  # type: ignore[arg-type]
    "cell without type": (with_cells([{"source": "1"}]), [], 3, "invalid notebook"),
    "source is a number": (
        with_cells([{"cell_type": "code", "source": 1, "metadata": {}, "outputs": []}]),
        [],
        3,
        "invalid notebook",
    ),
    "future nbformat": (
        json.dumps({"cells": [], "metadata": {}, "nbformat": 99, "nbformat_minor": 0}),
        [],
        3,
        "",
    ),
    "empty file": ("", [], 3, "empty"),
    "whitespace only": ("  \n\n", [], 3, "empty"),
    "not UTF-8": (b"\xff\xfe{\x00", [], 6, "not UTF-8"),
    "no kernelspec": (with_cells([]), [], 5, "names no kernel"),
    "kernelspec language not text": (  # found by test_fuzz: it crashed the translator lookup
        json.dumps(
            {
                "cells": [],
                "metadata": {"kernelspec": {"name": "ir", "display_name": "R", "language": [1]}},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        ),
        [],
        3,
        "kernelspec/language",
    ),
}

PARAMETERS = {
    "bad YAML": (["-y", "a: [1"], 4, "invalid YAML"),
    "YAML list": (["-y", "- 1\n- 2"], 4, "mapping"),
    "YAML scalar": (["-y", "just text"], 4, "mapping"),
    "base64 garbage": (["-b", "not*base64!"], 4, "base64"),
    "base64 of binary": (["-b", base64.b64encode(b"\xff\xfe\x00").decode()], 4, "base64"),
    "base64 of a list": (["-b", base64.b64encode(b"[1, 2]").decode()], 4, "mapping"),
    "invalid name": (["-p", "1abc", "1"], 4, "1abc"),
    "keyword as name": (["-p", "class", "1"], 4, "class"),
    "recursive alias": (["-y", "a: &x [*x]"], 4, "parameter 'a': "),
    "exponential aliases": (
        [
            "-y",
            "\n".join(
                ["a0: &a0 [1, 1]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 40)]
            ),
        ],
        4,
        "more than 1,000,000 values",
    ),
    "nested too deep": (["-y", "a: " + "[" * 300 + "]" * 300], 4, "levels deep"),
    "YAML nested too deep": (["-y", "a: " + "[" * 5000 + "]" * 5000], 4, "nested too deeply"),
    "missing file": (["-f", "/nonexistent/params.yaml"], 4, "no such file"),
    "file is a directory": (["-f", "/"], 4, "directory"),
    "storage option": (["--storage-option", "novalue"], 4, "KEY=VALUE"),
    # text that cannot be saved as UTF-8 (found by test_fuzz: the final save crashed)
    "unpaired surrogate in YAML": (["-y", 'a: {"\\ud800": 1}'], 4, "not valid text (\\ud800"),
    "unpaired surrogate in base64": (
        ["-b", base64.b64encode(b'{"a": "\\udfff"}').decode()],
        4,
        "not valid text (\\udfff",
    ),
    "argument bytes not UTF-8": (["-p", "a", "x\udcff"], 4, "not valid text (\\udcff"),
}


def check_one_line_failure(proc, code: int, words: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert lines and lines[-1].startswith("paramill: error: "), proc.stderr
    assert words in lines[-1], lines[-1]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines[-1]) < 400


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("case", list(NOTEBOOKS))
def test_bad_notebook(run_cli, tmp_path, case):
    content, extra, code, words = NOTEBOOKS[case]
    src = tmp_path / "bad.ipynb"
    src.write_bytes(content if isinstance(content, bytes) else content.encode())
    before, mtime = digest(src), src.stat().st_mtime_ns
    proc = run_cli(src, tmp_path / "out.ipynb", *extra)
    check_one_line_failure(proc, code, words)
    assert digest(src) == before and src.stat().st_mtime_ns == mtime
    assert not (tmp_path / "out.ipynb").exists()


@pytest.mark.parametrize("case", list(PARAMETERS))
def test_bad_parameters(run_cli, tmp_path, case):
    extra, code, words = PARAMETERS[case]
    src = tmp_path / "in.ipynb"
    src.write_text(VALID_TEXT)
    proc = run_cli(src, tmp_path / "out.ipynb", *extra)
    check_one_line_failure(proc, code, words)
    assert src.read_text() == VALID_TEXT and not (tmp_path / "out.ipynb").exists()


def test_value_the_language_cannot_represent(run_cli, tmp_path):
    """R has no integer beyond 2**53 that it can hold exactly: refused before any kernel starts
    (prepare-only proves no kernel is needed to find out)."""
    src = tmp_path / "r.ipynb"
    nbformat.write(make_notebook([("code", "a <- 1", "parameters")], "ir", "R"), src)
    before = src.read_text()
    proc = run_cli(src, tmp_path / "out.ipynb", "--prepare-only", "-p", "a", str(2**60 + 1))
    check_one_line_failure(proc, 4, "R cannot represent")
    assert src.read_text() == before and not (tmp_path / "out.ipynb").exists()


@pytest.mark.parametrize(
    "make, code, words",
    [
        (lambda tmp: tmp / "missing.ipynb", 6, "no such file"),
        (lambda tmp: tmp, 6, "directory"),
        (lambda tmp: tmp / "sub" / "missing.ipynb", 6, "no such file"),
    ],
)
def test_missing_or_not_a_file(run_cli, tmp_path, make, code, words):
    proc = run_cli(make(tmp_path), tmp_path / "out.ipynb")
    check_one_line_failure(proc, code, words)
    assert not (tmp_path / "out.ipynb").exists()


@pytest.fixture
def http_root(tmp_path):
    """A static file server on 127.0.0.1 serving tmp_path/www, stopped after the test."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kw):
            super().__init__(*args, directory=str(root), **kw)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_that_404s(run_cli, tmp_path, http_root):
    root, base = http_root
    (root / "ok.ipynb").write_text(VALID_TEXT)
    proc = run_cli(f"{base}/missing.ipynb", tmp_path / "out.ipynb")
    check_one_line_failure(proc, 6, "not found")
    assert not (tmp_path / "out.ipynb").exists()
    # the same server serves a real notebook: the 404 was about the file, not the transport
    assert run_cli(f"{base}/ok.ipynb", tmp_path / "out.ipynb").returncode == 0


def test_nbformat3_is_upgraded_by_the_cli(run_cli, tmp_path):
    src = tmp_path / "v3.ipynb"
    src.write_text(v3_notebook())
    before = src.read_text()
    proc = run_cli(src, tmp_path / "out.ipynb")
    assert proc.returncode == 0, proc.stderr
    out = read_nb(tmp_path / "out.ipynb")
    assert out["nbformat"] == 4 and out["cells"][0]["outputs"][0]["text"] == "42\n"
    assert src.read_text() == before


def test_huge_notebook_runs(run_cli, tmp_path):
    """50 MB of old outputs: read, validated, run (outputs replaced) and written back."""
    nb = make_notebook([("code", "a = 1", "parameters")] + ["print(a)"] * 50)
    blob = "y" * (1 << 20)  # 1 MiB of old output in each cell
    for cell in nb.cells[1:]:
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=blob)]
    src = tmp_path / "huge.ipynb"
    nbformat.write(nb, src)
    size, before = src.stat().st_size, digest(src)
    assert size > 50 * 10**6
    t0 = time.monotonic()
    proc = run_cli(src, tmp_path / "out.ipynb", "-p", "a", "7", timeout=240)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = read_nb(tmp_path / "out.ipynb")
    printed = ["".join(o["text"] for o in c["outputs"]) for c in out["cells"][2:]]
    assert printed == ["7\n"] * 50
    assert digest(src) == before
    print(f"huge notebook ({size / 1e6:.0f} MB): {took:.1f} s")


# -- parameter values filled into path templates ---------------------------------------------------
ESCAPES = {
    "two folders up": (["out/{name}.ipynb", "-p", "name", "../../x"], "'name'"),
    "an absolute path": (["out/{name}.ipynb", "-p", "name", "@TMP@/escaped"], "'name'"),
    "a URL": (["out/{name}.ipynb", "-p", "name", "s3://bucket/x"], "'name'"),
    "a value with a format spec": (["out/{n:>4}.ipynb", "-p", "n", "./.."], "'n'"),
    "a key of a mapping": (["out/{d[k]}.ipynb", "-y", "d: {k: ..}"], "'d'"),
    "two values making '..'": (["out/{a}{b}/x.ipynb", "-p", "a", ".", "-p", "b", "."], "'a'"),
    "an empty leading value": (["{a}/x.ipynb", "-r", "a", ""], "'a'"),
    "a value making a scheme": (["{p}//bucket/x.ipynb", "-r", "p", "s3:"], "'p'"),
    "the output is the input": (["{name}.ipynb", "-p", "name", "in"], "is the input notebook"),
    "the HTML report": (["o.ipynb", "--html", "r/{name}.html", "-p", "name", ".."], "'name'"),
    "the HTML report is the input": (
        ["o.ipynb", "--html", "{name}.ipynb", "-p", "name", "in"],
        "is the input notebook",
    ),
    "the run record": (["o.ipynb", "--run-record", "{name}.json", "-p", "name", "../r"], "'name'"),
    "the run record is the input": (
        ["o.ipynb", "--run-record", "{name}.ipynb", "-p", "name", "in"],
        "is the input notebook",
    ),
}


def marker_kernel(sandbox: Sandbox, marker: Path) -> str:  # noqa: F811
    """A python kernel that leaves ``marker`` behind when it is launched."""
    import sys

    code = (
        f"open({str(marker)!r}, 'w').close(); "
        "from ipykernel.kernelapp import launch_new_instance; launch_new_instance()"
    )
    sandbox.add_kernelspec("marker", [sys.executable, "-c", code, "-f", "{connection_file}"])
    return "marker"


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", list(ESCAPES))
def test_parameter_values_cannot_move_a_templated_path(run_cli, sandbox, tmp_path, case):  # noqa: F811
    """A value filled into an output, HTML or run-record path stays one name in the template's
    folder: a separator, '..', a URL scheme, an empty or '.' path part, or a path that is the
    input notebook is refused with exit 4, naming the parameter, before any kernel starts;
    nothing is written anywhere."""
    args, words = ESCAPES[case]
    args = [arg.replace("@TMP@", str(tmp_path)) for arg in args]
    marker = tmp_path / "kernel-started"
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    nbformat.write(make_notebook(["1"], marker_kernel(sandbox, marker)), work / "in.ipynb")
    before = files_under(tmp_path)
    proc = run_cli("in.ipynb", *args, cwd=work)
    check_one_line_failure(proc, 4, words)
    assert "--allow-path-values" in proc.stderr or "input notebook" in proc.stderr
    assert files_under(tmp_path) == before  # the input untouched, nothing written
    assert not marker.exists()


def test_allow_path_values_keeps_folder_templates(run_cli, tmp_path):
    """--allow-path-values: values may name folders (papermill's behaviour); a literal output
    path equal to the input is papermill's in-place run and still works."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "in.ipynb").write_text(VALID_TEXT)
    args = ("in.ipynb", "out/{name}.ipynb", "-p", "name", "../../x")
    proc = run_cli(*args, "--allow-path-values", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert read_nb(tmp_path / "a" / "x.ipynb").metadata.papermill.parameters == {"name": "../../x"}
    proc = run_cli("in.ipynb", "in.ipynb", "-p", "a", "5", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert read_nb(work / "in.ipynb").cells[-1].outputs[0]["text"] == "5\n"
