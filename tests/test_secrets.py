"""Secrets reach the kernel and nothing else: every file and stream a run produces is grepped."""

from __future__ import annotations

import hashlib
import io
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
    StreamScrubber,
    check_secrets,
    from_environment,
    redacted_logs,
    scrub_notebook,
    scrub_text,
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
    bad_name = run_cli(source, tmp_path / "o.ipynb", "-s", "not a name", "v-long")
    assert bad_name.returncode == 4 and "not a valid Python identifier" in bad_name.stderr
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


# -- what the kernel process writes itself, escaped and split forms, files, short secrets -------
# no space or backslash: `echo $0` prints it as it is
RAW = "tok-Zq9x7-s3cr3t-raw"

KERNEL_WRITES = [
    ("code", "token = ''\nregion = 'x'", "parameters"),
    "import os, subprocess\n"
    "os.write(1, f'fd1 {token}\\n'.encode())\n"
    "os.write(2, f'fd2 {token}\\n'.encode())",
    "subprocess.run(['sh', '-c', 'echo child $0; echo child-err $0 >&2', token])",
]


def _files_holding(folder: Path, value: str) -> list[str]:
    return [
        str(p)
        for p in folder.rglob("*")
        if p.is_file() and value in p.read_text(encoding="utf-8", errors="replace")
    ]


