"""Exact rendering of parameters in every language, refusals, lookup and R/Julia inspection.

Languages with no kernel installable here (Julia, C#, F#, PowerShell, MATLAB) are covered only by
these exact-output tests; the others are also run on real kernels in test_kernels_languages.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paramill.errors import ParameterError, UnsupportedLanguageError
from paramill.parameters import get_translator
from paramill.parameters.languages import (
    BashTranslator,
    CSharpTranslator,
    FSharpTranslator,
    JavaScriptTranslator,
    JuliaTranslator,
    MatlabTranslator,
    OctaveTranslator,
    PowerShellTranslator,
    RTranslator,
    ScalaTranslator,
    TypeScriptTranslator,
)
from paramill.parameters.translators import PythonTranslator
from paramill.secrets import secret_source
from tests.conftest import make_notebook, run_cli

VALUES = {
    "s": 'a "q" \\ é\n\t€😀',
    "n": 42,
    "big": 2**40,
    "f": 1.5e-10,
    "t": True,
    "no": None,
    "l": [1, "two", None],
    "d": {"a": 1, "b": [True]},
}


def cell(key: str, values: dict) -> str:
    return get_translator(key, None).codify(values)


# -- exact cells, one per language ----------------------------------------------------------------
EXPECTED = {
    "ir": """# Parameters
s = "a \\"q\\" \\\\ \\u00e9\\n\\t\\u20ac\\U0001f600"
n = 42
big = 1099511627776
f = 1.5e-10
t = TRUE
no = NULL
l = list(1, "two", NULL)
d = list("a" = 1, "b" = list(TRUE))
""",
    "julia": """# Parameters
s = "a \\"q\\" \\\\ \\u00e9\\n\\t\\u20ac\\U0001f600"
n = 42
big = 1099511627776
f = 1.5e-10
t = true
no = nothing
l = [1, "two", nothing]
d = Dict("a" => 1, "b" => [true])
""",
    "scala": """// Parameters
val s = "a \\"q\\" \\\\ \\u00e9\\n\\t\\u20ac\\ud83d\\ude00"
val n = 42
val big = 1099511627776L
val f = 1.5e-10
val t = true
val no = None
val l = Seq(1, "two", None)
val d = Map("a" -> 1, "b" -> Seq(true))
""",
    "matlab": """% Parameters
s = "a ""q"" \\ é" + char(10) + char(9) + "€😀";
n = 42;
big = 1099511627776;
f = 1.5e-10;
t = true;
no = NaN;
l = {1, "two", NaN};
d = containers.Map({'a', 'b'}, {1, {true}});
""",
    "octave": """% Parameters
s = "a \\"q\\" \\\\ é\\n\\t€😀";
n = 42;
big = 1099511627776;
f = 1.5e-10;
t = true;
no = [];
l = {1, "two", []};
d = struct('a', 1, 'b', {{true}});
""",
    ".net-csharp": """// Parameters
var s = "a \\"q\\" \\\\ \\u00e9\\n\\t\\u20ac\\U0001f600";
var n = 42;
var big = 1099511627776L;
var f = 1.5e-10;
var t = true;
var no = (object)null;
var l = new object[] { 1, "two", (object)null };
var d = new Dictionary<string,Object>{ { "a" , 1 }, { "b" , new [] { true } } };
""",
    ".net-fsharp": """(* Parameters *)
let s = "a \\"q\\" \\\\ \\u00e9\\n\\t\\u20ac\\U0001f600"
let n = 42
let big = 1099511627776L
let f = 1.5e-10
let t = true
let no = None
let l = [ box (1); box ("two"); box (None) ]
let d = [ ("a", 1 :> IComparable); ("b", [ true ] :> IComparable) ] |> Map.ofList
""",
    ".net-powershell": """# Parameters
