"""JavaScript and TypeScript (IJavascript, tslab, Deno)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .base import (
    LanguageTranslator,
)


class JavaScriptTranslator(LanguageTranslator):
    """JavaScript (ijavascript). ``var`` re-declares what a defaults cell declared with ``var``
    or not at all; a default declared with ``let``/``const`` cannot be re-declared there."""

    language = "JavaScript"
    comment_prefix = "//"
    declaration = "var"
    allows_surrogates = True  # "\\ud83d" is a valid JS string
    name_pattern = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
    keywords = frozenset(
        "await break case catch class const continue debugger default delete do else enum "
        "export extends false finally for function if implements import in instanceof "
        "interface let new null package private protected public return static super switch "
        "this throw true try typeof var void while with yield undefined NaN Infinity".split()
    )

    def render_secret(self, env_var: str) -> str:
        return f"process.env[{self.render(env_var)}]"

    def forget_secret(self, env_var: str) -> str:
        return f"void delete process.env[{self.render(env_var)}];"

    def assign(self, name: str, rendered: str) -> str:
        return f"{self.declaration} {name} = {rendered};"

    def render_none(self, name: str) -> str:
        return "null"

    def render_text(self, value: str, name: str) -> str:
        return json.dumps(value)  # ASCII-only, \u2028 included

    def render(self, value: Any, name: str = "?") -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            return self.exact_int(value, name)
        return super().render(value, name)

    def render_nonfinite(self, value: float, name: str) -> str:
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")

    def render_list(self, value: list, name: str) -> str:
        return "[" + ", ".join(self.render(v, name) for v in value) + "]"

    def render_dict(self, value: Mapping, name: str) -> str:
        items = (f"{json.dumps(str(k))}: {self.render(v, name)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"


class TypeScriptTranslator(JavaScriptTranslator):
    """TypeScript and JavaScript in tslab/jslab (and deno): ``let`` may re-declare any default,
    and gives the variable the type of the new value."""

    language = "TypeScript"
    declaration = "let"
