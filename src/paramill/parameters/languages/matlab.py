"""MATLAB and Octave."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .base import (
    C_NAMED,
    LanguageTranslator,
    escape,
)


class MatlabTranslator(LanguageTranslator):
    language = "MATLAB"
    comment_prefix = "%"
    keywords = frozenset(
        "break case catch classdef continue else elseif end for function global if otherwise "
        "parfor persistent return spmd switch try while".split()
    )
    name_pattern = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}\Z")
    _CONTROL = re.compile(r"[\x00-\x1f\x7f]")

    def render_secret(self, env_var: str) -> str:
        return f"getenv('{env_var}')"

    def forget_secret(self, env_var: str) -> str:
        return f"setenv('{env_var}', '');"

    def assign(self, name: str, rendered: str) -> str:
        return f"{name} = {rendered};"

    def render_none(self, name: str) -> str:
        return "NaN"  # papermill's choice; MATLAB has no null

    def render(self, value: Any, name: str = "?") -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            return self.exact_int(value, name)
        return super().render(value, name)

    def render_text(self, value: str, name: str) -> str:
        # MATLAB strings have no backslash escapes: "" is a quote, control characters are
        # concatenated as char(N); non-ASCII text is written as it is (UTF-8 source).
        pieces, last = [], 0
        for match in self._CONTROL.finditer(value):
            if match.start() > last:
                pieces.append('"' + value[last : match.start()].replace('"', '""') + '"')
            pieces.append(f"char({ord(match.group())})")
            last = match.end()
        if last < len(value) or not pieces:
            pieces.append('"' + value[last:].replace('"', '""') + '"')
        if not pieces[0].startswith('"'):
            pieces.insert(0, '""')  # string + char is a string; char + char would be a sum
        return " + ".join(pieces)

    def render_nonfinite(self, value: float, name: str) -> str:
        return repr(value)  # nan, inf and -inf are functions in MATLAB and Octave

    def render_list(self, value: list, name: str) -> str:
        return "{" + ", ".join(self.render(v, name) for v in value) + "}"

    def render_dict(self, value: Mapping, name: str) -> str:
        if not value:
            return "containers.Map()"
        keys = ", ".join("'" + str(k).replace("'", "''") + "'" for k in value)
        if any(self._CONTROL.search(str(k)) for k in value):
            raise self.unsupported(name, "a dict key containing control characters")
        values = ", ".join(self.render(v, name) for v in value.values())
        return f"containers.Map({{{keys}}}, {{{values}}})"


class OctaveTranslator(MatlabTranslator):
    """GNU Octave (octave_kernel): double-quoted strings take C escapes; None is ``[]`` and a
    dict is a ``struct`` (``containers.Map`` when a key is not a field name)."""

    language = "Octave"
    keywords = MatlabTranslator.keywords | frozenset(
        "do until unwind_protect unwind_protect_cleanup end_try_catch endif endfor endwhile "
        "endfunction endswitch end_unwind_protect".split()
    )
    _ERROR_LINE = re.compile(r"^error: (.*?)\r?$", re.MULTILINE)

    def forget_secret(self, env_var: str) -> str:
        return f"unsetenv('{env_var}');"

    def render_none(self, name: str) -> str:
        return "[]"

    def render_text(self, value: str, name: str) -> str:
        def other(ch: str) -> str | None:
            # octal with exactly three digits: Octave's \x takes every hex digit that follows
            return f"\\{ord(ch):03o}" if ord(ch) < 0x20 or ord(ch) == 0x7F else None

        return '"' + escape(value, C_NAMED, other) + '"'

    def render_dict(self, value: Mapping, name: str) -> str:
        if not all(isinstance(k, str) and self.name_pattern.match(k) for k in value):
            return super().render_dict(value, name)
        fields = []
        for key, item in value.items():
            rendered = self.render(item, name)
            # struct('k', {a, b}) would make a struct array: wrap cell values once more
            if isinstance(item, (list, tuple)):
                rendered = "{" + rendered + "}"
            fields.append(f"'{key}', {rendered}")
        return "struct(" + ", ".join(fields) + ")"

    def kernel_setup(self) -> str:
        # no octave-workspace file in the notebook's folder when the kernel is killed, and no
        # parameter values in ~/.local/share/octave/history
        return "crash_dumps_octave_core(false); history_save(false);"

    def find_failure(self, cell: Any) -> tuple[str, str] | None:
        # octave_kernel prints "error: ..." on stdout with status ok
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                match = self._ERROR_LINE.search(output.get("text", ""))
                if match:
                    return "OctaveError", match.group(1)
        return None