$s = "a `"q`" \\ é`n`t€😀"
$n = 42
$big = 1099511627776
$f = 1.5e-10
$t = $True
$no = $Null
$l = @(1, "two", $Null)
$d = @{"a" = 1
 "b" = @($True)}
""",
    "bash": """# Parameters
s=$'a "q" \\\\ é\\n\\t€😀'
n=42
big=1099511627776
f=1.5e-10
t=true
no=
unset -v l; l=(1 two '')
unset -v d; declare -A d=([a]=1 [b]='[true]')
""",
    "javascript": """// Parameters
var s = "a \\"q\\" \\\\ \\u00e9\\n\\t\\u20ac\\ud83d\\ude00";
var n = 42;
var big = 1099511627776;
var f = 1.5e-10;
var t = true;
var no = null;
var l = [1, "two", null];
var d = {"a": 1, "b": [true]};
""",
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_exact_cell(key):
    assert cell(key, VALUES) == EXPECTED[key]


def test_typescript_is_javascript_with_let():
    js = cell("javascript", VALUES)
    expected = js.replace("\nvar ", "\nlet ")
    for key in ("tslab", "jslab", "typescript", "deno"):
        assert cell(key, VALUES) == expected


# -- papermill's own examples (spec 3.4), kept where papermill is right ----------------------------
@pytest.mark.parametrize(
    "translator, value, expected",
    [
        (RTranslator, {"foo": ["bar"]}, 'list("foo" = list("bar"))'),
        (MatlabTranslator, {"foo": '"bar"'}, 'containers.Map({\'foo\'}, {"""bar"""})'),
        (PowerShellTranslator, '{"foo": "bar"}', '"{`"foo`": `"bar`"}"'),
        (BashTranslator, "foo's apostrophe", "'foo'\"'\"'s apostrophe'"),
        (BashTranslator, "$dumb(shell)", "'$dumb(shell)'"),
        (BashTranslator, "shell ( is ) <dumb>", "'shell ( is ) <dumb>'"),
        (BashTranslator, "plain-word_1.0", "plain-word_1.0"),
        (BashTranslator, "", "''"),
        (ScalaTranslator, 2147483648, "2147483648L"),
        (ScalaTranslator, -2147483648, "-2147483648"),
        (CSharpTranslator, -2147483649, "-2147483649L"),
        (FSharpTranslator, 2**31, "2147483648L"),
        (PowerShellTranslator, float("nan"), "[double]::NaN"),
        (PowerShellTranslator, float("-inf"), "[double]::NegativeInfinity"),
        (JuliaTranslator, {"a": None}, 'Dict("a" => nothing)'),
        (CSharpTranslator, ["a", "b"], 'new [] { "a", "b" }'),
        (FSharpTranslator, [1, 2], "[ 1; 2 ]"),
    ],
)
def test_papermill_compatible_values(translator, value, expected):
    assert translator().render(value, "p") == expected


def test_papermill_cells_and_comments():
    assert MatlabTranslator().codify({"foo": "bar"}) == '% Parameters\nfoo = "bar";\n'
    assert FSharpTranslator().comment("") == "(*  *)"
    assert ScalaTranslator().comment("x") == "// x"
    # papermill strips R's leading underscores: R names cannot start with one
    assert RTranslator().codify({"___foo": 1}) == "# Parameters\nfoo = 1\n"


