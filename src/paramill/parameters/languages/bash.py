"""Bash (bash_kernel)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ...errors import ParameterError
from .base import (
    LanguageTranslator,
    escape,
)


class BashTranslator(LanguageTranslator):
    """Bash (bash_kernel). Values are text: numbers and booleans as their words, a list is an
    indexed array, a dict an associative array; nested lists/dicts become JSON text.

    Failures: bash_kernel reports only the status of a cell's last command, and ``set -e`` would
    kill its shell. So ``kernel_setup`` installs an ERR trap (with errtrace, so functions and
    subshells inherit it) that prints a mark for every command ``set -e`` would stop at (not
    conditions, ``||`` chains or ``!``), and ``find_failure`` fails the cell on that mark. The
    rest of that cell still runs; the run stops after it.
    """

    language = "Bash"
    keywords = frozenset(
        "if then else elif fi case esac for select while until do done in function time".split()
    )
    _SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+\Z")
    _CONTROL = re.compile(r"[\x01-\x1f\x7f]")
    FAILURE_MARK = "[paramill] command failed"
    #: variables the shell (or the programs it starts) reads: assigning one runs its value as
    #: code (prompts, PROMPT_COMMAND, BASH_ENV, LD_PRELOAD, HISTFILE written at exit) or changes
    #: how every later command runs (IFS, PATH, HOME, locale, shell options, readonly ones)
    SPECIAL_NAMES = frozenset(
        "PS0 PS1 PS2 PS3 PS4 PROMPT_COMMAND PROMPT_DIRTRIM ENV BASH BASHOPTS BASHPID SHELLOPTS "
        "IFS PATH CDPATH HOME GLOBIGNORE GLOBSORT EXECIGNORE FIGNORE FUNCNEST INPUTRC HOSTFILE "
        "TIMEFORMAT TMOUT TMPDIR IGNOREEOF POSIXLY_CORRECT SHELL TERM COLUMNS LINES LANG "
        "MAIL MAILCHECK MAILPATH OPTARG OPTIND OPTERR PWD OLDPWD SHLVL UID EUID PPID GROUPS "
        "RANDOM SRANDOM SECONDS LINENO EPOCHREALTIME EPOCHSECONDS FUNCNAME DIRSTACK PIPESTATUS "
        "HISTCMD HISTCONTROL HISTFILE HISTFILESIZE HISTIGNORE HISTSIZE HISTTIMEFORMAT histchars "
        "auto_resume".split()
    )
    SPECIAL_PREFIXES = ("BASH_", "LC_", "LD_", "COMP_", "READLINE_")

    def check_name(self, name: str) -> None:
        super().check_name(name)
        if name in self.SPECIAL_NAMES or name.startswith(self.SPECIAL_PREFIXES):
            raise ParameterError(
                f"parameter {name!r}: {name} is a special Bash variable (the shell runs its "
                "value as code or changes how later commands run); rename the parameter"
            )

    def render_secret(self, env_var: str) -> str:
        return f'"${{{env_var}}}"'

    def forget_secret(self, env_var: str) -> str:
        return f"unset -v {env_var}"

    def assign(self, name: str, rendered: str) -> str:
        if rendered.startswith("("):  # an array over a scalar (or vice versa) must start afresh
            return f"unset -v {name}; {name}={rendered}"
        if rendered.startswith("declare -A "):
            return f"unset -v {name}; {rendered[:11]}{name}={rendered[11:]}"
        return f"{name}={rendered}"

    def render_none(self, name: str) -> str:
        return ""

    def render_text(self, value: str, name: str) -> str:
        if "\0" in value:
            raise self.unsupported(name, "a string containing a NUL character")
        if self._CONTROL.search(value):
            # bash_kernel types into readline, which eats a literal TAB: use $'...'
            named = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
            return "$'" + escape(value, named, self._hex_control) + "'"
        if self._SAFE.match(value):
            return value
        return "'" + value.replace("'", "'\"'\"'") + "'"

    def _hex_control(self, ch: str) -> str | None:
        return f"\\x{ord(ch):02x}" if self._CONTROL.match(ch) else None

    def render_nonfinite(self, value: float, name: str) -> str:
        return repr(value)  # text like every other number in bash

    def _element(self, value: Any, name: str) -> str:
        if value is None:
            return "''"
        if isinstance(value, (Mapping, list, tuple)):
            return self.render(json.dumps(value, ensure_ascii=False, default=str), name)
        return self.render(value, name)

    def render_list(self, value: list, name: str) -> str:
        return "(" + " ".join(self._element(v, name) for v in value) + ")"

    def render_dict(self, value: Mapping, name: str) -> str:
        items = []
        for key, item in value.items():
            if str(key) == "":
                raise self.unsupported(name, "an empty dict key")
            items.append(f"[{self._element(str(key), name)}]={self._element(item, name)}")
        return "declare -A (" + " ".join(items) + ")"

    def kernel_setup(self) -> str:
        # bash_kernel reports only the last command's status: report every failing command
        # (the commands `set -e` would stop at) with a mark that find_failure looks for.
        return (
            'set -o errtrace; trap \'__paramill_rc=$?; printf "%s (exit %s): %s\\n" '
            f'"{self.FAILURE_MARK}" "$__paramill_rc" "$BASH_COMMAND"\' ERR'
        )

    def find_failure(self, cell: Any) -> tuple[str, str] | None:
        for output in cell.get("outputs", []):
            if output.get("output_type") != "stream":
                continue
            text = output.get("text", "")
            at = text.find(self.FAILURE_MARK)
            if at >= 0:
                line = text[at + len(self.FAILURE_MARK) :].splitlines()[0].strip()
                return "BashCommandError", "command failed " + line
        return None
