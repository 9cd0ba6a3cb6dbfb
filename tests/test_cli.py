"""The command line in a subprocess: papermill's options, piping, exit codes, signals."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import COMPLEX_PARAMETERS, PARAMILL, read_nb, run_cli

pytestmark = pytest.mark.usefixtures("no_orphan_kernels")

PARAMS = ("code", "a = 1\nb = 'x'\nc = None", "parameters")
SHOW = "print(repr(a), repr(b), repr(c))"


def shown(path) -> str:
    return read_nb(path)["cells"][2]["outputs"][0]["text"].strip()


def test_papermill_form_with_casting(write_nb, tmp_path):
    src = write_nb([PARAMS, ("code", "x = 0"), SHOW])
    out = tmp_path / "out.ipynb"
    proc = run_cli(src, out, "-p", "a", "2019", "-p", "b", "2019-11-07", "-p", "c", "True")
    assert proc.returncode == 0, proc.stderr
    assert "Input Notebook:  " in proc.stderr and "Output Notebook: " in proc.stderr
    assert read_nb(out)["cells"][3]["outputs"][0]["text"] == "2019 '2019-11-07' True\n"


def test_all_parameter_sources_and_precedence(write_nb, tmp_path):
    src = write_nb([PARAMS, SHOW])
    pfile = tmp_path / "p.json"
    pfile.write_text(json.dumps({"a": "file", "b": "file", "c": "file"}))
    b64 = base64.b64encode(b"a: b64\nb: b64\nc: b64").decode()
    out = tmp_path / "out.ipynb"
    proc = run_cli(
        src, out, "-r", "a", "5", "-p", "a", "6", "-y", "a: 7\nb: yaml", "-f", pfile, "-b", b64
    )
    assert proc.returncode == 0, proc.stderr
    assert shown(out) == "'5' 'yaml' 'file'"


def test_inject_paths(write_nb, tmp_path):
    src = write_nb([PARAMS, "print(PAPERMILL_INPUT_PATH, PAPERMILL_OUTPUT_PATH)"])
    out = tmp_path / "out.ipynb"
    assert run_cli(src, out, "--inject-paths").returncode == 0
    assert read_nb(out)["cells"][2]["outputs"][0]["text"] == f"{src} {out}\n"


def test_stdin_to_stdout(write_nb):
    src = write_nb([PARAMS, SHOW])
    proc = run_cli("-", "-", "-p", "a", "3", input=src.read_text())
    assert proc.returncode == 0, proc.stderr
    nb = json.loads(proc.stdout)  # stdout holds exactly one notebook
    assert nb["cells"][2]["outputs"][0]["text"] == ["3 'x' None\n"]
    assert proc.stderr == ""  # logging drops to ERROR when the notebook goes to stdout


def test_piped_stdin_without_dash_is_a_clear_error(write_nb, tmp_path):
    src = write_nb([PARAMS])
    proc = run_cli(tmp_path / "new.ipynb", input=src.read_text())
    assert proc.returncode == 2 and "name it '-'" in proc.stderr


def test_no_output_path_writes_nothing(write_nb, tmp_path):
    src = write_nb(["print(1)"])
    before = set(os.listdir(tmp_path))
    proc = run_cli(src, cwd=tmp_path, input="")
    assert proc.returncode == 0, proc.stderr
    assert set(os.listdir(tmp_path)) == before and proc.stdout == ""


def test_help_notebook(write_nb):
    src = write_nb(
        [
            (
                "code",
                "msg = None\na: float = 2.25  # Variable a\n"
                "b: List[str] = ['Hello','World']  # Nice list\nc: 'NoneType' = None",
                "parameters",
            )
        ]
    )
    proc = run_cli("--help-notebook", src)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "Usage: paramill [OPTIONS] NOTEBOOK_PATH [OUTPUT_PATH]",
        "",
        f"Parameters inferred for notebook '{src}':",
        "  msg: Unknown type (default None)",
        "  a: float (default 2.25)         Variable a",
        "  b: List[str] (default ['Hello','World'])",
        "                                  Nice list",
        "  c: NoneType (default None)      ",
    ]
    none = run_cli("--help-notebook", write_nb(["1"], name="n.ipynb"))
    assert none.returncode == 1 and "No cell tagged 'parameters'" in none.stdout


def test_help_notebook_keeps_every_line_that_parses(write_nb, tmp_path):
    """papermill's own example (spec 1.6): one unparsable line no longer hides the rest."""
    src = write_nb([("code", COMPLEX_PARAMETERS, "parameters"), "print(a, b)"])
    proc = run_cli("--help-notebook", src)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[3:] == [
        "  msg: Unknown type (default None)",
        "  a: float (default 2.25)         Variable a",
        "  b: List[str] (default ['Hello','World'])",
        "                                  Nice list",
        "  c: NoneType (default None)      ",
    ]
    assert proc.stderr == "Unable to parse line 14 '= 2'.\n"
    # the run knows what the cell declares (the cell itself cannot run: prepare only)
    out = tmp_path / "out.ipynb"
    proc = run_cli(src, out, "-p", "a", "3.5", "-y", "b: [x]", "--strict", "--prepare-only")
    assert proc.returncode == 0, proc.stderr
    assert read_nb(out).cells[1].source == "# Parameters\nb = [\"x\"]\na = 3.5\n"


