"""Declared parameters of R and Julia parameters cells.

Line based, like papermill's Python parser, but aware of strings and brackets: one assignment
per statement (``x <- 1``, ``x = 1``; Julia ``x::Int = 1``), a value may span lines while its
brackets are open, and a trailing comment (or a comment line just above) is the help text.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

from .declared import _NO_VALUE, Parameter

_R_ASSIGN = re.compile(
    r"\s*(?P<name>(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*)\s*(?:<<-|<-|=(?!=))\s*(?P<value>.*)\Z",
    re.S,
)
_JULIA_ASSIGN = re.compile(
    r"\s*(?:(?:const|global)\s+)?(?P<name>[^\W\d]\w*!?)\s*(?:::\s*(?P<type>[^=]+?))?\s*"
    r"=(?!=)\s*(?P<value>.*)\Z",
    re.S,
)
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\Z")
_INTEGER = re.compile(r"[-+]?\d+\Z")
_OPEN, _CLOSE = "([{", ")]}"

# type name in the language -> the Python annotation strict mode checks values against
_R_CHECKS = {"character": "str", "logical": "bool", "integer": "int", "numeric": "float"}
_JULIA_CHECKS = {
    "String": "str",
    "Bool": "bool",
    "Int": "int",
    "Int64": "int",
    "Int32": "int",
    "Integer": "int",
    "Float64": "float",
    "Real": "float",
    "Number": "float",
    "Vector": "list",
    "Array": "list",
    "Dict": "dict",
    "Nothing": "None",
}


def _scan(line: str, quotes: str) -> tuple[str, str | None, int]:
    """(code, comment or None, bracket depth change) of one line; ``#`` in strings is code."""
    quote, depth, i = None, 0, 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in quotes:
            quote = ch
        elif ch == "#":
            return line[:i], line[i + 1 :].strip(), depth
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        i += 1
    return line, None, depth


def _inspect(
    source: str,
    assign: re.Pattern,
    quotes: str,
    infer: Callable[[str], tuple[str, object]],
    checks: dict[str, str],
) -> list[Parameter]:
    found: list[Parameter] = []
    lines = source.splitlines()
    above: str | None = None  # a comment line right above a statement is its help
    i = 0
    while i < len(lines):
        code, comment, depth = _scan(lines[i], quotes)
        i += 1
        if not code.strip():
            above = comment
            continue
        match = assign.match(code)
        if not match:
            above = None
            continue
        value, help_text = match.group("value").rstrip(), comment
        while depth > 0 and i < len(lines):  # the value continues while brackets are open
            more, comment, change = _scan(lines[i], quotes)
            i += 1
            depth += change
            value += " " + more.strip() if more.strip() else ""
            help_text = comment
        value = value.rstrip().rstrip(";").rstrip()
        declared = (match.groupdict().get("type") or "").strip()
        type_name, default = infer(value)
        type_name = declared or type_name
        check = checks.get(re.sub(r"\{.*", "", type_name))
        annotation = ast.Name(id=check) if check else None
        found.append(
            Parameter(
                match.group("name"), type_name, value, help_text or above or "", annotation, default
            )
        )
        above = None
    return found


def _string_value(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text[1:-1]


def _infer_r(value: str) -> tuple[str, object]:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return "character", _string_value(value)
    if value in ("TRUE", "FALSE", "T", "F"):
        return "logical", value.startswith("T")
    if value.endswith("L") and _INTEGER.match(value[:-1]):
        return "integer", int(value[:-1])
    if _NUMBER.match(value):
        return "numeric", float(value)
    if value == "NULL":
        return "NULL", None
    return "None", _NO_VALUE


def _infer_julia(value: str) -> tuple[str, object]:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return "String", _string_value(value.replace("\\$", "$"))
    if value in ("true", "false"):
        return "Bool", value == "true"
    if _INTEGER.match(value):
        return "Int64", int(value)
    if _NUMBER.match(value):
        return "Float64", float(value)
    if value == "nothing":
        return "Nothing", None
    if value.startswith("["):
        return "Vector", _NO_VALUE
    if value.startswith("Dict"):
        return "Dict", _NO_VALUE
    return "None", _NO_VALUE


def inspect_r(source: str) -> list[Parameter]:
    return _inspect(source, _R_ASSIGN, "\"'`", _infer_r, _R_CHECKS)


def inspect_julia(source: str) -> list[Parameter]:
    return _inspect(source, _JULIA_ASSIGN, '"', _infer_julia, _JULIA_CHECKS)
