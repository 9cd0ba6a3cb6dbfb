"""Fuzzing: mutated notebooks and parameter inputs either prepare/run or fail with one of
paramill's documented errors (a ParamillError subclass) - never another exception.

Most examples use prepare_only (everything but the kernel: read, validate, resolve parameters,
inspect, render, write); a few run on a real kernel and check the parameters arrive intact.
"""

from __future__ import annotations

import base64
import copy
import json
import os
from pathlib import Path
from typing import Any

import nbformat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import paramill
from paramill.errors import ParamillError
from paramill.parameters import resolve
from tests.conftest import make_notebook

# The same examples on every run, so CI is reproducible; PARAMILL_FUZZ_EXPLORE=1 (with
# PARAMILL_FUZZ_EXAMPLES=20000, say) draws new ones to hunt for bugs.
FUZZ = settings(
    max_examples=int(os.environ.get("PARAMILL_FUZZ_EXAMPLES", 2000)),
    derandomize=not os.environ.get("PARAMILL_FUZZ_EXPLORE"),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)

SEEDS = [
    make_notebook([("code", "a = 1\nb: str = 'x'  # help", "parameters"), "print(a, b)"]),
    make_notebook([("md", "# title"), ("code", "x <- 2", "parameters"), "x"], "ir", "R"),
    make_notebook([("code", "n=3", "parameters"), ("raw", "raw"), "echo $n"], "bash", "bash"),
    make_notebook(["1"], kernel="", language=""),
]
SEEDS[0].cells[1].outputs = [
    nbformat.v4.new_output("stream", name="stdout", text="1 x\n"),
    nbformat.v4.new_output("error", ename="E", evalue="v", traceback=["tb"]),
]
SEEDS[0].cells[1].execution_count = 1

# JSON values of every type, small and nested
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indexes) into a JSON document."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


def parent_of(doc: Any, path: tuple) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


@st.composite
def mutated_notebooks(draw: st.DrawFn) -> str:
    """A seed notebook's JSON with 1-4 mutations: drop a key, replace a value with any JSON
    value, insert a key, or cut the text short."""
    doc = json.loads(nbformat.writes(draw(st.sampled_from(SEEDS))))
    for _ in range(draw(st.integers(1, 4))):
        targets = [p for p in paths(doc) if p]
        if not targets:
            break
        path = draw(st.sampled_from(targets))
        parent, key = parent_of(doc, path), path[-1]
        action = draw(st.sampled_from(["drop", "replace", "insert", "string"]))
        if action == "drop":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(json_values)
        elif action == "string":
            parent[key] = draw(st.text(max_size=30))
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(json_values)
        else:
            parent.insert(key, draw(json_values))
    text = json.dumps(doc)
    if draw(st.integers(0, 19)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


def prepare(path: Path, out: Path, **kw: Any) -> None:
    """Prepare ``path``; if paramill accepted it, what it wrote must be a notebook it reads."""
    try:
        result = paramill.run(path, out, prepare_only=True, **kw)
    except ParamillError as exc:
        assert exc.message and "\n" not in exc.message
        return
    assert result.status == "prepared"
    paramill.run(out, None, prepare_only=True)  # the written notebook reads back


@FUZZ
@given(text=mutated_notebooks(), params=st.dictionaries(st.text(max_size=6), json_values))
def test_mutated_notebooks(tmp_path_factory, text, params):
    folder = tmp_path_factory.getbasetemp() / "fuzz-notebooks"
    folder.mkdir(exist_ok=True)
    src, out = folder / "in.ipynb", folder / "out.ipynb"
    src.write_text(text)
    prepare(src, out, parameters=params or None)
    assert src.read_text() == text  # the input is never modified


yaml_texts = st.one_of(
    st.text(max_size=40),
    st.builds(lambda k, v: f"{k}: {v}", st.text(max_size=8), st.text(max_size=20)),
    st.sampled_from(
        [
            "a: [1",
            "- 1",
            "a: !!python/object:os.system x",
            "a: &x [*x]",
            "{a: 1, a: 2}",
            "a: .inf",
            "a: !!binary aGk=",
            "? [1]\n: 2",
            "a: 1\n b: 2",
            "a: 2019-11-07",
            "a: " + "[" * 200 + "]" * 200,
            "a: &a [1]\nb: &b [*a, *a]\nc: [*b, *b]",
            "'a': {'b': [1, {}]}",
        ]
    ),
    json_values.map(json.dumps),
)
base64_texts = st.one_of(
    st.text(max_size=30),
    st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode()),
    yaml_texts.map(lambda t: base64.b64encode(t.encode("utf-8", "surrogatepass")).decode()),
)


@FUZZ
@given(
    yamls=st.lists(yaml_texts, max_size=2),
    b64s=st.lists(base64_texts, max_size=2),
    casts=st.lists(st.tuples(st.text(max_size=8), st.text(max_size=12)), max_size=3),
    seed=st.sampled_from(SEEDS[:3]),
    strict=st.booleans(),
)
def test_parameter_inputs(tmp_path_factory, yamls, b64s, casts, seed, strict):
    folder = tmp_path_factory.getbasetemp() / "fuzz-params"
    folder.mkdir(exist_ok=True)
    src, out = folder / "in.ipynb", folder / "out.ipynb"
    nbformat.write(seed, src)
    try:
        params = resolve(yamls=yamls, base64s=b64s, cast=casts)
    except ParamillError as exc:
        assert exc.message and "\n" not in exc.message
        return
    prepare(src, out, parameters=params, strict=strict)


# a few real runs: what the kernel sees is exactly what was passed
SHOW = "import json; print(json.dumps(p, sort_keys=True))"


@settings(
    max_examples=6,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=json_values)
def test_parameters_arrive_intact_in_a_real_kernel(value):
    nb = make_notebook([("code", "p = None", "parameters"), SHOW])
    # every JSON value is a Python literal: none may be refused
    result = paramill.run(nb, None, {"p": copy.deepcopy(value)})
    assert result.status == "completed", result.error
    printed = "".join(o.text for o in result.notebook.cells[2].outputs)
    assert json.loads(printed) == value


def test_every_hypothesis_test_draws_the_same_examples_every_run():
    """CI runs must be reproducible: no Hypothesis test in the suite draws random examples."""
    import importlib

    found = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        if "hypothesis" in path.read_text("utf-8"):
            module = importlib.import_module(f"tests.{path.stem}")
            for name, test in vars(module).items():
                chosen = getattr(test, "_hypothesis_internal_use_settings", None)
                if chosen is not None and getattr(test, "is_hypothesis_test", False):
                    found.append(name)
                    assert chosen.derandomize or os.environ.get("PARAMILL_FUZZ_EXPLORE"), name
                    assert chosen.database is None, name
    assert "test_python_rendering_evaluates_to_the_value" in found
    assert "test_parameters_arrive_intact_in_a_real_kernel" in found