# -- where papermill's code is broken, paramill's is not ------------------------------------------
@pytest.mark.parametrize(
    "translator, value, expected",
    [
        # non-ASCII: \u escapes, never papermill's \xNN (a raw byte in R, a compile error in Scala)
        (RTranslator, "grün", '"gr\\u00fcn"'),
        (ScalaTranslator, "grün 😀", '"gr\\u00fcn \\ud83d\\ude00"'),
        (OctaveTranslator, "grün", '"grün"'),
        (CSharpTranslator, "é1", '"\\u00e91"'),  # \xe91 would be one character in C#
        # control characters other than \n \r \t
        (RTranslator, "a\x01", '"a\\u0001"'),
        # octal with three digits: Octave's \x takes every hex digit that follows ("\x01beef")
        (OctaveTranslator, "a\x01\x7f", '"a\\001\\177"'),
        (OctaveTranslator, "\x01beef\x1f7", '"\\001beef\\0377"'),
        (PowerShellTranslator, "a\x01", '"a`u{1}"'),
        # interpolation
        (JuliaTranslator, "$x", '"\\$x"'),
        (PowerShellTranslator, "$x `y`", '"`$x ``y``"'),
        (PowerShellTranslator, "\u201cq\u201d", '"`\u201cq`\u201d"'),
        # a TAB is lost when typed into bash_kernel's readline
        (BashTranslator, "a\tb", "$'a\\tb'"),
        (BashTranslator, "it's\n", "$'it\\'s\\n'"),
        (BashTranslator, "\x1b[0m", "$'\\x1b[0m'"),
        # MATLAB strings have no escapes at all
        (MatlabTranslator, "C:\\new", '"C:\\new"'),
        (MatlabTranslator, "\nx", '"" + char(10) + "x"'),
        (MatlabTranslator, "", '""'),
        # non-finite floats
        (RTranslator, float("nan"), "NaN"),
        (RTranslator, float("-inf"), "-Inf"),
        (JuliaTranslator, float("inf"), "Inf"),
        (ScalaTranslator, float("nan"), "Double.NaN"),
        (CSharpTranslator, float("inf"), "double.PositiveInfinity"),
        (FSharpTranslator, float("-inf"), "-infinity"),
        (JavaScriptTranslator, float("-inf"), "-Infinity"),
        (OctaveTranslator, float("inf"), "inf"),
        (BashTranslator, float("nan"), "nan"),
        # null / None
        (OctaveTranslator, None, "[]"),
        (CSharpTranslator, [None], "new object[] { (object)null }"),
        (BashTranslator, [None, "x"], "('' x)"),
        # dicts and nesting
        (OctaveTranslator, {"a b": 1}, "containers.Map({'a b'}, {1})"),
        (OctaveTranslator, {}, "struct()"),
        (OctaveTranslator, {"k": {"j": [1]}}, "struct('k', struct('j', {{1}}))"),
        (MatlabTranslator, {}, "containers.Map()"),
        (RTranslator, {}, "setNames(list(), character(0))"),
        (BashTranslator, {}, "declare -A ()"),
        (BashTranslator, {"a b": "it's"}, "declare -A (['a b']='it'\"'\"'s')"),
        (BashTranslator, [[1, 2], {"k": None}], "('[1, 2]' '{\"k\": null}')"),
        (CSharpTranslator, [], "new object[] {  }"),
        (CSharpTranslator, [1, 2.5], "new [] { 1, 2.5 }"),
        (CSharpTranslator, [[1]], "new object[] { new [] { 1 } }"),
        # a list of dicts is a Dictionary<string,Object>[], as papermill types it
        (
            CSharpTranslator,
            [{"a": 1}, {}],
            'new [] { new Dictionary<string,Object>{ { "a" , 1 } }, '
            "new Dictionary<string,Object>{  } }",
        ),
        (FSharpTranslator, {}, "Map.empty<string, IComparable>"),
        # integers past the 64-bit literals
        (ScalaTranslator, 2**64, 'BigInt("18446744073709551616")'),
        (CSharpTranslator, 2**64, 'System.Numerics.BigInteger.Parse("18446744073709551616")'),
        (FSharpTranslator, 2**64, "18446744073709551616I"),
        (PowerShellTranslator, 2**64, "[bigint]'18446744073709551616'"),
        (JavaScriptTranslator, 2**53, "9007199254740992"),
        # unescaped fallback types: papermill wrapped str(value) in quotes without escaping
        (RTranslator, {'a"b'}, '"{\'a\\"b\'}"'),
        (JavaScriptTranslator, ("x", 1), '["x", 1]'),
    ],
)
def test_fixed_renderings(translator, value, expected):
    assert translator().render(value, "p") == expected


@pytest.mark.parametrize(
    "translator, value, what",
    [
        (RTranslator, "a\0b", "NUL"),
        (BashTranslator, "a\0b", "NUL"),
        (RTranslator, 2**53 + 1, "exactly"),
        (OctaveTranslator, -(2**60), "exactly"),
        (MatlabTranslator, 2**60, "exactly"),
        (JavaScriptTranslator, 2**60, "exactly"),
        (TypeScriptTranslator, [2**60], "exactly"),
        (RTranslator, {"": 1}, "empty dict key"),
        (BashTranslator, {"": 1}, "empty dict key"),
        (RTranslator, "\ud800", "surrogate"),
        (ScalaTranslator, "\udc00", "surrogate"),
    ],
)
def test_unrepresentable_values_name_parameter_and_language(translator, value, what):
    with pytest.raises(ParameterError) as info:
        translator().codify({"my_param": value})
    message = str(info.value)
    assert "'my_param'" in message and translator.language in message and what in message


@pytest.mark.parametrize(
    "key, name",
    [
        ("ir", "1x"),
        ("ir", "if"),
        ("ir", "a b"),
        ("julia", "end"),
        ("scala", "val"),
        ("scala", "type"),
        ("matlab", "_x"),
        ("octave", "endif"),
        (".net-csharp", "class"),
        (".net-fsharp", "let"),
        (".net-powershell", "a-b"),
        ("bash", "a-b"),
        ("bash", "for"),
        ("javascript", "const"),
        ("tslab", "x.y"),
        ("python", "lambda"),
        ("octave", "x" * 64),
    ],
)
def test_invalid_names(key, name):
    translator = get_translator(key, None)
    with pytest.raises(ParameterError, match="not a valid"):
        translator.codify({name: 1})


