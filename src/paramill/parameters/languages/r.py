"""R (IRkernel, sparkmagic's sparkrkernel) and Julia: their translators and parameter inspection."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..script_declared import inspect_julia, inspect_r
from .base import (
    C_NAMED,
    LanguageTranslator,
    escape,
    u_escape,
)


class RTranslator(LanguageTranslator):
    """R (IRkernel, sparkmagic's sparkrkernel)."""

    language = "R"
    name_pattern = re.compile(r"(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*\Z")
    keywords = frozenset(
        "if else repeat while function for next break TRUE FALSE NULL Inf NaN NA NA_integer_ "
        "NA_real_ NA_character_ NA_complex_ in".split()
    )

    def render_secret(self, env_var: str) -> str:
        var = self.render(env_var)
        return f"local({{v <- Sys.getenv({var}); Sys.unsetenv({var}); v}})"

    def codify(self, parameters: Mapping[str, Any], comment: str = "Parameters") -> str:
        # papermill strips leading underscores: R names cannot start with one
        renamed: dict[str, Any] = {}
        for name, value in parameters.items():
            renamed[name.lstrip("_") if isinstance(name, str) else name] = value
        return super().codify(renamed, comment)

    def render_none(self, name: str) -> str:
        return "NULL"

    def render_bool(self, value: bool) -> str:
        return "TRUE" if value else "FALSE"

    def render_int(self, value: int) -> str:
        return str(value)

    def render(self, value: Any, name: str = "?") -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            return self.exact_int(value, name)
        return super().render(value, name)

    def render_text(self, value: str, name: str) -> str:
        if "\0" in value:
            raise self.unsupported(name, "a string containing a NUL character")
        # \u escapes, never \x: R refuses to mix them in one string, and \xNN is a raw byte
        return '"' + escape(value, C_NAMED, u_escape) + '"'

    def render_nonfinite(self, value: float, name: str) -> str:
        return "NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf")

    def render_list(self, value: list, name: str) -> str:
        return "list(" + ", ".join(self.render(v, name) for v in value) + ")"

    def render_dict(self, value: Mapping, name: str) -> str:
        if not value:
            return "setNames(list(), character(0))"  # a named empty list: {} rather than []
        items = []
        for key, item in value.items():
            if str(key) == "":
                raise self.unsupported(name, "an empty dict key")
            items.append(f"{self.render(str(key), name)} = {self.render(item, name)}")
        return "list(" + ", ".join(items) + ")"

    def inspect(self, source: str) -> list:

        return inspect_r(source)


class JuliaTranslator(LanguageTranslator):
    language = "Julia"
    name_pattern = re.compile(r"[^\W\d]\w*!?\Z")
    keywords = frozenset(
        "baremodule begin break catch const continue do else elseif end export false finally "
        "for function global if import let local macro module quote return struct true try "
        "using while".split()
    )

    def render_secret(self, env_var: str) -> str:
        return f"pop!(ENV, {self.render(env_var)})"

    def render_none(self, name: str) -> str:
        return "nothing"

    def render_text(self, value: str, name: str) -> str:
        # "$" interpolates in Julia strings
        return '"' + escape(value, {**C_NAMED, "$": "\\$"}, u_escape) + '"'

    def render_nonfinite(self, value: float, name: str) -> str:
        return "NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf")

    def render_list(self, value: list, name: str) -> str:
        return "[" + ", ".join(self.render(v, name) for v in value) + "]"

    def render_dict(self, value: Mapping, name: str) -> str:
        items = (f"{self.render(str(k), name)} => {self.render(v, name)}" for k, v in value.items())
        return "Dict(" + ", ".join(items) + ")"

    def inspect(self, source: str) -> list:

        return inspect_julia(source)