def test_shell_escape_in_parameters_cell_hides_no_parameter(write_nb, tmp_path):
    src = write_nb([("code", "files = !ls\nn = 1  # how many", "parameters"), "print(n)"])
    assert run_cli("--help-notebook", src).stdout.splitlines()[3:] == [
        "  n: Unknown type (default 1)     how many"
    ]
    out = tmp_path / "out.ipynb"
    proc = run_cli(src, out, "-p", "n", "2", "--strict")
    assert proc.returncode == 0, proc.stderr
    assert "unknown" not in proc.stderr and "Unable to parse line 1 'files = !ls'." in proc.stderr
    assert read_nb(out).cells[2].outputs[0].text == "2\n"


def test_version_and_help():
    proc = run_cli("--version")
    assert proc.returncode == 0 and " from " in proc.stdout and "cli.py" in proc.stdout
    helped = run_cli("--help")
    assert helped.returncode == 0 and "--parameters_raw" in helped.stdout
    assert "Exit codes" in helped.stdout


@pytest.mark.parametrize(
    "args, code",
    [
        (["--log-level", "LOUD"], 2),
        (["--execution-timeout", "soon"], 2),
        (["--no-such-option"], 2),
    ],
)
def test_usage_errors(write_nb, args, code):
    assert run_cli(write_nb(["1"]), *args).returncode == code


def test_missing_argument(tmp_path):
    proc = run_cli("--help-notebook", cwd=tmp_path)
    assert proc.returncode == 2 and "Missing argument" in proc.stderr


@pytest.mark.parametrize(
    "cells, extra, code, message",
    [
        (["1/0"], [], 1, "ZeroDivisionError: division by zero"),
        (["import time; time.sleep(30)"], ["--execution-timeout", "1"], 7, "timed out"),
        (["import time; time.sleep(30)"], ["--timeout", "2"], 8, "exceeded 2 s"),
        (["import os; os._exit(3)"], [], 138, "died"),
        (["1"], ["-k", "no-such-kernel"], 5, "no kernel named 'no-such-kernel'"),
        ([PARAMS], ["-p", "bad name", "1"], 4, "not a valid Python identifier"),
        ([PARAMS], ["-y", "[1, 2]"], 4, "mapping"),
        ([PARAMS], ["-b", "%%%"], 4, "base64"),
        ([PARAMS], ["-f", "/nonexistent.yaml"], 4, "no such file"),
        ([PARAMS], ["--strict", "-p", "zz", "1"], 4, "unknown parameter 'zz'"),
        ([PARAMS], ["--strict", "-p", "a", "text"], 4, "expected int"),
    ],
)
def test_exit_codes(write_nb, tmp_path, cells, extra, code, message):
    out = tmp_path / "out.ipynb"
    proc = run_cli(write_nb(cells), out, *extra)
    assert proc.returncode == code, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("paramill: error: ") and message in last, proc.stderr
    assert "Traceback (most recent call last)" not in proc.stderr.split("\n---")[0]
    if code in (1, 7, 8, 138):
        saved = read_nb(out)
        assert "papermill-error-cell-tag" in saved["cells"][0]["metadata"]["tags"]


