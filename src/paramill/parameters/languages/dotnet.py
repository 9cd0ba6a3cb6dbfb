""".NET Interactive: C#, F# and PowerShell."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .base import (
    C_NAMED,
    INT32,
    INT64,
    LanguageTranslator,
    escape,
    u_escape,
)


def _scalar_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "dict"  # every dict renders as a Dictionary<string,Object>
    return "other"


class CSharpTranslator(LanguageTranslator):
    language = "C#"
    comment_prefix = "//"
    keywords = frozenset(
        "abstract as base bool break byte case catch char checked class const continue decimal "
        "default delegate do double else enum event explicit extern false finally fixed float "
        "for foreach goto if implicit in int interface internal is lock long namespace new null "
        "object operator out override params private protected public readonly ref return "
        "sbyte sealed short sizeof stackalloc static string struct switch this throw true try "
        "typeof uint ulong unchecked unsafe ushort using virtual void volatile while".split()
    )

    def render_secret(self, env_var: str) -> str:
        return f"System.Environment.GetEnvironmentVariable({self.render(env_var)})"

    def forget_secret(self, env_var: str) -> str:
        return f"System.Environment.SetEnvironmentVariable({self.render(env_var)}, null);"

    def assign(self, name: str, rendered: str) -> str:
        return f"var {name} = {rendered};"

    def render_none(self, name: str) -> str:
        return "(object)null"  # `var x = null;` does not compile

    def render_text(self, value: str, name: str) -> str:
        # \u with 4 digits: C#'s \x takes 1-4 hex digits, so papermill's \xe9 eats what follows
        return '"' + escape(value, C_NAMED, u_escape) + '"'

    def render_int(self, value: int) -> str:
        if value in INT32:
            return str(value)
        if value in INT64:
            return f"{value}L"
        return f'System.Numerics.BigInteger.Parse("{value}")'

    def render_nonfinite(self, value: float, name: str) -> str:
        if math.isnan(value):
            return "double.NaN"
        return "double.PositiveInfinity" if value > 0 else "double.NegativeInfinity"

    def render_list(self, value: list, name: str) -> str:
        items = ", ".join(self.render(v, name) for v in value)
        kinds = {_scalar_kind(v) for v in value}
        # an implicitly typed array needs one best type (a list of dicts is a
        # Dictionary<string,Object>[], as in papermill): mixed, nested lists or empty -> object[]
        if len(kinds) == 1 and "other" not in kinds:
            return f"new [] {{ {items} }}"
        return f"new object[] {{ {items} }}"

    def render_dict(self, value: Mapping, name: str) -> str:
        items = ", ".join(
            f"{{ {self.render(str(k), name)} , {self.render(v, name)} }}" for k, v in value.items()
        )
        return f"new Dictionary<string,Object>{{ {items} }}"


class FSharpTranslator(LanguageTranslator):
    language = "F#"
    keywords = frozenset(
        "abstract and as assert base begin class default delegate do done downcast downto elif "
        "else end exception extern false finally fixed for fun function global if in inherit "
        "inline interface internal lazy let match member module mutable namespace new not null "
        "of open or override private public rec return select sig static struct then to true "
        "try type upcast use val void when while with yield".split()
    )

    def render_secret(self, env_var: str) -> str:
        return f"System.Environment.GetEnvironmentVariable({self.render(env_var)})"

    def forget_secret(self, env_var: str) -> str:
        return f"System.Environment.SetEnvironmentVariable({self.render(env_var)}, null)"

    def comment(self, text: str) -> str:
        return f"(* {text.strip()} *)"

    def assign(self, name: str, rendered: str) -> str:
        return f"let {name} = {rendered}"

    def render_none(self, name: str) -> str:
        return "None"

    def render_text(self, value: str, name: str) -> str:
        return '"' + escape(value, C_NAMED, u_escape) + '"'

    def render_int(self, value: int) -> str:
        if value in INT32:
            return str(value)
        return f"{value}L" if value in INT64 else f"{value}I"

    def render_nonfinite(self, value: float, name: str) -> str:
        return "nan" if math.isnan(value) else ("infinity" if value > 0 else "-infinity")

    @staticmethod
    def _kind(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            return "int" if value in INT32 else ("int64" if value in INT64 else "bigint")
        return type(value).__name__

    def render_list(self, value: list, name: str) -> str:
        items = [self.render(v, name) for v in value]
        # F# lists hold one type: box the elements of a mixed list into an obj list
        if len({self._kind(v) for v in value}) > 1:
            items = [f"box ({item})" for item in items]
        return "[ " + "; ".join(items) + " ]"

    def render_dict(self, value: Mapping, name: str) -> str:
        if not value:
            return "Map.empty<string, IComparable>"
        items = "; ".join(
            f"({self.render(str(k), name)}, {self.render(v, name)} :> IComparable)"
            for k, v in value.items()
        )
        return f"[ {items} ] |> Map.ofList"


class PowerShellTranslator(LanguageTranslator):
    language = "PowerShell"
    # PowerShell also ends double-quoted strings at typographic quotes
    _NAMED = {
        "`": "``",
        '"': '`"',
        "$": "`$",
        "\n": "`n",
        "\r": "`r",
        "\t": "`t",
        "\0": "`0",
        "\u201c": "`\u201c",
        "\u201d": "`\u201d",
        "\u201e": "`\u201e",
    }

    def render_secret(self, env_var: str) -> str:
        return f"[Environment]::GetEnvironmentVariable({self.render(env_var)})"

    def forget_secret(self, env_var: str) -> str:
        return f"[Environment]::SetEnvironmentVariable({self.render(env_var)}, $Null)"

    def assign(self, name: str, rendered: str) -> str:
        return f"${name} = {rendered}"

    def render_none(self, name: str) -> str:
        return "$Null"

    def render_bool(self, value: bool) -> str:
        return "$True" if value else "$False"

    def render_text(self, value: str, name: str) -> str:
        def other(ch: str) -> str | None:
            return f"`u{{{ord(ch):x}}}" if ord(ch) < 0x20 or ord(ch) == 0x7F else None

        return '"' + escape(value, self._NAMED, other) + '"'

    def render_int(self, value: int) -> str:
        return str(value) if value in INT64 else f"[bigint]'{value}'"

    def render_nonfinite(self, value: float, name: str) -> str:
        if math.isnan(value):
            return "[double]::NaN"
        return "[double]::PositiveInfinity" if value > 0 else "[double]::NegativeInfinity"

    def render_list(self, value: list, name: str) -> str:
        return "@(" + ", ".join(self.render(v, name) for v in value) + ")"

    def render_dict(self, value: Mapping, name: str) -> str:
        items = (f"{self.render(str(k), name)} = {self.render(v, name)}" for k, v in value.items())
        return "@{" + "\n ".join(items) + "}"
