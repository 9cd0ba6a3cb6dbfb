"""Translators for the kernels beyond Python, registered as ``paramill.translators`` entry points.

Each follows papermill's rendering (spec 3.4) where that gives working code, and departs from it
where papermill's code is broken on real kernels (shared/testing/kernels.md): papermill escapes
strings with Python's ``unicode_escape``, whose ``\\xNN`` is not a character in R, Julia, Octave or
C#, and it passes through values the language cannot hold. Here such a value is either rendered
so the kernel gets it exactly, or refused with a ParameterError naming parameter and language
before any kernel starts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ParameterError
from .translators import Translator

_ASCII_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: integers above this are not exact in languages whose numbers are doubles
_EXACT_DOUBLE = 2**53
_INT32 = range(-(2**31), 2**31)
_INT64 = range(-(2**63), 2**63)


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


class _Translator(Translator):
    """Shared plumbing: strings are rendered knowing their parameter (for error messages)."""

    #: reserved words that cannot be assigned to
    keywords: frozenset[str] = frozenset()
    name_pattern = _ASCII_NAME

    def check_name(self, name: str) -> None:
        if not (isinstance(name, str) and self.name_pattern.match(name)) or name in self.keywords:
            raise ParameterError(
                f"parameter name {name!r} is not a valid {self.language} variable name"
            )

    def render(self, value: Any, name: str = "?") -> str:
        if isinstance(value, str):
            if _has_surrogate(value) and not self.allows_surrogates:
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
        if abs(value) > _EXACT_DOUBLE:
            raise self.unsupported(
                name, f"the integer {value} exactly (numbers are doubles); pass it as a string"
            )
        return str(value)


def _escape(value: str, named: Mapping[str, str], other: Any) -> str:
    """Escape a string body: ``named`` characters by table, ``other(ch)`` for the rest or None."""
    out = []
    for ch in value:
        if ch in named:
            out.append(named[ch])
        else:
            rendered = other(ch)
            out.append(ch if rendered is None else rendered)
    return "".join(out)


_C_NAMED = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _u_escape(ch: str) -> str | None:
    """``\\uXXXX`` / ``\\UXXXXXXXX`` for control and non-ASCII characters (R, Julia, C#, F#)."""
    code = ord(ch)
    if 0x20 <= code < 0x7F:
        return None
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _utf16_escape(ch: str) -> str | None:
    """``\\uXXXX`` in UTF-16 units (surrogate pairs above the BMP), as Java/Scala want."""
    code = ord(ch)
    if 0x20 <= code < 0x7F:
        return None
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


# -- R -------------------------------------------------------------------------------------------
class RTranslator(_Translator):
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
        return '"' + _escape(value, _C_NAMED, _u_escape) + '"'

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
        from .script_inspect import inspect_r

        return inspect_r(source)


# -- Julia ---------------------------------------------------------------------------------------
class JuliaTranslator(_Translator):
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
        return '"' + _escape(value, {**_C_NAMED, "$": "\\$"}, _u_escape) + '"'

    def render_nonfinite(self, value: float, name: str) -> str:
        return "NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf")

    def render_list(self, value: list, name: str) -> str:
        return "[" + ", ".join(self.render(v, name) for v in value) + "]"

    def render_dict(self, value: Mapping, name: str) -> str:
        items = (f"{self.render(str(k), name)} => {self.render(v, name)}" for k, v in value.items())
        return "Dict(" + ", ".join(items) + ")"

    def inspect(self, source: str) -> list:
        from .script_inspect import inspect_julia

        return inspect_julia(source)


# -- Scala ---------------------------------------------------------------------------------------
# The JVM has no unsetenv. Its own copy of the environment (System.getenv, a ProcessBuilder's
# environment()) loses the variable by reflection (Spark opens java.lang to it); a child started
# without touching environment() gets the process's native environment, where the variable's
# bytes are overwritten in place through /proc/self/mem (the block /proc/self/stat locates).
_SCALA_FORGET = """locally {
  val n = {NAME}
  scala.util.Try {
    val f = Class.forName("java.lang.ProcessEnvironment").getDeclaredField("theEnvironment")
    f.setAccessible(true)
    f.get(null).asInstanceOf[java.util.Map[AnyRef, AnyRef]].keySet.removeIf(_.toString == n)
  }
  scala.util.Try {
    val stat = scala.io.Source.fromFile("/proc/self/stat").mkString
    val fields = stat.substring(stat.lastIndexOf(')') + 2).split(' ')
    val (start, end) = (fields(47).toLong, fields(48).toLong)
    val mem = new java.io.RandomAccessFile("/proc/self/mem", "rw")
    try {
      val block = new Array[Byte]((end - start).toInt)
      mem.seek(start)
      mem.readFully(block)
      val key = (n + "=").getBytes("UTF-8")
      for (i <- 0 to block.length - key.length
           if (i == 0 || block(i - 1) == 0) && block.slice(i, i + key.length).sameElements(key)) {
        val stop = block.indexOf(0.toByte, i) match { case -1 => block.length; case k => k }
        val equals = key.length - 10  // PARAMILL_________=______: neither name nor value
        mem.seek(start + i + 9)
        mem.write(Array.tabulate(stop - i - 9)(k => (if (k == equals) '=' else '_').toByte))
      }
    } finally mem.close()
  }
  ()
}"""

