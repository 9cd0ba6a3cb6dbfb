"""Planning: every run's input, output and parameters, checked before anything runs; and what
the first notebook tells the executors (its kernel and imports, to warm kernels with)."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._run.paths import has_fields, path_parameters, refuse_overwriting_input, template_path
from ..errors import ParameterError, ParamillError
from ..magics import blank_magics
from ..nbio import read_notebook_source
from ..storage import display_url, location_key


def run_label(values: Mapping[str, Any], index: int) -> str:
    """How a run is named in logs and summaries: ``date=2019-11-01,city=nyc`` or ``run 3``."""
    return ",".join(f"{k}={v}" for k, v in values.items()) or f"run {index + 1}"


@dataclass
class RunSpec:
    """One planned run: where it reads and writes and with which parameters."""

    index: int
    grid: dict[str, Any]
    parameters: dict[str, Any]
    input_path: Any
    output_path: str | None

    @property
    def label(self) -> str:
        return run_label(self.grid, self.index)


def _fill(path: Any, parameters: Mapping[str, Any], allow_path_values: bool) -> Any:
    return template_path(path, path_parameters(parameters), allow_path_values=allow_path_values)


def _for_run(filled: Any, template: Any) -> Any:
    """run() fills templates again: a brace that came from a value must stay a brace."""
    if isinstance(filled, str) and filled != template and "{" in filled:
        return filled.replace("{", "{{").replace("}", "}}")
    return filled


def _check_output(output: Any, count: int) -> None:
    if output not in (None, "-") and not isinstance(output, str):
        raise ParameterError("a sweep's output template must be a path")
    if output == "-" and count > 1:
        raise ParameterError("a sweep cannot write every run to stdout ('-')")


def plan_runs(
    template: Any,
    output_template: str | None,
    runs: Sequence[Mapping[str, Any]],
    base: Mapping[str, Any] | None = None,
    *,
    allow_path_values: bool = False,
) -> list[RunSpec]:
    """The runs with their output names; two runs writing the same output, or a run writing
    over an input notebook (unless both paths are literal: one run in place), is an error."""
    if not runs:
        raise ParameterError("the grid is empty: nothing to run")
    template, output_template = (
        os.fspath(p) if isinstance(p, os.PathLike) else p for p in (template, output_template)
    )
    specs, seen, inputs = [], {}, {}
    for index, values in enumerate(runs):
        params = {**(base or {}), **values}
        output = _fill(output_template, params, allow_path_values)
        source = _fill(template, params, allow_path_values)
        _check_output(output, len(runs))
        if output not in (None, "-"):
            place = location_key(output)
            if place in seen:
                raise ParameterError(
                    f"output template {display_url(output_template)!r} gives "
                    f"{display_url(output)!r} for two runs "
                    f"({seen[place][0]} and {run_label(values, index)}); add a parameter to "
                    "it, e.g. 'out/report_{date}.ipynb'"
                )
            seen[place] = (run_label(values, index), output)
        if isinstance(source, str) and source != "-":
            inputs[location_key(source)] = source
        specs.append(
            RunSpec(
                index,
                dict(values),
                params,
                _for_run(source, template),
                _for_run(output, output_template),
            )
        )
    if has_fields(template) or has_fields(output_template):
        for place, (label, output) in seen.items():
            if place in inputs:
                refuse_overwriting_input(inputs[place], output, f"run {label}: the output")
    return specs


def template_imports(nb: Any) -> list[str]:
    """Modules a Python notebook imports (``import a.b``, ``from a.b import c``), in order."""
    found: dict[str, None] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        # IPython magics and shell escapes are not Python: blank them so the rest parses
        lines = blank_magics(cell.source.splitlines())
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found[alias.name] = None
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module != "__future__":
                    found[node.module] = None
    return list(found)


def first_notebook(specs: Sequence[RunSpec], run_options: Mapping[str, Any]) -> Any:
    """The first run's notebook (to learn its kernel and imports), or None if unreadable."""
    try:
        return read_notebook_source(specs[0].input_path, run_options.get("storage_options"))
    except ParamillError:
        return None  # every run will report it


def preload_list(nb: Any, run_options: Mapping[str, Any], preload: Any) -> list[str]:
    """Modules a warm kernel imports ahead of its run: the notebook's own imports plus
    ``preload`` (a list), none for ``preload=False`` or a notebook that is not Python."""
    if preload is False:
        return []
    if nb is None or _language(nb, run_options) != "python":
        return []
    return [*template_imports(nb), *(preload if isinstance(preload, Iterable) else ())]


def _language(nb: Any, run_options: Mapping[str, Any]) -> str | None:
    language = run_options.get("language")
    if language:
        return language.lower()
    spec = nb.metadata.get("kernelspec", {})
    name = nb.metadata.get("language_info", {}).get("name") or spec.get("language") or ""
    return name.lower() or None


def kernel_for(nb: Any, run_options: Mapping[str, Any]) -> str | None:
    """The kernel the runs will ask for: ``kernel_name`` or the notebook's kernelspec."""
    return run_options.get("kernel_name") or nb.metadata.get("kernelspec", {}).get("name")
