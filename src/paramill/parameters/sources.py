"""Where parameter values come from: -p/-r/-f/-y/-b, the API's dict, YAML text and files.

One loading path shared by the CLI, the Python API, sweeps and Airflow.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from .. import storage
from ..errors import ParameterError, StorageError


def cast_value(value: str) -> Any:
    """papermill's ``-p`` casting: True/False/None, then int, then float, else the string."""
    if value == "True":
        return True
    if value == "False":
        return False
    if value == "None":
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def _yaml_loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader without the timestamp resolver: dates stay strings, as in papermill."""

    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return Loader


def parse_yaml(text: str, origin: str = "YAML") -> Any:
    """Any YAML document (papermill's loader: dates stay strings); errors name ``origin``."""
    import yaml

    try:
        return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise ParameterError(f"{origin}: YAML nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ParameterError(f"{origin}: invalid YAML{where}: {problem}") from None


def parse_file_text(text: str, origin: str) -> Any:
    """A parameters or grid file: JSON when it is named ``.json`` or its text is JSON (exact:
    ``\\ud83d\\ude00`` is one emoji, U+0085 stays a character, ``1e3`` a number), else YAML."""
    import json

    try:
        return json.loads(text)
    except RecursionError:
        raise ParameterError(f"{origin}: JSON nested too deeply") from None
    except ValueError as exc:
        if str(origin).lower().endswith(".json"):
            message = getattr(exc, "msg", str(exc))
            where = f" at line {exc.lineno}, column {exc.colno}" if hasattr(exc, "lineno") else ""
            raise ParameterError(f"{origin}: invalid JSON{where}: {message}") from None
    return parse_yaml(text, origin)


def as_mapping(data: Any, origin: str) -> dict[str, Any]:
    """Parameters from a parsed document: its top level must be a mapping; empty is ``{}``."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ParameterError(
            f"{origin}: parameters must be a mapping of names to values, "
            f"got a {type(data).__name__}"
        )
    return dict(data)


def load_yaml(text: str, origin: str = "YAML") -> dict[str, Any]:
    """Parse YAML (or JSON) text whose top level must be a mapping; empty text gives ``{}``."""
    return as_mapping(parse_yaml(text, origin), origin)


# YAML aliases share objects: ``a: &x [*x]`` contains itself and 40 nested aliases of
# ``[*x, *x]`` render as 2**40 values; translators render recursively, so depth is bounded too
MAX_EXPANDED_VALUES = 1_000_000
MAX_DEPTH = 100


def check_renderable(params: Mapping[str, Any]) -> None:
    """Refuse values that no translator could write out: self-containing, exponentially
    aliased or nested deeper than MAX_DEPTH, or text that is not Unicode (an unpaired
    surrogate cannot be saved as UTF-8). Iterative, so checking cannot overflow either."""
    stack: list[tuple[str, Any, int]] = [(name, value, 1) for name, value in params.items()]
    stack += [(name, name, 1) for name in params]
    count = 0
    while stack:
        name, node, depth = stack.pop()
        count += 1
        if count > MAX_EXPANDED_VALUES:
            raise ParameterError(
                f"parameter {name!r}: expands to more than {MAX_EXPANDED_VALUES:,} values "
                "(a recursive or exponentially nested YAML alias?)"
            )
        if depth > MAX_DEPTH:
            raise ParameterError(f"parameter {name!r}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad = node[exc.start : exc.end].encode("utf-8", "backslashreplace").decode()
                raise ParameterError(
                    f"parameter {name!r}: not valid text ({bad}: bytes that are not UTF-8, or "
                    "an unpaired surrogate escape)"
                ) from None
        elif isinstance(node, Mapping):
            stack.extend((name, v, depth + 1) for item in node.items() for v in item)
        elif isinstance(node, (list, tuple)):
            stack.extend((name, v, depth + 1) for v in node)


def load_base64(text: str) -> dict[str, Any]:
    try:
        decoded = base64.b64decode(text.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise ParameterError(
            "-b/--parameters_base64: value is not base64-encoded UTF-8 YAML"
        ) from None
    return load_yaml(decoded, origin="-b/--parameters_base64")


def read_file(
    path: str | os.PathLike, storage_options: dict[str, Any] | None = None, what: str = "parameters"
) -> Any:
    """The parsed document in a ``what`` file (JSON or YAML, see ``parse_file_text``)."""
    try:
        text = storage.read_text(path, storage_options)
    except StorageError as exc:
        raise ParameterError(f"{what} file {exc.message}") from None
    return parse_file_text(text, storage.display_url(os.fspath(path)))


def load_file(path: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> dict:
    return as_mapping(read_file(path, storage_options), storage.display_url(os.fspath(path)))


def resolve(
    *,
    parameters: Mapping[str, Any] | None = None,
    files: Iterable[str] = (),
    yamls: Iterable[str] = (),
    base64s: Iterable[str] = (),
    cast: Iterable[tuple[str, str]] = (),
    raw: Iterable[tuple[str, str]] = (),
    injected: Mapping[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge every source into one dict, in papermill's precedence order.

    Later sources override earlier ones, but a name keeps the position of its first appearance:
    injected paths < -b < -f < -y < API dict < -p < -r.
    """
    merged: dict[str, Any] = {}
    merged.update(injected or {})
    for text in base64s:
        merged.update(load_base64(text))
    for path in files:
        merged.update(load_file(path, storage_options))
    for text in yamls:
        merged.update(load_yaml(text, origin="-y/--parameters_yaml"))
    if parameters:
        if not isinstance(parameters, Mapping):
            raise ParameterError(f"parameters must be a mapping, got {type(parameters).__name__}")
        merged.update(parameters)
    for name, value in cast:
        merged[name] = cast_value(value)
    for name, value in raw:
        merged[name] = value
    check_renderable(merged)
    return merged


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that strict JSON can hold (for notebook metadata and run records).

    Non-finite floats become strings ('nan', 'inf'), unknown types their ``str()``.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return str(value)