class ScalaTranslator(_Translator):
    """Scala (Apache Toree, sparkmagic's sparkkernel)."""

    language = "Scala"
    comment_prefix = "//"
    keywords = frozenset(
        "abstract case catch class def do else extends false final finally for forSome if "
        "implicit import lazy macro match new null object override package private protected "
        "return sealed super this throw trait try true type val var while with yield".split()
    )

    def render_secret(self, env_var: str) -> str:
        return f"sys.env({self.render(env_var)})"

    def forget_secret(self, env_var: str) -> str:
        return _SCALA_FORGET.replace("{NAME}", self.render(env_var))

    def assign(self, name: str, rendered: str) -> str:
        return f"val {name} = {rendered}"

    def render_none(self, name: str) -> str:
        return "None"

    def render_text(self, value: str, name: str) -> str:
        # Scala 2.12 turns \uXXXX into the character before lexing, so quotes, backslashes and
        # line breaks must keep their named escapes; everything else non-ASCII goes as \u.
        return '"' + _escape(value, _C_NAMED, _utf16_escape) + '"'

    def render_int(self, value: int) -> str:
        if value in _INT32:
            return str(value)
        if value in _INT64:
            return f"{value}L"
        return f'BigInt("{value}")'

    def render_nonfinite(self, value: float, name: str) -> str:
        if math.isnan(value):
            return "Double.NaN"
        return "Double.PositiveInfinity" if value > 0 else "Double.NegativeInfinity"

    def render_list(self, value: list, name: str) -> str:
        return "Seq(" + ", ".join(self.render(v, name) for v in value) + ")"

    def render_dict(self, value: Mapping, name: str) -> str:
        items = (f"{self.render(str(k), name)} -> {self.render(v, name)}" for k, v in value.items())
        return "Map(" + ", ".join(items) + ")"


# -- MATLAB and Octave ---------------------------------------------------------------------------
class MatlabTranslator(_Translator):
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

        return '"' + _escape(value, _C_NAMED, other) + '"'

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


# -- .NET ----------------------------------------------------------------------------------------
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


class CSharpTranslator(_Translator):
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
        return '"' + _escape(value, _C_NAMED, _u_escape) + '"'

    def render_int(self, value: int) -> str:
        if value in _INT32:
            return str(value)
        if value in _INT64:
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


class FSharpTranslator(_Translator):
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
        return '"' + _escape(value, _C_NAMED, _u_escape) + '"'

    def render_int(self, value: int) -> str:
        if value in _INT32:
            return str(value)
        return f"{value}L" if value in _INT64 else f"{value}I"

    def render_nonfinite(self, value: float, name: str) -> str:
        return "nan" if math.isnan(value) else ("infinity" if value > 0 else "-infinity")

    @staticmethod
    def _kind(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            return "int" if value in _INT32 else ("int64" if value in _INT64 else "bigint")
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


class PowerShellTranslator(_Translator):
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

        return '"' + _escape(value, self._NAMED, other) + '"'

    def render_int(self, value: int) -> str:
        return str(value) if value in _INT64 else f"[bigint]'{value}'"

    def render_nonfinite(self, value: float, name: str) -> str:
        if math.isnan(value):
            return "[double]::NaN"
        return "[double]::PositiveInfinity" if value > 0 else "[double]::NegativeInfinity"

    def render_list(self, value: list, name: str) -> str:
        return "@(" + ", ".join(self.render(v, name) for v in value) + ")"

    def render_dict(self, value: Mapping, name: str) -> str:
        items = (f"{self.render(str(k), name)} = {self.render(v, name)}" for k, v in value.items())
        return "@{" + "\n ".join(items) + "}"


# -- Bash ----------------------------------------------------------------------------------------
class BashTranslator(_Translator):
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
            return "$'" + _escape(value, named, self._hex_control) + "'"
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


# -- JavaScript and TypeScript -------------------------------------------------------------------
class JavaScriptTranslator(_Translator):
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
