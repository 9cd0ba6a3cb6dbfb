"""Secrets reach the kernel and nothing else: every file and stream a run produces is grepped."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import nbformat
import pytest

import paramill
from paramill.errors import ParameterError
from paramill.parameters.translators import PythonTranslator, Translator
from paramill.secrets import (
    REDACTED,
    ScrubbingWriter,
    check_secrets,
    from_environment,
    redacted_logs,
    scrub_notebook,
)

from .conftest import make_notebook, run_cli

# quotes and a backslash: the value also appears JSON-escaped in .ipynb and run records
SECRET = 'tok-"Zq9\\x7-s3cr3t'

USES_SECRET = [
    ("code", "api_token = ''\nn = 1", "parameters"),
    "import hashlib, os, sys\n"
    "print('digest', hashlib.sha256(api_token.encode()).hexdigest())\n"
    "print('in env:', any(k.startswith('PARAMILL_SECRET_') for k in os.environ))\n"
    "print('printed:', api_token)\n"
    "print('stderr:', api_token, file=sys.stderr)\n"
    "api_token",  # an execute_result with its repr (escaped quotes and backslash)
    "from IPython.display import HTML, display\ndisplay(HTML(f'<b>{api_token}</b>'))",
]


def _leaks(paths: list[Path], texts: list[str]) -> list[str]:
    forms = {SECRET, json.dumps(SECRET)[1:-1], repr(SECRET)[1:-1], "s3cr3t"}
    found = [str(p) for p in paths if any(f in p.read_text(encoding="utf-8") for f in forms)]
    found += [f"stream {i}" for i, t in enumerate(texts) if any(f in t for f in forms)]
    return found


def test_secret_reaches_the_kernel_and_no_file_or_stream(write_nb, tmp_path: Path) -> None:
    source = write_nb(USES_SECRET)
    out = tmp_path / "out"
    done = run_cli(
        source,
        out / "result.ipynb",
        "-p",
        "n",
        "2",
        "--secret-env",
        "api_token=CALLER_TOKEN",
        "--html",
        out / "report.html",
        "--run-record",
        out / "run.json",
        "--stdout-file",
        out / "stdout.txt",
        "--stderr-file",
        out / "stderr.txt",
        "--log-output",
        "--log-level",
        "DEBUG",
        env={"CALLER_TOKEN": SECRET},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    nb = nbformat.read(out / "result.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for o in nb.cells[2].outputs)
    # the kernel had the real value, under the notebook's name, and not in its environment
    assert f"digest {hashlib.sha256(SECRET.encode()).hexdigest()}" in printed
    assert "in env: False" in printed
    assert f"printed: {REDACTED}" in printed
    injected = nb.cells[1]
    assert injected.metadata.tags == ["injected-parameters"]
    assert 'os").environ.pop("PARAMILL_SECRET_api_token")' in injected.source
    assert nb.metadata.papermill.parameters == {"n": 2, "api_token": REDACTED}
    record = json.loads((out / "run.json").read_text())
    assert record["parameters"] == {"n": 2, "api_token": REDACTED}
    assert (out / "stderr.txt").read_text() == f"stderr: {REDACTED}\n"
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".py")
    assert {p.name for p in files} >= {"result.ipynb", "report.html", "run.json", "stdout.txt"}
    assert _leaks(files, [done.stdout, done.stderr]) == []


def test_secret_in_a_failure_is_redacted_everywhere(write_nb, tmp_path: Path) -> None:
    source = write_nb([("code", "password = None", "parameters"), "raise ValueError(password)"])
    result = paramill.run(
        source,
        tmp_path / "failed.ipynb",
        secrets={"password": SECRET},
        html_output=tmp_path / "failed.html",
    )
    assert result.status == "failed" and result.error is not None
    assert result.error.evalue == REDACTED
    assert SECRET not in str(result.error)
    (tmp_path / "record.json").write_text(json.dumps(result.to_record()))
    assert result.to_record()["error"]["evalue"] == REDACTED
    files = [tmp_path / n for n in ("failed.ipynb", "failed.html", "record.json")]
    assert _leaks(files, [json.dumps(result.notebook)]) == []
    done = run_cli(source, tmp_path / "cli.ipynb", "-s", "password", SECRET)
    assert done.returncode == 1
    assert _leaks([tmp_path / "cli.ipynb"], [done.stdout, done.stderr]) == []
    assert REDACTED in done.stderr  # the traceback shown is the scrubbed one


def test_prepare_only_keeps_the_value_out(write_nb, tmp_path: Path) -> None:
    source = write_nb(["x = 1"])
    paramill.run(source, tmp_path / "p.ipynb", secrets={"key": SECRET}, prepare_only=True)
    assert _leaks([tmp_path / "p.ipynb"], []) == []


def test_bad_secrets_are_parameter_errors(write_nb, tmp_path: Path) -> None:
    source = write_nb(["x = 1"])
    both = run_cli(source, tmp_path / "o.ipynb", "-p", "key", "1", "-s", "key", "v")
    assert both.returncode == 4 and "both as a parameter and as a secret" in both.stderr
    unset = run_cli(source, tmp_path / "o.ipynb", "--secret-env", "key=PARAMILL_NOT_SET_VAR")
    assert unset.returncode == 4 and "PARAMILL_NOT_SET_VAR is not set" in unset.stderr
    malformed = run_cli(source, tmp_path / "o.ipynb", "--secret-env", "key")
    assert malformed.returncode == 4 and "NAME=ENVVAR" in malformed.stderr
    bad_name = run_cli(source, tmp_path / "o.ipynb", "-s", "not a name", "v")
    assert bad_name.returncode == 4
    assert not (tmp_path / "o.ipynb").exists()
    with pytest.raises(ParameterError, match="must be a string"):
        check_secrets({"k": 3}, {})
    assert from_environment({"a": "B"}, {"B": "v"}) == {"a": "v"}


def test_languages_without_secret_support_say_so(write_nb, tmp_path: Path) -> None:
    class NoSecrets(Translator):
        language = "Nolang"

    with pytest.raises(ParameterError, match="secrets are not supported for Nolang"):
        NoSecrets().render_secret("PARAMILL_SECRET_x")
    assert PythonTranslator().render_secret("V") == '__import__("os").environ.pop("V")'


def test_scrubbing_keeps_images_and_structure() -> None:
    nb = make_notebook(["x"])
    nb.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=f"a {SECRET} b\n"),
        nbformat.v4.new_output(
            "display_data", data={"image/png": "s3cr3tAAAA", "text/plain": [f"'{SECRET}'"]}
        ),
    ]
    scrub_notebook(nb, ["s3cr3t", SECRET])
    assert nb.cells[0].outputs[0].text == f"a {REDACTED} b\n"
    assert nb.cells[0].outputs[1].data["image/png"] == "s3cr3tAAAA"  # base64 left alone
    assert nb.cells[0].outputs[1].data["text/plain"] == [f"'{REDACTED}'"]


def test_writer_and_log_filter_redact(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    with open(tmp_path / "w.txt", "w") as f:
        writer = ScrubbingWriter(f, [SECRET])
        writer.write(f"x {SECRET}\n")
        writer.close()  # it holds back a tail until then (a value split across writes)
    assert (tmp_path / "w.txt").read_text() == f"x {REDACTED}\n"
    log = logging.getLogger("paramill")
    with caplog.at_level(logging.INFO, logger="paramill"), redacted_logs([SECRET]):
        log.info("value %s", SECRET)
    log.info("after %s", "plain")
    assert caplog.records[0].getMessage() == f"value {REDACTED}"