def test_what_the_kernel_process_writes_is_scrubbed(write_nb, tmp_path: Path) -> None:
    """The kernel's own fds 1 and 2 (what ipykernel echoes there, a child process) go through
    paramill: scrubbed, on its stderr (the log), never raw on the console or in a file."""
    source = write_nb(KERNEL_WRITES)
    out = tmp_path / "out"
    done = run_cli(
        source, out / "result.ipynb", "--secret-env", "token=CALLER_TOKEN",
        "--stdout-file", out / "stdout.txt", "--stderr-file", out / "stderr.txt",
        env={"CALLER_TOKEN": RAW}, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    # no --log-output: these lines can only come from the kernel process's pipes
    for line in ("fd1 <redacted>", "fd2 <redacted>", "child <redacted>", "child-err <redacted>"):
        assert line in lines, done.stderr
    assert done.stdout == ""
    assert RAW not in done.stderr
    assert _files_holding(tmp_path, RAW) == []


@pytest.mark.parametrize("fork", ["--fork-server", "--no-fork-server"])
def test_sweep_kernels_write_nothing_raw(write_nb, tmp_path: Path, fork: str) -> None:
    source = write_nb(KERNEL_WRITES)
    done = run_cli(
        "sweep", source, tmp_path / "o_{region}.ipynb", "--grid", "region=a,b",
        "--workers", "2", "--secret-env", "token=CALLER_TOKEN", fork,
        env={"CALLER_TOKEN": RAW},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    for region in ("a", "b"):  # the kernel's stderr, named by its run (stdout is INFO: hidden)
        assert f"[region={region}] fd2 <redacted>" in lines, done.stderr
        assert f"[region={region}] child-err <redacted>" in lines, done.stderr
    assert RAW not in done.stdout + done.stderr
    assert _files_holding(tmp_path, RAW) == []


def test_the_kernel_process_cannot_write_into_the_notebook_on_stdout(write_nb) -> None:
    source = write_nb(["import os\nos.write(1, b'not a notebook\\n')"])
    done = run_cli(source, "-")
    assert done.returncode == 0, done.stderr
    nb = nbformat.reads(done.stdout, as_version=4)  # stdout holds the notebook and nothing else
    assert nb.cells[0].execution_count == 1


def test_escaped_forms_are_scrubbed() -> None:
    import html
    from urllib.parse import quote, quote_plus

    value = "a&b<c>\"d'e f/g+h\\i\u00e9"
    forms = {
        "printed": value,
        "HTML text and attribute": html.escape(value),
        "HTML text": html.escape(value, quote=False),
        "URL path": quote(value),
        "URL component": quote(value, safe=""),
        "form field": quote_plus(value),
        "JSON": json.dumps(value)[1:-1],
        "JSON, UTF-8": json.dumps(value, ensure_ascii=False)[1:-1],
        "repr": repr(value)[1:-1],
        "bytes repr": repr(value.encode())[2:-1],
        "repr in JSON": json.dumps(repr(value)[1:-1])[1:-1],
    }.values()
    for form in forms:
        assert scrub_text(f"[{form}]", [value]) == f"[{REDACTED}]", form


def test_a_value_split_across_writes_is_caught() -> None:
    text = f"one {SECRET} two {json.dumps(SECRET)}\nthree {SECRET}"
    expected = scrub_text(text, [SECRET])
    assert SECRET not in expected
    for lines in (False, True):
        for a in range(len(text)):
            for b in (a, (a + 7) % len(text), (a * 5) % len(text)):
                pieces = [text[: min(a, b)], text[min(a, b) : max(a, b)], text[max(a, b) :]]
                scrubber = StreamScrubber([SECRET], lines=lines)
                sent = [scrubber.feed(p) for p in pieces]
                assert "".join(sent) + scrubber.close() == expected, pieces
                if lines:  # whole lines only, until the end
                    assert all(s.endswith("\n") for s in sent if s), sent
    target = io.StringIO()
    writer = ScrubbingWriter(target, [SECRET])
    for piece in (text[:10], text[10:12], text[12:]):
        writer.write(piece)
    writer.close()
    assert target.getvalue() == expected


SPLIT = [
    ("code", "token = ''", "parameters"),
    "import sys\n"
    "print(token[:6], end='', flush=True)\n"
    "print(token[6:], flush=True)\n"
    "print(token[:9], end='', file=sys.stderr, flush=True)\n"
    "print(token[9:], file=sys.stderr)",
    "print('across cells:', token[:6], end='', flush=True)",
    "print(token[6:])",
    "import html\nfrom IPython.display import HTML, display\n"
    "display(HTML('<i>' + html.escape(token) + '</i>'))",
]


def test_values_printed_in_pieces_or_escaped(write_nb, tmp_path: Path) -> None:
    source = write_nb(SPLIT)
    out = tmp_path / "out"
    secret = '<tok>&"Zq9x7"-s3cr3t'  # changed by html.escape
    done = run_cli(
        source, out / "result.ipynb", "--secret-env", "token=CALLER_TOKEN",
        "--stdout-file", out / "stdout.txt", "--stderr-file", out / "stderr.txt",
        "--log-output", "--html", out / "report.html",
        env={"CALLER_TOKEN": secret}, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    nb = nbformat.read(out / "result.ipynb", as_version=4)
    # one cell's pieces of one stream are one output, scrubbed whole
    assert [(o.name, o.text) for o in nb.cells[2].outputs] == [
        ("stdout", f"{REDACTED}\n"),
        ("stderr", f"{REDACTED}\n"),
    ]
    assert nb.cells[-1].outputs[0].data["text/html"] == f"<i>{REDACTED}</i>"
    # stdout/stderr files and the log are continuous streams: no value whole, across cells too
    assert (out / "stdout.txt").read_text() == f"{REDACTED}\nacross cells: {REDACTED}\n"
    assert (out / "stderr.txt").read_text() == f"{REDACTED}\n"
    assert f"across cells: {REDACTED}" in done.stderr.splitlines()
    import html

    for form in (secret, html.escape(secret)):
        assert form not in done.stderr.replace("\n", "")
        assert _files_holding(out, form) == [], form


def test_secret_file(write_nb, tmp_path: Path) -> None:
    source = write_nb(
        [
            ("code", "token = ''", "parameters"),
            "import hashlib\nprint(hashlib.sha256(token.encode()).hexdigest())",
        ]
    )
    (tmp_path / "token.txt").write_text(RAW + "\n")
    done = run_cli(source, tmp_path / "o.ipynb", "--secret-file", f"token={tmp_path}/token.txt")
    assert done.returncode == 0, done.stderr
    nb = nbformat.read(tmp_path / "o.ipynb", as_version=4)
    # one trailing newline stripped: the kernel has the value itself
    assert nb.cells[2].outputs[0].text == hashlib.sha256(RAW.encode()).hexdigest() + "\n"
    assert _files_holding(tmp_path, RAW) == [str(tmp_path / "token.txt")]
    missing = run_cli(source, tmp_path / "m.ipynb", "--secret-file", "token=/no/such/file")
    assert missing.returncode == 4
    assert missing.stderr == (
        "paramill: error: --secret-file token=/no/such/file: No such file or directory\n"
    )
    malformed = run_cli(source, tmp_path / "m.ipynb", "--secret-file", "token")
    assert malformed.returncode == 4 and "expected NAME=PATH" in malformed.stderr
    assert not (tmp_path / "m.ipynb").exists()
    help_text = " ".join(run_cli("run", "--help").stdout.split())
    assert "prefer --secret-env or --secret-file" in help_text


def test_short_secrets_are_refused_and_metadata_is_never_scrubbed(
    write_nb, tmp_path: Path
) -> None:
    source = write_nb([("code", "key = ''", "parameters"), "print(len(key))"])
    short = run_cli(source, tmp_path / "short.ipynb", "-s", "key", "py")
    assert short.returncode == 4
    assert "shorter than 6 characters" in short.stderr and "--allow-short-secrets" in short.stderr
    assert not (tmp_path / "short.ipynb").exists()
    with pytest.raises(ParameterError, match="shorter than 6"):
        paramill.run(source, None, secrets={"key": "py"})
    allowed = run_cli(source, tmp_path / "a.ipynb", "-s", "key", "py", "--allow-short-secrets")
    assert allowed.returncode == 0, allowed.stderr
    # a secret that is also a kernel or language name leaves the metadata naming them alone
    result = paramill.run(source, tmp_path / "b.ipynb", secrets={"key": "python3"})
    assert result.ok
    for path in (tmp_path / "a.ipynb", tmp_path / "b.ipynb"):
        meta = nbformat.read(path, as_version=4).metadata
        assert meta.kernelspec.name == "python3"
        assert meta.language_info.name == "python"
        assert meta.language_info.pygments_lexer == "ipython3"
    nb = nbformat.read(tmp_path / "b.ipynb", as_version=4)
    assert nb.cells[2].outputs[0].text == "7\n"


def test_languages_without_a_kernel_here_remove_the_variable_too() -> None:
    """Kernels this machine does not have: the injected cell removes the variable it read
    (the others are run in test_secrets_languages.py)."""
    from paramill.parameters import get_translator
    from paramill.secrets import secret_source

    removal = {
        "julia": 'pop!(ENV, "PARAMILL_SECRET_tok")',
        "matlab": "setenv('PARAMILL_SECRET_tok', '');",
        "csharp": 'System.Environment.SetEnvironmentVariable("PARAMILL_SECRET_tok", null);',
        "fsharp": 'System.Environment.SetEnvironmentVariable("PARAMILL_SECRET_tok", null)',
        "powershell": '[Environment]::SetEnvironmentVariable("PARAMILL_SECRET_tok", $Null)',
        # the JVM's copy of the environment, and the process's own one
        "scala": 'removeIf(_.toString == n)',
    }
    languages = {"csharp": "C#", "fsharp": "F#"}
    for language, code in removal.items():
        source = secret_source(get_translator(None, languages.get(language, language)), ["tok"])
        assert code in source, source
    assert '"/proc/self/mem"' in secret_source(get_translator(None, "scala"), ["tok"])
