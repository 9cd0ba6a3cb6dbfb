"""Parameters injected into real kernels and printed back, and failing cells failing the run.

Kernels: Python (ipykernel), R (ir), Bash (bash_kernel), Octave (octave_kernel), JavaScript
(ijavascript), TypeScript (tslab) and, in the slow tier, Scala (Apache Toree). They are
installed by .ci/deps/kernels.sh. Each notebook is run end to end with
``paramill.execute_notebook``: the author's defaults cell (tagged ``parameters``), the injected
cell, then a cell that prints every variable as JSON, which is compared with the values sent.
"""

from __future__ import annotations

import json
import math
import re
import time

import nbformat
import pytest

import paramill
from paramill.errors import ExecutionError, KernelError
from tests.conftest import make_notebook, read_nb, run_cli

# every kernel (and its children) is gone once a run returns, whatever the language
pytestmark = [pytest.mark.kernels, pytest.mark.usefixtures("no_orphan_kernels")]


PARAMS = {
    "s_quotes": "He said \"hi\" & 'bye' \\ C:\\users\\new\\x41 $HOME `id` %d %s {x} ${y} "
    "wow! !! !$ \\n",
    "s_multi": "line1\nline2\ttab ünïcødé € 😀",
    # control characters followed by hex digits: Octave's \x escape eats every one of them
    "s_ctrl": "\x01beef\x1f0\x7fF",
    "n_int": 42,
    "n_neg": -7,
    "n_big": 2**40,
    "x_float": 3.14,
    "x_exp": 1.5e-10,
    "b_true": True,
    "b_false": False,
    "nothing": None,
    "items": [1, "two", 3.5, True, None],
    "cfg": {"a": 1, "b": 'x"y', "nested": {"k": [1, 2]}, "flag": False},
}
NAMES = list(PARAMS)
MARK = "@@"

# What each kernel's defaults cell says (the values it must NOT print back).
DEFAULTS = {
    "python3": "\n".join(f"{n} = 0" for n in NAMES),
    "ir": "\n".join(f"{n} <- 0" for n in NAMES),
    "bash": "\n".join(f"{n}=0" for n in NAMES),
    "octave": "\n".join(f"{n} = 0;" for n in NAMES),
    "javascript": "\n".join(f"var {n} = 0;" for n in NAMES),
    # tslab's `let` re-declares what the author declared, even with another type
    "tslab": "\n".join(f"let {n}: any = 0;" for n in NAMES),
    "toree_scala": "\n".join(f"val {n} = 0" for n in NAMES),
}

_SCALA_DUMP = r"""
def enc(v: Any): String = v match {
  case null | None => "null"
  case s: String => s.flatMap {
    case '"' => "\\\""
    case '\\' => "\\\\"
    case c if c < ' ' || c > '~' => "\\u%04x".format(c.toInt)
    case c => c.toString
  }.mkString("\"", "", "\"")
  case m: Map[_, _] =>
    m.map { case (k, x) => enc(k.toString) + ":" + enc(x) }.mkString("{", ",", "}")
  case s: Seq[_] => s.map(enc).mkString("[", ",", "]")
  case x => x.toString
}
"""

DUMPS = {
    "python3": f"import json\nprint({MARK!r} + json.dumps({{n: globals()[n] for n in {NAMES!r}}}))",
    "ir": f'cat("{MARK}", jsonlite::toJSON(list('
    + ", ".join(f"{n} = {n}" for n in NAMES)
    + '), auto_unbox = TRUE, null = "null", digits = NA), "\\n", sep = "")',
    # bash values are text: hand them to python as arguments (arrays with their lengths)
    "bash": "python3 -c 'import json, sys; print(\""
    + MARK
    + "\" + json.dumps(sys.argv[1:]))' "
    + " ".join(f'"${n}"' for n in NAMES[:-2])
    + ' "${#items[@]}" "${items[@]}" "${#cfg[@]}" "${!cfg[@]}" "${cfg[@]}"',
    "octave": "d = struct();\n"
    + "\n".join(f"d.{n} = {n};" for n in NAMES)
    + f'\ndisp(["{MARK}" jsonencode(d)])',
    "javascript": f'console.log("{MARK}" + JSON.stringify({{'
    + ", ".join(f"{n}: {n}" for n in NAMES)
    + "}))",
    # printed: Toree may send it after "idle"; the engine's late-output grace for toree* keeps it
    "toree_scala": _SCALA_DUMP
    + f'println("{MARK}" + enc(Map('
    + ", ".join(f'"{n}" -> {n}' for n in NAMES)
    + ")))",
}
DUMPS["tslab"] = DUMPS["javascript"]