@pytest.mark.parametrize(
    "content, code",
    [("{nope", 3), ("", 3), ('{"cells": 1}', 3)],
)
def test_bad_input_exit_codes(tmp_path, content, code):
    src = tmp_path / "bad.ipynb"
    src.write_text(content)
    proc = run_cli(src, tmp_path / "o.ipynb")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code and lines[-1].startswith("paramill: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and src.read_text() == content


def test_missing_input_and_directory(tmp_path):
    proc = run_cli(tmp_path / "missing.ipynb", tmp_path / "o.ipynb")
    assert proc.returncode == 6 and "no such file" in proc.stderr
    assert run_cli(tmp_path, tmp_path / "o.ipynb").returncode == 6


def test_log_output_and_files(write_nb, tmp_path):
    src = write_nb(["print('hello-out')", "import sys; print('hello-err', file=sys.stderr)"])
    proc = run_cli(
        src,
        tmp_path / "o.ipynb",
        "--log-output",
        "--stdout-file",
        tmp_path / "so.txt",
        "--stderr-file",
        tmp_path / "se.txt",
    )
    assert proc.returncode == 0
    assert "Executing Cell 1---------------------------------------" in proc.stderr
    assert "Ending Cell 1------------------------------------------" in proc.stderr
    assert "hello-out" in proc.stderr and "hello-err" in proc.stderr
    assert (tmp_path / "so.txt").read_text() == "hello-out\n"
    assert (tmp_path / "se.txt").read_text() == "hello-err\n"


def test_prepare_only_report_mode_cwd(write_nb, tmp_path):
    src = write_nb([PARAMS, "import os; print(os.getcwd())"])
    out = tmp_path / "o.ipynb"
    assert run_cli(src, out, "--prepare-only", "-p", "a", "9").returncode == 0
    nb = read_nb(out)
    assert nb["cells"][1]["source"] == "# Parameters\na = 9\n" and not nb["cells"][2]["outputs"]
    work = tmp_path / "w"
    work.mkdir()
    assert run_cli(src, "o2.ipynb", "--cwd", work, "--report-mode", cwd=tmp_path).returncode == 0
    nb = read_nb(tmp_path / "o2.ipynb")  # relative output resolved against the caller's cwd
    assert nb["cells"][1]["outputs"][0]["text"] == f"{work}\n"
    assert nb["cells"][1]["metadata"]["jupyter"]["source_hidden"] is True


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_cancels_saves_and_cleans_up(write_nb, tmp_path, sig, code):
    src = write_nb(["print('started', flush=True)", "import time; time.sleep(60)", "1"])
    out = tmp_path / "o.ipynb"
    proc = subprocess.Popen([*PARAMILL, str(src), str(out)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the long cell is running
        try:
            if read_nb(out)["cells"][1]["metadata"]["papermill"]["status"] == "running":
                break
        except (OSError, ValueError, KeyError, IndexError):
            pass
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the long cell never showed as running in the saved output")
    sent = time.monotonic()
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert time.monotonic() - sent < 10
    assert "cancelled" in stderr.strip().splitlines()[-1] or "interrupted" in stderr
    nb = read_nb(out)
    assert "cancelled" in nb["cells"][0]["source"]
    # banner, cell 0, anchor, cell 1 (cancelled), cell 2 (never ran)
    assert nb["cells"][3]["metadata"]["papermill"]["status"] == "failed"
    assert nb["cells"][4]["metadata"]["papermill"]["status"] == "pending"


def test_python_m_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "paramill", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.startswith("0.")
