"""IPython syntax that is not Python, blanked so ``ast`` can read the rest of a cell.

One rule for every reader of Python cells (parameter inspection, a sweep's template imports):
a line is IPython's, not Python's, when its stripped text starts with one of IPython's escape
characters -- ``%`` (magic), ``!`` (shell), ``?`` (help: ``?obj``, ``??obj``) -- or is a help
request written after the name (``obj?``, ``obj.attr??``, ``%magic?``). IPython runs such a
cell, so reading it must not fail or warn; the line becomes empty, keeping line numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ESCAPES = ("%", "!", "?")
# IPython's help-end form: a dotted name (or a magic) followed by one or two question marks
_HELP_AFTER = re.compile(r"%{0,2}[A-Za-z_*][\w*]*(?:\.[A-Za-z_*][\w*]*)*\?\??\Z")


def is_ipython_line(line: str) -> bool:
    """Whether ``line`` is IPython syntax (magic, shell escape, help request), not Python."""
    text = line.strip()
    return text.startswith(_ESCAPES) or bool(_HELP_AFTER.match(text))


def blank_magics(lines: Iterable[str]) -> list[str]:
    """``lines`` with every IPython-only line (see ``is_ipython_line``) made empty."""
    return ["" if is_ipython_line(line) else line for line in lines]