LANGUAGES = {
    "python3": "python",
    "ir": "R",
    "bash": "bash",
    "octave": "octave",
    "javascript": "javascript",
    "tslab": "typescript",
    "toree_scala": "scala",
}


def _bash_expected() -> dict:
    """Bash holds text: numbers and booleans as their words, None as '', nested values as JSON."""

    def word(v):
        if v is None:
            return ""
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (dict, list)):
            return json.dumps(v)
        return str(v)

    expected = {n: word(v) for n, v in PARAMS.items() if n not in ("items", "cfg")}
    expected["items"] = [word(v) for v in PARAMS["items"]]
    expected["cfg"] = {k: word(v) for k, v in PARAMS["cfg"].items()}
    return expected


def _bash_decode(args: list[str]) -> dict:
    scalars = NAMES[:-2]
    got = dict(zip(scalars, args[: len(scalars)], strict=True))
    rest = args[len(scalars) :]
    count = int(rest[0])
    got["items"], rest = rest[1 : 1 + count], rest[1 + count :]
    count = int(rest[0])
    keys, values = rest[1 : 1 + count], rest[1 + count : 1 + 2 * count]
    got["cfg"] = dict(zip(keys, values, strict=True))
    return got


def _none_as(value, replacement):
    if value is None:
        return replacement
    if isinstance(value, list):
        return [_none_as(v, replacement) for v in value]
    if isinstance(value, dict):
        return {k: _none_as(v, replacement) for k, v in value.items()}
    return value


def expected_for(kernel: str) -> dict:
    if kernel == "bash":
        return _bash_expected()
    if kernel == "octave":
        return _none_as(PARAMS, [])  # Octave's "nothing" is the empty matrix
    return PARAMS


def equal(got, want) -> bool:
    """Equal as JSON values, floats compared to 1 ulp-ish (R and Octave print 15 digits)."""
    if isinstance(want, float) or isinstance(got, float):
        return (
            isinstance(got, (int, float))
            and not isinstance(got, bool)
            and math.isclose(got, want, rel_tol=1e-14)
        )
    if isinstance(want, dict):
        return (
            isinstance(got, dict)
            and got.keys() == want.keys()
            and all(equal(got[k], want[k]) for k in want)
        )
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(equal(g, w) for g, w in zip(got, want, strict=True))
        )
    return type(got) is type(want) and got == want


def notebook_path(tmp_path, kernel: str, cells: list) -> str:
    nb = make_notebook(cells, kernel, LANGUAGES[kernel])
    path = tmp_path / f"{kernel}.ipynb"
    nbformat.write(nb, path)
    return str(path)


def run(tmp_path, kernel: str, cells: list, parameters=None, **kw) -> nbformat.NotebookNode:
    return paramill.execute_notebook(
        notebook_path(tmp_path, kernel, cells),
        str(tmp_path / f"{kernel}-out.ipynb"),
        parameters=parameters,
        progress_bar=False,
        cwd=str(tmp_path),
        start_timeout=120,
        execution_timeout=120,
        kernel_env={"LANG": "C.UTF-8"},  # R prints <U+00FC> in a C locale
        **kw,
    )


def dumped(nb: nbformat.NotebookNode) -> object:
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    line = text[text.index(MARK) + len(MARK) :].splitlines()[0].rstrip("\r")
    return json.loads(line)


def check_round_trip(tmp_path, kernel: str) -> None:
    nb = run(tmp_path, kernel, [("code", DEFAULTS[kernel], "parameters"), DUMPS[kernel]], PARAMS)
    injected = nb.cells[1]
    assert injected.metadata.tags == ["injected-parameters"]
    got = dumped(nb)
    if kernel == "bash":
        got = _bash_decode(got)
    want = expected_for(kernel)
    mismatched = {n: (got.get(n), want[n]) for n in want if not equal(got.get(n), want[n])}
    assert not mismatched, f"{kernel} printed back other values: {mismatched}"


FAST_KERNELS = ["python3", "ir", "bash", "octave", "javascript", "tslab"]


