"""Parameter sources, casting, precedence, Python rendering and AST inspection (no kernel)."""

from __future__ import annotations

import base64
import math

import pytest

from paramill.errors import ParameterError
from paramill.magics import blank_magics
from paramill.parameters import check_parameters, resolve
from paramill.parameters.declared import inspect_python
from paramill.parameters.sources import cast_value, load_base64, load_yaml
from paramill.parameters.translators import PythonTranslator, escaped_str, get_translator


@pytest.mark.parametrize(
    "text, expected",
    [
        ("True", True),
        ("False", False),
        ("None", None),
        ("true", "true"),
        ("none", "none"),
        ("12", 12),
        (" 12 ", 12),
        ("+5", 5),
        ("007", 7),
        ("1_000", 1000),
        ("١٢", 12),
        ("0x10", "0x10"),
        ("1e3", 1000.0),
        ("1.", 1.0),
        (".5", 0.5),
        ("", ""),
        ("1,000", "1,000"),
        ("[1,2]", "[1,2]"),
        ('"quoted"', '"quoted"'),
        ("2019-11-07", "2019-11-07"),
    ],
)
def test_cast_like_papermill(text, expected):
    value = cast_value(text)
    assert value == expected and type(value) is type(expected)


def test_cast_non_finite():
    assert math.isnan(cast_value("nan")) and cast_value("-inf") == float("-inf")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("d: 2019-01-01", {"d": "2019-01-01"}),
        ("d: 2019-01-01 10:00:00", {"d": "2019-01-01 10:00:00"}),
        ("a: yes\nb: ~\nc: 0x10\nd: 1_000", {"a": True, "b": None, "c": 16, "d": 1000}),
        ("n: {x: [1, 2]}", {"n": {"x": [1, 2]}}),
        ("", {}),
        ("# only a comment", {}),
        ('{"j": 1}', {"j": 1}),
    ],
)
def test_yaml_without_timestamps(text, expected):
    assert load_yaml(text) == expected


@pytest.mark.parametrize("text", ["[1, 2]", "just a string", "3"])
def test_yaml_top_level_must_be_mapping(text):
    with pytest.raises(ParameterError, match="mapping"):
        load_yaml(text)


def test_yaml_syntax_error_names_line():
    with pytest.raises(ParameterError, match="line 3"):
        load_yaml("a: 1\nb: [unclosed\nc: 2")


def test_base64():
    assert load_base64(base64.b64encode(b"a: 1\nb: two").decode()) == {"a": 1, "b": "two"}
    with pytest.raises(ParameterError, match="base64"):
        load_base64("not base64!!")


