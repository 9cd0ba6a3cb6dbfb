"""Rendering parameter values as code in the notebook's language.

A translator is one class per language. They are found through a registry keyed by kernel name,
then language, filled from the entry-point group ``paramill.translators`` (entry name = kernel
name or language, value = the class); adding a language is one class and one entry.
"""

from __future__ import annotations

import keyword
import math
from collections.abc import Mapping
from typing import Any

from ..errors import ParameterError, UnsupportedLanguageError
from .declared import Parameter, inspect_python

ENTRY_POINT_GROUP = "paramill.translators"


class Translator:
    """Base translator: subclasses override the ``render_*`` methods they need."""

    #: human name used in messages
    language = "?"
    comment_prefix = "#"

    # -- names ---------------------------------------------------------------------------------
    def check_name(self, name: str) -> None:
        """Raise ParameterError if ``name`` cannot be a variable name in this language."""
        if not (isinstance(name, str) and name.isidentifier() and name.isascii()):
            raise ParameterError(
                f"parameter name {name!r} is not a valid {self.language} variable name"
            )

    # -- values --------------------------------------------------------------------------------
    def unsupported(self, name: str, what: str) -> ParameterError:
        return ParameterError(f"parameter {name!r}: {self.language} cannot represent {what}")

    def render(self, value: Any, name: str = "?") -> str:
        """Code for ``value``; ``name`` is the parameter it belongs to (for error messages)."""
        if value is None:
            return self.render_none(name)
        if isinstance(value, str):
            return self.render_str(value)
        if isinstance(value, bool):
            return self.render_bool(value)
        if isinstance(value, int):
            return self.render_int(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                return self.render_nonfinite(value, name)
            return self.render_float(value)
        if isinstance(value, Mapping):
            return self.render_dict(value, name)
        if isinstance(value, (list, tuple)):
            return self.render_list(list(value), name)
        return self.render_fallback(value, name)

    def render_none(self, name: str) -> str:
        raise self.unsupported(name, "null/None")

    def render_str(self, value: str) -> str:
        raise NotImplementedError

    def render_bool(self, value: bool) -> str:
        return "true" if value else "false"

    def render_int(self, value: int) -> str:
        return str(value)

    def render_float(self, value: float) -> str:
        return repr(value)

    def render_nonfinite(self, value: float, name: str) -> str:
        raise self.unsupported(name, f"the non-finite float {value!r}")

    def render_list(self, value: list, name: str) -> str:
        raise self.unsupported(name, "lists")

    def render_dict(self, value: Mapping, name: str) -> str:
        raise self.unsupported(name, "dicts")

    def render_fallback(self, value: Any, name: str) -> str:
        """Types with no literal (dates, sets, objects): their text, properly escaped."""
        return self.render_str(str(value))

    # -- cells ---------------------------------------------------------------------------------
    def comment(self, text: str) -> str:
        return f"{self.comment_prefix} {text}".strip()

    def assign(self, name: str, rendered: str) -> str:
        return f"{name} = {rendered}"

    def codify(self, parameters: Mapping[str, Any], comment: str = "Parameters") -> str:
        """The whole injected cell: a comment line, then one assignment per parameter."""
        lines = [self.comment(comment)]
        for name, value in parameters.items():
            self.check_name(name)
            lines.append(self.assign(name, self.render(value, name)))
        return "\n".join(lines) + "\n"

    def inspect(self, source: str) -> list[Parameter]:
        """Declared parameters of a parameters cell; NotImplementedError if not supported."""
        raise NotImplementedError(f"parameter introspection is not available for {self.language}")

    # -- kernels -------------------------------------------------------------------------------
    def find_failure(self, cell: Any) -> tuple[str, str] | None:
        """(ename, evalue) when an executed cell failed in a way its kernel does not report as
        an error (e.g. Octave prints ``error: ...`` with status ok); None otherwise."""
        return None

    def kernel_setup(self) -> str:
        """Code run silently once the kernel has started, before the first cell (e.g. the
        Bash ERR trap that lets ``find_failure`` see failing commands); empty for none."""
        return ""

    def render_secret(self, env_var: str) -> str:
        """An expression that evaluates to the environment variable ``env_var`` (a secret's
        value) and, where the language can, removes it so child processes do not inherit it."""
        raise ParameterError(f"secrets are not supported for {self.language}")

    def forget_secret(self, env_var: str) -> str:
        """A statement run right after the secret is bound that removes ``env_var`` from the
        kernel's environment (child processes must not inherit it); empty when
        ``render_secret`` removes it itself."""
        return ""


def escaped_str(value: str) -> str:
    """papermill's escaped string: unicode_escape, then ``"`` escaped, in double quotes."""
    return '"' + value.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


class PythonTranslator(Translator):
    language = "Python"

    def check_name(self, name: str) -> None:
        if not (isinstance(name, str) and name.isidentifier()) or keyword.iskeyword(name):
            raise ParameterError(f"parameter name {name!r} is not a valid Python identifier")

    def render_none(self, name: str) -> str:
        return "None"

    def render_str(self, value: str) -> str:
        return escaped_str(value)

    def render_bool(self, value: bool) -> str:
        return "True" if value else "False"

    def render_nonfinite(self, value: float, name: str) -> str:
        return f"float('{value!r}')"

    def render_list(self, value: list, name: str) -> str:
        return "[" + ", ".join(self.render(v, name) for v in value) + "]"

    def render_dict(self, value: Mapping, name: str) -> str:
        # keys keep their type (papermill turned every key into a string)
        items = (f"{self.render(k, name)}: {self.render(v, name)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"

    def render_secret(self, env_var: str) -> str:
        return f'__import__("os").environ.pop({escaped_str(env_var)})'

    def inspect(self, source: str) -> list[Parameter]:
        return inspect_python(source)


# -- registry ------------------------------------------------------------------------------------
_registry: dict[str, type[Translator]] = {}
_loaded = False


def register_translator(key: str, translator: type[Translator]) -> None:
    """Register a translator class for a kernel name or language (in-process)."""
    _registry[key] = translator


def _load_entry_points() -> None:
    global _loaded
    if _loaded:
        return
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _registry.setdefault(ep.name, ep)  # loaded on first use
    _registry.setdefault("python", PythonTranslator)
    _loaded = True


def known_keys() -> list[str]:
    _load_entry_points()
    return sorted(_registry, key=str.lower)


def _lookup(key: str | None) -> type[Translator] | None:
    if not key:
        return None
    found = _registry.get(key)
    if found is None:
        lowered = {k.lower(): v for k, v in _registry.items()}
        found = lowered.get(key.lower())
    if found is None:
        return None
    if not isinstance(found, type):  # an entry point not loaded yet
        found = found.load()
        _registry[key] = found
    return found


def get_translator(kernel_name: str | None, language: str | None) -> Translator:
    """The translator for a kernel name, else for a language."""
    _load_entry_points()
    cls = _lookup(kernel_name) or _lookup(language)
    if cls is None:
        raise UnsupportedLanguageError(
            f"no parameter translator for kernel {kernel_name!r} or language {language!r}; "
            f"known: {', '.join(known_keys())}"
        )
    return cls()