@pytest.mark.parametrize("kernel", FAST_KERNELS)
def test_values_round_trip(tmp_path, kernel):
    check_round_trip(tmp_path, kernel)


# -- a failing cell fails the run in every kernel ------------------------------------------------
FAILING = {
    "python3": ("raise ValueError('boom')", "ValueError"),
    "ir": ("stop('boom')", "boom"),
    # not the last command: bash_kernel itself only sees the last one's status
    "bash": ("echo before\nfalse\necho after", "exit 1"),
    "octave": ("x = 1;\nerror('boom')\ndisp(2)", "boom"),
    "javascript": ("throw new Error('boom')", "boom"),
    # a type error: tslab replies 'error' with the message on stderr only
    "tslab": ("const n: number = 'text';", "is not assignable to type 'number'"),
    "toree_scala": ('throw new RuntimeException("boom")', "boom"),
}
AFTER = {
    "python3": "print('after')",
    "ir": "cat('after')",
    "bash": "echo after",
    "octave": "disp('after')",
    "javascript": "console.log('after')",
    "tslab": "console.log('after')",
    "toree_scala": 'println("after")',
}


def check_failure_fails_run(tmp_path, kernel: str) -> None:
    source, expected_text = FAILING[kernel]
    with pytest.raises(ExecutionError) as info:
        run(
            tmp_path,
            kernel,
            [("code", DEFAULTS[kernel], "parameters"), source, AFTER[kernel]],
            {"n_int": 1},
        )
    error = info.value
    assert error.cell_index == 2, error.message  # defaults, injected, failing, after
    out = read_nb(tmp_path / f"{kernel}-out.ipynb")  # with error banners added
    at = [c.source for c in out.cells].index(source)
    failing, after = out.cells[at], out.cells[at + 1]
    assert failing.metadata.papermill.status == "failed"
    assert after.outputs == [] and after.metadata.papermill.status == "pending"
    assert out.metadata.papermill.exception is True
    assert expected_text in f"{error.ename} {error.evalue} {json.dumps(failing.outputs)}"
    assert not (tmp_path / "octave-workspace").exists()


@pytest.mark.parametrize("kernel", FAST_KERNELS)
def test_failing_cell_fails_the_run(tmp_path, kernel):
    check_failure_fails_run(tmp_path, kernel)


def test_bash_failure_reports_the_command(tmp_path):
    with pytest.raises(ExecutionError) as info:
        run(tmp_path, "bash", ["ls /no/such/dir | cat; grep -q x /no/such/file\necho done"])
    assert info.value.ename == "BashCommandError"
    assert "grep -q x /no/such/file" in info.value.evalue and "exit 2" in info.value.evalue


def test_bash_expected_failures_do_not_fail(tmp_path):
    # the commands `set -e` would not stop at: conditions, ||, !
    nb = run(
        tmp_path,
        "bash",
        [
            "if grep -q x /no/such/file 2>/dev/null; then echo y; fi\n"
            "false || echo recovered\n! false\ncheck() { return 1; }\ncheck || true\necho end"
        ],
    )
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "recovered" in text and "end" in text and "[paramill]" not in text


def test_octave_error_without_parameters_and_no_workspace_file(tmp_path):
    with pytest.raises(ExecutionError) as info:
        run(tmp_path, "octave", ["undefined_function_xyz(1)"])
    assert info.value.ename == "OctaveError"
    assert "undefined" in info.value.evalue
    assert not (tmp_path / "octave-workspace").exists()


# -- -k and missing kernels ----------------------------------------------------------------------
def test_busy_kernel_that_skips_heartbeats_is_not_declared_dead(tmp_path):
    """IRkernel answers heartbeats only between cells: a cell longer than the liveness timeout
    is busy, not hung (its process is sleeping, not stopped), and must finish."""
    began = time.monotonic()
    nb = run(tmp_path, "ir", ["Sys.sleep(5); cat('slept')"], kernel_liveness_timeout=1)
    assert time.monotonic() - began > 5
    assert nb.cells[-1].outputs[0]["text"] == "slept"