@pytest.mark.parametrize(
    "name",
    ["PROMPT_COMMAND", "PS1", "PS2", "PS4", "IFS", "PATH", "BASH_ENV", "ENV", "SHELLOPTS",
     "BASHOPTS", "CDPATH", "GLOBIGNORE", "HOME", "HISTFILE", "LD_PRELOAD", "LC_ALL", "TMOUT"],
)  # fmt: skip
def test_bash_refuses_special_variables(name):
    """Assigning these runs the value as code or changes how every later command runs."""
    with pytest.raises(ParameterError, match=f"parameter '{name}': {name} is a special Bash"):
        BashTranslator().codify({name: "touch pwned"})
    with pytest.raises(ParameterError, match=f"'{name}'"):
        secret_source(BashTranslator(), [name])
    assert BashTranslator().codify({name.lower(): 1}).endswith(f"{name.lower()}=1\n")


@pytest.mark.parametrize(
    "key, name", [("ir", ".hidden"), ("ir", "a.b_c"), ("javascript", "$el"), ("julia", "ü")]
)
def test_valid_unusual_names(key, name):
    assert get_translator(key, None).codify({name: 1}).splitlines()[1].find(name) >= 0


# -- lookup ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kernel, language, cls",
    [
        ("ir", "R", RTranslator),
        ("sparkrkernel", None, RTranslator),
        ("sparkkernel", None, ScalaTranslator),
        ("toree_scala", "scala", ScalaTranslator),
        ("pysparkkernel", None, PythonTranslator),
        ("some-r-kernel", "R", RTranslator),
        (None, "r", RTranslator),
        ("octave", "octave", OctaveTranslator),
        ("matlab", None, MatlabTranslator),
        ("javascript", "javascript", JavaScriptTranslator),
        ("jslab", "javascript", TypeScriptTranslator),  # kernel name wins over language
        ("tslab", "typescript", TypeScriptTranslator),
        ("deno", "typescript", TypeScriptTranslator),
        (".net-csharp", "C#", CSharpTranslator),
        ("other", "F#", FSharpTranslator),
        ("other", "PowerShell", PowerShellTranslator),
        ("bash", "bash", BashTranslator),
        ("julia-1.10", "julia", JuliaTranslator),
    ],
)
def test_lookup(kernel, language, cls):
    assert type(get_translator(kernel, language)) is cls


def test_unknown_language_lists_known_ones():
    with pytest.raises(UnsupportedLanguageError) as info:
        get_translator("cobol-kernel", "cobol")
    assert "'cobol'" in str(info.value)
    for known in ("R", "bash", "octave", "julia", "javascript", "tslab", ".net-csharp"):
        assert known in str(info.value)


def test_every_entry_point_loads():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="paramill.translators")}
    assert {"R", "ir", "scala", "octave", "bash", "javascript", "tslab", "deno"} <= names
    for ep in entry_points(group="paramill.translators"):
        assert get_translator(ep.name, None).codify({"x": 1}).endswith("\n")


# -- property: values survive the round trip -----------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_python_rendering_evaluates_to_the_value(value):
    code = PythonTranslator().render(value, "p")
    assert eval(code) == value  # noqa: S307 - the point of the test


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_javascript_rendering_is_the_json_value(value):
    try:
        code = JavaScriptTranslator().render(value, "p")
    except ParameterError as exc:  # only integers past 2**53 are refused
        assert "exactly" in str(exc)
        return
    # JS literals of JSON-like values are JSON (plus NaN/Infinity, which json.loads accepts)
    assert json.loads(code) == value


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0")))
def test_bash_string_round_trip_through_real_bash(value):
    """Quoting checked by bash itself (non-interactive; bash_kernel is tested separately)."""
    code = BashTranslator().codify({"v": value}) + 'printf "%s" "$v"'
    out = subprocess.run(["bash", "-c", code], capture_output=True, timeout=10).stdout
    assert out.decode("utf-8", "surrogateescape") == value


# -- inspection -----------------------------------------------------------------------------------
R_CELL = """# Parameters for the report
# the day to report on
date <- "2019-11-07"  # ISO date
n = 10L
ratio <- 0.5 # a # in a comment
label = 'it\\'s # not a comment'
flags <- c(TRUE,
           FALSE)  # two flags
nothing <- NULL
verbose <- TRUE
x == 3
f <- function(a) a
"""


def test_r_inspection():
    params = RTranslator().inspect(R_CELL)
    got = [(p.name, p.type_name, p.default, p.help) for p in params]
    assert got == [
        ("date", "character", '"2019-11-07"', "ISO date"),
        ("n", "integer", "10L", ""),
        ("ratio", "numeric", "0.5", "a # in a comment"),
        ("label", "character", "'it\\'s # not a comment'", ""),
        ("flags", "None", "c(TRUE, FALSE)", "two flags"),
        ("nothing", "NULL", "NULL", ""),
        ("verbose", "logical", "TRUE", ""),
        ("f", "None", "function(a) a", ""),
    ]
    assert params[0].default_value == "2019-11-07" and params[1].default_value == 10


