"""Shared plumbing of the translators for kernels beyond Python: names, strings, escapes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...errors import ParameterError
from ..translators import Translator

ASCII_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: integers above this are not exact in languages whose numbers are doubles
EXACT_DOUBLE = 2**53
INT32 = range(-(2**31), 2**31)
INT64 = range(-(2**63), 2**63)


def has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


class LanguageTranslator(Translator):
    """Shared plumbing: strings are rendered knowing their parameter (for error messages)."""

    #: reserved words that cannot be assigned to
    keywords: frozenset[str] = frozenset()
    name_pattern = ASCII_NAME

    def check_name(self, name: str) -> None:
        if not (isinstance(name, str) and self.name_pattern.match(name)) or name in self.keywords:
            raise ParameterError(
                f"parameter name {name!r} is not a valid {self.language} variable name"
            )

    def render(self, value: Any, name: str = "?") -> str:
        if isinstance(value, str):
            if has_surrogate(value) and not self.allows_surrogates:
                raise self.unsupported(name, "a string with unpaired surrogate characters")
            return self.render_text(value, name)
        return super().render(value, name)

    allows_surrogates = False

    def render_text(self, value: str, name: str) -> str:
        return self.render_str(value)

    def render_fallback(self, value: Any, name: str) -> str:
        return self.render(str(value), name)

    def exact_int(self, value: int, name: str) -> str:
        """Integers for languages whose numbers are doubles: exact up to 2**53, else refused."""
        if abs(value) > EXACT_DOUBLE:
            raise self.unsupported(
                name, f"the integer {value} exactly (numbers are doubles); pass it as a string"
            )
        return str(value)


def escape(value: str, named: Mapping[str, str], other: Any) -> str:
    """Escape a string body: ``named`` characters by table, ``other(ch)`` for the rest or None."""
    out = []
    for ch in value:
        if ch in named:
            out.append(named[ch])
        else:
            rendered = other(ch)
            out.append(ch if rendered is None else rendered)
    return "".join(out)


C_NAMED = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def u_escape(ch: str) -> str | None:
    """``\\uXXXX`` / ``\\UXXXXXXXX`` for control and non-ASCII characters (R, Julia, C#, F#)."""
    code = ord(ch)
    if 0x20 <= code < 0x7F:
        return None
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def utf16_escape(ch: str) -> str | None:
    """``\\uXXXX`` in UTF-16 units (surrogate pairs above the BMP), as Java/Scala want."""
    code = ord(ch)
    if 0x20 <= code < 0x7F:
        return None
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