def test_precedence_and_first_position(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("x: file\nf: 1\n")
    merged = resolve(
        injected={"PAPERMILL_INPUT_PATH": "in.ipynb"},
        base64s=[base64.b64encode(b"x: b64\nb: 1").decode()],
        files=[str(f)],
        yamls=["x: yaml\ny: 1"],
        cast=[("x", "5"), ("p", "2")],
        raw=[("x", "raw"), ("r", "7")],
    )
    assert merged["x"] == "raw" and merged["p"] == 2 and merged["r"] == "7"
    # a key keeps the position of its first appearance
    assert list(merged) == ["PAPERMILL_INPUT_PATH", "x", "b", "f", "y", "p", "r"]


def test_cast_beats_yaml_regardless_of_cli_order():
    assert resolve(yamls=["a: 1"], cast=[("a", "2")])["a"] == 2
    assert resolve(cast=[("a", "2")], raw=[("a", "3")])["a"] == "3"


@pytest.mark.parametrize("name", ["p.json", "p.yaml", "p"])
def test_json_parameter_files_are_read_exactly(tmp_path, name):
    """JSON text is JSON, whatever the file's name: YAML refused the surrogate pair, read
    U+0085 as a line break and 1e3 as a string."""
    path = tmp_path / name
    text = '{"emoji": "\\ud83d\\ude00", "nel": "a\u0085b", "n": 1e3, "big": 12345678901234567890}'
    path.write_text(text, encoding="utf-8")
    assert resolve(files=[str(path)]) == {
        "emoji": "😀",
        "nel": "a\u0085b",
        "n": 1000.0,
        "big": 12345678901234567890,
    }


def test_json_file_errors_and_limits(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text('{"a": 1,}')  # not JSON: a .json file is not read as YAML instead
    with pytest.raises(ParameterError, match=r"p.json: invalid JSON at line 1, column 9"):
        resolve(files=[str(bad)])
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ParameterError, match="deep.json: JSON nested too deeply"):
        resolve(files=[str(deep)])
    deep.write_text('{"a": ' + "[" * 150 + "]" * 150 + "}")
    with pytest.raises(ParameterError, match="nested more than 100 levels"):
        resolve(files=[str(deep)])
    lone = tmp_path / "lone.json"
    lone.write_text('{"s": "\\ud83d"}')
    with pytest.raises(ParameterError, match="unpaired surrogate"):
        resolve(files=[str(lone)])
    listed = tmp_path / "list.json"
    listed.write_text("[1]")
    with pytest.raises(ParameterError, match="mapping of names to values, got a list"):
        resolve(files=[str(listed)])


def test_missing_parameter_file():
    with pytest.raises(ParameterError, match="no such file"):
        resolve(files=["/nonexistent/params.yaml"])


# -- Python rendering -------------------------------------------------------------------------
def test_escaped_strings_like_papermill():
    assert escaped_str('it\'s "q" \\ é\n') == '"it\'s \\"q\\" \\\\ \\xe9\\n"'
    assert escaped_str('"Hello"') == '"\\"Hello\\""'


def test_python_codify():
    source = PythonTranslator().codify(
        {"s": "bar", "n": None, "t": True, "i": 2**40, "f": 1.5, "l": ["a", 1], "d": {"k": {1: 2}}}
    )
    assert source == (
        "# Parameters\n"
        's = "bar"\nn = None\nt = True\ni = 1099511627776\nf = 1.5\n'
        'l = ["a", 1]\nd = {"k": {1: 2}}\n'
    )
    scope: dict = {}
    exec(source, scope)
    assert scope["d"] == {"k": {1: 2}}


def test_python_non_finite_and_invalid_names():
    t = PythonTranslator()
    assert t.render(float("nan")) == "float('nan')"
    assert t.render(float("-inf")) == "float('-inf')"
    for bad in ["bad name", "1a", "class", "a-b", ""]:
        with pytest.raises(ParameterError, match="not a valid Python identifier"):
            t.codify({bad: 1})


def test_unknown_language_lists_known():
    with pytest.raises(ParameterError, match="known: .*python"):
        get_translator("nokernel", "cobol")


def test_translator_lookup_kernel_then_language():
    assert isinstance(get_translator("python3", "python"), PythonTranslator)
    assert isinstance(get_translator("pysparkkernel", "whatever"), PythonTranslator)


# -- inspection ---------------------------------------------------------------------------------
CELL = """\
# the run date
date = "2019-11-07"
a: float = 2.25  # Variable a
b: List[str] = [
    "Hello",  # first
    "World",
]  # Nice list
c: "NoneType" = None
url = "http://x/?a=b#frag"  # has = and #
n = 2  # type: int  count of things
mode: Literal["a", "b"] = "a"
maybe: int | None = None
%matplotlib inline
"""


def test_inspect_python_ast():
    params = {p.name: p for p in inspect_python(CELL)}
    assert list(params) == ["date", "a", "b", "c", "url", "n", "mode", "maybe"]
    assert params["date"].help == ""  # as in papermill, a comment line above is not help
    assert (params["a"].type_name, params["a"].default, params["a"].help) == (
        "float",
        "2.25",
        "Variable a",
    )
    assert params["b"].type_name == "List[str]" and params["b"].help == "Nice list"
    assert params["b"].default == '["Hello","World",]'  # papermill joins the lines
    assert params["c"].type_name == "NoneType"
    assert params["url"].default == '"http://x/?a=b#frag"' and params["url"].help == "has = and #"
    assert (params["n"].type_name, params["n"].help) == ("int", "count of things")
    assert params["mode"].type_name == 'Literal["a", "b"]'


def test_inspect_unparsable_cell_warns(caplog):
    assert inspect_python("a = (\n") == []
    assert caplog.messages == ["Unable to parse line 1 'a = ('."]


@pytest.mark.parametrize(
    "cell, names, warnings",
    [
        ("files = !ls\nx = 1", ["x"], ["Unable to parse line 1 'files = !ls'."]),
        ("x = 1\n= 2\ny = 3", ["x", "y"], ["Unable to parse line 2 '= 2'."]),
        ("b = [\n 1,\n = 2\n]\nc = 3", ["b", "c"], ["Unable to parse line 3 ' = 2'."]),
        ('x = """open\ny = 1', ["y"], ["Unable to parse line 1 'x = \"\"\"open'."]),
        ("x = 1\0\ny = 2", ["y"], ["Unable to parse line 1 'x = 1\0'."]),
        ("  a = 1\n  b = 2", ["a", "b"], []),  # indented lines, read as papermill reads them
        ("a = 1\r\nb = 2\rc = 3", ["a", "b", "c"], []),
        ("d = a == 3\ne = a < 3\nf = 2", ["f"], []),  # comparisons are flags, not defaults
    ],
)
def test_inspect_keeps_every_statement_that_parses(caplog, cell, names, warnings):
    assert [p.name for p in inspect_python(cell)] == names
    assert caplog.messages == warnings


def test_inspect_gives_up_on_cells_that_are_not_python(caplog):
    assert inspect_python("x = 1\n" + "= 2\n" * 101) == []
    assert len(caplog.messages) == 102
    assert caplog.messages[-1].endswith("more than 100 lines are not Python.")
    caplog.clear()
    assert inspect_python("x = " + "-" * 100_000 + "1") == []
    assert caplog.messages == ["Unable to parse the parameters cell: nested too deeply."]


def test_ipython_lines_are_blanked_silently_by_one_rule(caplog):
    # IPython runs all of these, so reading the cell must neither fail nor warn; "?" is one of
    # IPython's escapes (help) like "%" and "!" -- inspection used to warn about it, the sweep's
    # import scan blanked it: both now use paramill.magics.
    cell = (
        "%matplotlib inline\n!ls\n?len\n??str.join\nlen?\nos.path.join??\n%time?\n"
        "%%capture\na = 1  # first\nb = 'x?'\nc = a if a else 2  # why?"
    )
    assert blank_magics(cell.split("\n"))[:7] == [""] * 7
    assert blank_magics(["b = 'x?'", "  %env A=1", "x = y?z"]) == ["b = 'x?'", "", "x = y?z"]
    params = inspect_python(cell)
    assert [(p.name, p.default, p.help) for p in params] == [
        ("a", "1", "first"),
        ("b", "'x?'", ""),
        ("c", "a if a else 2", "why?"),
    ]
    assert caplog.messages == []


@pytest.mark.parametrize(
    "value, default",
    [
        ("[\n    'Hello', # First\n# Dummy\n    'World'\n]", "['Hello','World']"),
        ("dict(a=1,  # one\n     b=2)", "dict(a=1,b=2)"),
        ("(not\n True)", "not True"),  # two words stay two words
        ("'''a\n  b'''", "'a\\n  b'"),  # a string spanning lines: its value, on one line
    ],
)
def test_inspect_multiline_default_is_joined_like_papermill(value, default):
    (param,) = inspect_python(f"x = {value}")
    assert param.default == default


def test_check_unknown_warns_or_fails(caplog):
    declared = inspect_python("a = 1\nb = 'x'")
    check_parameters(declared, {"a": 2, "zz": 1})
    assert "Passed unknown parameter: zz" in caplog.text
    with pytest.raises(ParameterError, match="unknown parameter 'zz'"):
        check_parameters(declared, {"zz": 1}, strict=True)


@pytest.mark.parametrize(
    "cell, value, ok",
    [
        ("a = 1", 5, True),
        ("a = 1", "5", False),
        ("a = 1", True, False),
        ("a = 1.0", 5, True),
        ("a = 1.0", "x", False),
        ("a = 'x'", 3, False),
        ("a = None", [1], True),
        ("a: int = 1", 2.5, False),
        ("a: int | None = None", None, True),
        ("a: int | None = None", "x", False),
        ("a: Optional[str] = None", "x", True),
        ('a: Literal["x", "y"] = "x"', "y", True),
        ('a: Literal["x", "y"] = "x"', "z", False),
        ("a: list[int] = []", [1], True),
        ("a: dict = {}", [1], False),
        ("a: MyType = 1", "anything", True),
        ("a = True", 1, False),
    ],
)
def test_strict_type_checks(cell, value, ok):
    declared = inspect_python(cell)
    if ok:
        check_parameters(declared, {"a": value}, strict=True)
    else:
        with pytest.raises(ParameterError, match="parameter 'a': expected"):
            check_parameters(declared, {"a": value}, strict=True)
