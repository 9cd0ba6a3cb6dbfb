"""Grids: the parameter sets of a sweep, from ``--grid`` flags, grid files and Python values."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import ParameterError
from ..parameters.sources import cast_value, check_renderable, read_file
from ..storage import display_url

Grid = Mapping[str, Any] | Sequence[Mapping[str, Any]]

#: more runs than this need ``max_runs=`` (``--max-runs``): a typo in a grid should not
#: start a million kernels
MAX_RUNS = 10_000


def _values(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple, set, frozenset, range)) else [value]


def expand_grid(grid: Grid) -> list[dict[str, Any]]:
    """A mapping of lists is a cartesian product (first name varies slowest); a list of
    mappings is taken as it is. A scalar (or string) value counts as a one-element list."""
    if isinstance(grid, Mapping):
        names = list(grid)
        values = [_values(v) for v in grid.values()]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
    if isinstance(grid, (list, tuple)):
        runs = []
        for i, item in enumerate(grid):
            if not isinstance(item, Mapping):
                raise ParameterError(
                    f"grid item {i + 1} is a {type(item).__name__}, expected a mapping of "
                    "parameter names to values"
                )
            runs.append(dict(item))
        return runs
    raise ParameterError(
        f"a grid is a mapping of lists or a list of mappings, got a {type(grid).__name__}"
    )


def parse_grid_options(items: Iterable[str]) -> dict[str, list[Any]]:
    """``--grid name=v1,v2`` flags as a mapping of lists, values cast like ``-p``."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ParameterError(f"--grid {item!r}: expected NAME=VALUE1,VALUE2,...")
        grid.setdefault(name, []).extend(cast_value(v) for v in values.split(","))
    return grid


def load_grid_file(path: str, storage_options: dict[str, Any] | None = None) -> Grid:
    """A YAML/JSON file holding a mapping of lists or a list of mappings, read by the
    parameter files' loader (``-f``: JSON exactly, YAML with its depth and alias limits)."""
    shown = display_url(path)
    try:
        data = read_file(path, storage_options, what="grid")
        if not isinstance(data, (Mapping, list)):
            raise ParameterError(f"{shown}: expected a mapping of lists or a list of mappings")
        check_renderable(data if isinstance(data, Mapping) else {"grid": data})
        if isinstance(data, list):
            expand_grid(data)  # every item a mapping (a list is not expanded: no product)
    except ParameterError as exc:
        message = exc.message  # every message starts "grid file g.yaml: ..."
        if not message.startswith("grid file "):
            where = "" if message.startswith(shown) else f"{shown}: "
            message = f"grid file {where}{message}"
        raise ParameterError(message) from None
    return data


def grid_size(grid: Grid) -> int:
    """How many runs ``grid`` expands to, without expanding it."""
    if isinstance(grid, Mapping):
        return math.prod(len(_values(v)) for v in grid.values())
    if isinstance(grid, (list, tuple)):
        return len(grid)
    return 1  # expand_grid refuses it


def combine_grids(grids: Iterable[Grid], max_runs: int = MAX_RUNS) -> list[dict[str, Any]]:
    """Several grids (``--grid`` flags and ``--grid-file``) form their cartesian product; more
    than ``max_runs`` runs is a ParameterError raised before any is built."""
    grids = list(grids)
    total = math.prod(grid_size(grid) for grid in grids)
    if total > max_runs:
        raise ParameterError(
            f"the sweep has {total:,} runs, more than the limit of {max_runs:,}; "
            "raise it with --max-runs N (Python: max_runs=N) if that many are meant"
        )
    runs: list[dict[str, Any]] = [{}]
    for grid in grids:
        runs = [{**left, **right} for left in runs for right in expand_grid(grid)]
    return runs