def test_r_comment_line_above_is_help():
    (param,) = RTranslator().inspect("# how many rows\nrows <- 5\n")
    assert (param.name, param.default, param.help) == ("rows", "5", "how many rows")


JULIA_CELL = """# Parameters
alpha = 0.1  # learning rate
name::String = "x#y"
n::Int = 3
const days = [1,
  2]
items = Dict("a" => 1)
flag = true
b == 2
"""


def test_julia_inspection():
    params = JuliaTranslator().inspect(JULIA_CELL)
    got = [(p.name, p.type_name, p.default, p.help) for p in params]
    assert got == [
        ("alpha", "Float64", "0.1", "learning rate"),
        ("name", "String", '"x#y"', ""),
        ("n", "Int", "3", ""),
        ("days", "Vector", "[1, 2]", ""),
        ("items", "Dict", 'Dict("a" => 1)', ""),
        ("flag", "Bool", "true", ""),
    ]


@pytest.mark.parametrize(
    "cls",
    [ScalaTranslator, OctaveTranslator, BashTranslator, JavaScriptTranslator, CSharpTranslator],
)
def test_other_languages_have_no_introspection(cls):
    with pytest.raises(NotImplementedError, match="not available"):
        cls().inspect("x = 1")


def test_strict_mode_checks_r_types(tmp_path):
    from paramill import notebook as nbops
    from paramill._run.prepare import parameterize

    nb = make_notebook([("code", "n <- 10L\nname <- 'a'", "parameters")], "ir", "R")
    nb = nbops.add_placeholders(nb)
    parameterize(nb, {"n": 3, "name": "b"}, strict=True)
    with pytest.raises(ParameterError, match="'n'"):
        parameterize(nb, {"n": "three"}, strict=True)
    with pytest.raises(ParameterError, match="unknown"):
        parameterize(nb, {"m": 1}, strict=True)


def test_help_notebook_for_r_and_for_a_language_without_introspection(tmp_path):
    import nbformat

    r_nb = tmp_path / "r.ipynb"
    nbformat.write(make_notebook([("code", R_CELL, "parameters")], "ir", "R"), r_nb)
    proc = run_cli(r_nb, "--help-notebook")
    assert proc.returncode == 0, proc.stderr
    assert 'date: character (default "2019-11-07")' in proc.stdout
    assert "ISO date" in proc.stdout

    sh_nb = tmp_path / "sh.ipynb"
    nbformat.write(make_notebook([("code", "x=1", "parameters")], "bash", "bash"), sh_nb)
    proc = run_cli(sh_nb, "--help-notebook")
    assert proc.returncode == 0, proc.stderr
    assert "introspection is not available for Bash" in proc.stdout
    # papermill's warning, naming the notebook's language as papermill does
    assert proc.stderr == (
        "Translator for 'bash' language does not support parameter introspection.\n"
    )


@pytest.mark.parametrize("kernel, language", [("toree_scala", "scala"), ("bash", "bash")])
def test_languages_without_introspection_log_papermills_line(tmp_path, caplog, kernel, language):
    import nbformat

    from paramill import inspect_notebook

    path = tmp_path / "nb.ipynb"
    nbformat.write(make_notebook([("code", "x=1", "parameters")], kernel, language), path)
    line = f"Translator for '{language}' language does not support parameter introspection."
    proc = run_cli(path, tmp_path / "out.ipynb", "-p", "x", "2", "--prepare-only")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[2:] == [line, "Passed unknown parameter: x"]
    assert inspect_notebook(path) == {}
    assert [r.getMessage() for r in caplog.records] == [line]


def test_inspect_notebook_api_for_julia(tmp_path):
    import nbformat

    from paramill import inspect_notebook

    path = tmp_path / "jl.ipynb"
    nbformat.write(make_notebook([("code", JULIA_CELL, "parameters")], "julia-1.10", "julia"), path)
    found = inspect_notebook(path)
    assert found["alpha"] == {
        "name": "alpha",
        "inferred_type_name": "Float64",
        "default": "0.1",
        "help": "learning rate",
    }


def test_module_imports_no_heavy_dependencies():
    code = (
        "import sys, paramill.parameters.languages, paramill.textnb; "
        "print(any(m in sys.modules for m in ('jupytext', 'nbclient', 'zmq')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