def test_kernel_option_rewrites_the_kernelspec(tmp_path):
    nb = make_notebook([("code", "x <- 0", "parameters"), "cat(x * 2)"], "some-old-r", "R")
    nb.metadata.kernelspec.display_name = "Old R"
    src = tmp_path / "r.ipynb"
    nbformat.write(nb, src)
    out = paramill.execute_notebook(
        str(src), str(tmp_path / "out.ipynb"), {"x": 21}, kernel_name="ir", progress_bar=False
    )
    saved = read_nb(tmp_path / "out.ipynb")
    assert saved.metadata.kernelspec == {"name": "ir", "display_name": "R", "language": "R"}
    assert out.cells[2].outputs[0].text == "42"
    assert saved.metadata.language_info.name == "R"


def test_missing_kernel_lists_installed_ones(tmp_path):
    src = notebook_path(tmp_path, "ir", ["cat(1)"])
    with pytest.raises(KernelError) as info:
        paramill.execute_notebook(src, None, kernel_name="no-such-kernel", progress_bar=False)
    message = str(info.value)
    for name in ("ir", "bash", "octave", "javascript", "tslab", "python3"):
        assert re.search(rf"\b{name}\b", message), name  # a word: "ir" is also in "environment"
    assert "'no-such-kernel'" in message and "ipykernel install" in message

    proc = run_cli(src, tmp_path / "o.ipynb", "-k", "no-such-kernel")
    assert proc.returncode == KernelError.exit_code
    assert "installed:" in proc.stderr and re.search(r"\bir\b", proc.stderr)


def test_unrepresentable_value_stops_before_any_kernel(tmp_path):
    src = notebook_path(tmp_path, "ir", [("code", "x <- 0", "parameters"), "cat(x)"])
    proc = run_cli(src, tmp_path / "o.ipynb", "-p", "x", str(2**60))
    assert proc.returncode == 4
    assert "'x'" in proc.stderr and "R cannot represent" in proc.stderr
    assert "Executing notebook with kernel" not in proc.stderr


@pytest.mark.parametrize(
    "name, value, cell",
    [
        ("PROMPT_COMMAND", "touch {marker}", "echo hi"),
        ("PS4", "$(touch {marker})", "set -x; echo hi"),
    ],
)
def test_bash_special_variable_never_reaches_the_kernel(tmp_path, name, value, cell):
    """On a real bash_kernel these names run their value as code (before each prompt, with
    `set -x`): they are refused before any kernel starts."""
    marker = tmp_path / "pwned"
    src = notebook_path(tmp_path, "bash", [("code", "x=0", "parameters"), cell, "echo done"])
    proc = run_cli(
        src, tmp_path / "o.ipynb", "-p", name, value.format(marker=marker), "--cwd", tmp_path
    )
    assert proc.returncode == 4, proc.stderr
    assert f"parameter '{name}': {name} is a special Bash variable" in proc.stderr
    assert "Executing notebook with kernel" not in proc.stderr and not marker.exists()


# -- Scala: a 12-20 s kernel start, run once ------------------------------------------------------
@pytest.mark.slow
def test_scala_round_trip_and_failure(tmp_path):
    check_round_trip(tmp_path, "toree_scala")
    check_failure_fails_run(tmp_path, "toree_scala")


# -- output a kernel sends after reporting idle ---------------------------------------------------
def test_output_sent_after_idle_is_kept_within_the_grace(tmp_path):
    """Toree's habit, reproduced on ipykernel: a thread prints 1 s after the cell went idle."""
    late = "import threading\nthreading.Timer(1.0, lambda: print('late', flush=True)).start()"
    nb = run(tmp_path, "python3", [late, "x = 1"], late_output_grace=10.0)
    assert [o.get("text") for o in nb.cells[0].outputs] == ["late\n"]
    assert nb.cells[1].outputs == []


def test_late_output_grace_per_kernelspec(monkeypatch):
    from paramill.engine import late_output_grace_for

    monkeypatch.delenv("PARAMILL_LATE_OUTPUT_GRACE", raising=False)
    assert late_output_grace_for("apache_toree_scala") == 2.0
    assert late_output_grace_for("toree_scala") == 2.0
    assert late_output_grace_for("python3") == 0.0
    assert late_output_grace_for("apache_toree_scala", 0) == 0.0  # the engine option wins
    monkeypatch.setenv("PARAMILL_LATE_OUTPUT_GRACE", "0.5")
    assert late_output_grace_for("python3") == 0.5
    assert late_output_grace_for("apache_toree_scala", 3) == 3.0
