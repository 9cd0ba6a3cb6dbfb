"""Output and input paths as templates: papermill's ``pm`` builtins, ``{name}`` fields filled
from parameters, values that may not move a path out of its folder, never the input overwritten."""

from __future__ import annotations

import datetime
import os
import re
import string
import uuid
from collections.abc import Mapping
from typing import Any

from .. import storage
from ..errors import MissingParameterError, ParameterError
from ..nbio import is_notebook_text


class _Builtins(dict):
    """papermill's ``pm`` values: made by paramill, so they may hold any path text."""


def path_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """papermill's ``pm`` builtins for path templates, overridable by user parameters."""
    builtins: dict[str, Any] = {
        "pm": _Builtins(
            run_uuid=str(uuid.uuid4()),
            current_datetime_local=datetime.datetime.now(),
            current_datetime_utc=datetime.datetime.now(datetime.timezone.utc),
        )
    }
    builtins.update(parameters or {})
    return builtins


def template_path(
    path: Any, parameters: Mapping[str, Any], *, allow_path_values: bool = False
) -> Any:
    """Fill ``{name}`` fields of a path from parameters.

    A name that is not a parameter is an error; a path whose braces are not a valid template
    (a real ``{`` in a file name) is used as it is. A filled value stays one name in the
    template's folder (see ``check_path_values``) unless ``allow_path_values``.
    """
    if not isinstance(path, str) or "{" not in path or is_notebook_text(path):
        return path
    try:
        filled = path.format(**parameters)
    except KeyError as exc:
        raise MissingParameterError(
            f"path {storage.display_url(path)!r} uses {{{exc.args[0]}}}, which is not a parameter"
        ) from None
    except (ValueError, IndexError, AttributeError, TypeError):
        return path
    if not allow_path_values:
        check_path_values(path, parameters)
    return filled


_SEPARATORS = {"/", "\\", os.sep, os.altsep or "/"}


def check_path_values(template: str, parameters: Mapping[str, Any]) -> None:
    """Refuse a parameter value that would move a templated path out of its place: a value may
    not contain a path separator or ``..``, nor make (with its neighbours) a ``.``, ``..`` or
    empty path component, an absolute path or a URL scheme. paramill's own ``pm`` values may."""
    formatter = string.Formatter()
    pieces: list[tuple[str, str | None]] = []  # the filled path: (text, parameter it came from)
    for literal, key, spec, conversion in formatter.parse(template):
        pieces.append((literal, None))
        if key is None:
            continue
        value = formatter.convert_field(formatter.get_field(key, (), parameters)[0], conversion)
        text = formatter.format_field(value, formatter.vformat(spec or "", (), parameters))
        name = re.match(r"[^.\[]*", key)[0]  # type: ignore[index]
        if name == "pm" and isinstance(parameters.get("pm"), _Builtins):
            pieces.append((text, None))
            continue
        if ".." in text or any(sep in text for sep in _SEPARATORS):
            _refuse_path_value(template, {name}, text)
        pieces.append((text, name))
    components: list[tuple[str, set[str]]] = [("", set())]
    for text, name in pieces:
        parts = [text] if name else re.split("|".join(map(re.escape, _SEPARATORS)), text)
        last, names = components.pop()
        components.append((last + parts[0], names | ({name} if name else set())))
        components.extend((part, set()) for part in parts[1:])
    for text, names in components:
        if names and text in ("", ".", ".."):
            _refuse_path_value(template, names, text)
    skeleton = "".join(text if name is None else "x" for text, name in pieces)
    filled = "".join(text for text, _ in pieces)
    if storage.protocol_of(filled) != storage.protocol_of(skeleton):
        _refuse_path_value(template, {n for _, n in pieces if n}, filled)


def _refuse_path_value(template: str, names: set[str], text: str) -> None:
    named = " and ".join(f"parameter {n!r}" for n in sorted(names))
    raise ParameterError(
        f"{named} in the path {storage.display_url(template)!r} gives "
        f"{storage.display_url(text)[:80]!r}: a value filled into a path may not contain '/', "
        "'\\', '..' or a URL scheme, nor make an empty, '.' or '..' path part "
        "(--allow-path-values allows it)"
    )


def has_fields(path: Any) -> bool:
    """Whether ``path`` is a template (has ``{name}`` fields)."""
    if not isinstance(path, str) or "{" not in path or is_notebook_text(path):
        return False
    try:
        return any(key is not None for _, key, _, _ in string.Formatter().parse(path))
    except ValueError:
        return False


def refuse_overwriting_input(input_path: Any, path: Any, what: str) -> None:
    """A path a run writes may never be its input notebook (``what`` names the path)."""
    if storage.same_location(input_path, path):
        raise ParameterError(
            f"{what} {storage.display_url(path)!r} is the input notebook, which a run never "
            "overwrites"
        )
