"""Secrets: values a notebook can use that never reach anything paramill writes.

A secret travels to the kernel in its environment (``PARAMILL_SECRET_<NAME>``); the injected
cell holds only code that reads (and removes) that variable, and the notebook's metadata holds
``<redacted>``. Whatever the notebook prints anyway is scrubbed from the outputs before every
save, from the stdout/stderr files and from log lines.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
from collections.abc import Iterator, Mapping
from typing import IO, Any

from .errors import ParameterError

REDACTED = "<redacted>"
ENV_PREFIX = "PARAMILL_SECRET_"
# Output bundles whose data is base64: a secret there is no readable leak, and replacing
# characters would corrupt the image.
_BINARY_MIMETYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf")
# Notebook metadata that names the kernel and language: never rewritten, whatever a secret is.
_KEPT_METADATA = ("kernelspec", "language_info")
# Shorter secrets match unrelated text (a kernel name, a word in a traceback) and would not be
# secret anyway; ``allow_short`` / ``--allow-short-secrets`` accepts them.
MIN_LENGTH = 6


def env_var(name: str) -> str:
    """The environment variable that carries secret ``name`` to the kernel."""
    return f"{ENV_PREFIX}{name}"


def check_secrets(
    secrets: Mapping[str, Any], parameters: Mapping[str, Any], allow_short: bool = False
) -> dict[str, str]:
    """Secrets as a name -> str dict; a name that is also a parameter is an error, and so is a
    value shorter than ``MIN_LENGTH`` unless ``allow_short``."""
    checked: dict[str, str] = {}
    for name, value in secrets.items():
        if name in parameters:
            raise ParameterError(f"{name!r} is given both as a parameter and as a secret")
        if not isinstance(value, str):
            raise ParameterError(f"secret {name!r} must be a string, not {type(value).__name__}")
        if not value:
            raise ParameterError(f"secret {name!r} is empty")
        if len(value) < MIN_LENGTH and not allow_short:
            raise ParameterError(
                f"secret {name!r} is shorter than {MIN_LENGTH} characters: scrubbing it would "
                "rewrite unrelated text (--allow-short-secrets accepts it)"
            )
        checked[name] = value
    return checked


def from_environment(items: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict:
    """``--secret-env NAME=ENVVAR``: the value of ENVVAR in the caller's environment."""
    environ = os.environ if environ is None else environ
    values = {}
    for name, variable in items.items():
        if variable not in environ:
            raise ParameterError(f"--secret-env {name}={variable}: {variable} is not set")
        values[name] = environ[variable]
    return values


def parse_secret_env(
    items: tuple[str, ...] | list[str], option: str = "--secret-env", what: str = "ENVVAR"
) -> dict[str, str]:
    """NAME=ENVVAR (or NAME=PATH) pairs from the command line."""
    pairs = {}
    for item in items:
        name, sep, variable = item.partition("=")
        if not sep or not name or not variable:
            raise ParameterError(f"{option} {item!r}: expected NAME={what}")
        pairs[name] = variable
    return pairs


def from_files(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``--secret-file NAME=PATH``: the file's text, less one trailing newline. Nothing on the
    command line shows the value (``ps`` shows every argument to every local user)."""
    values = {}
    for name, path in parse_secret_env(items, "--secret-file", "PATH").items():
        try:
            with open(path, encoding="utf-8", newline="") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ParameterError(f"--secret-file {name}={path}: {reason}") from None
        values[name] = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
    return values


def kernel_env(secrets: Mapping[str, str]) -> dict[str, str]:
    return {env_var(name): value for name, value in secrets.items()}


def values_in(env: Mapping[str, str] | None) -> list[str]:
    """The secret values a kernel environment carries (what to scrub from that kernel's own
    output)."""
    return [value for key, value in (env or {}).items() if key.startswith(ENV_PREFIX) and value]


def redacted(secrets: Mapping[str, Any]) -> dict[str, str]:
    """What the notebook's metadata and the run record show for each secret."""
    return dict.fromkeys(secrets, REDACTED)


def _escaped(value: str) -> set[str]:
    """How a notebook commonly shows a value: as it is, HTML-escaped, URL-quoted, inside a
    JSON string, a repr (of the str or its UTF-8 bytes)."""
    import html
    import json
    from urllib.parse import quote, quote_plus

    return {
        value,
        html.escape(value),
        html.escape(value, quote=False),
        quote(value),
        quote(value, safe=""),
        quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        repr(value.encode())[2:-1],
    }


@functools.lru_cache(maxsize=64)
def _forms_of(values: tuple[str, ...]) -> tuple[str, ...]:
    import json

    forms = {form for value in values for form in _escaped(value)}
    for _ in range(2):  # inside a JSON document or a repr, once or twice (a logged message dict)
        forms |= {json.dumps(f)[1:-1] for f in forms} | {repr(f)[1:-1] for f in forms}
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


def _forms(values: list[str]) -> list[str]:
    """Each value in every form the scrubber looks for, longest first."""
    return list(_forms_of(tuple(values)))


@functools.lru_cache(maxsize=64)
def _pattern_of(values: tuple[str, ...]) -> re.Pattern[str] | None:
    forms = _forms_of(values)
    # longest first: at a given position the longest form wins
    return re.compile("|".join(map(re.escape, forms))) if forms else None


def _pattern(values: list[str]) -> re.Pattern[str] | None:
    return _pattern_of(tuple(values))


def scrub_text(text: str, values: list[str]) -> str:
    pattern = _pattern(values)
    return text if pattern is None else pattern.sub(REDACTED, text)


def _scrub(node: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(node, str):
        return pattern.sub(REDACTED, node)
    if isinstance(node, list):
        for i, item in enumerate(node):
            node[i] = _scrub(item, pattern)
    elif isinstance(node, dict):
        for key in list(node):
            if key in _BINARY_MIMETYPES:
                continue
            node[key] = _scrub(node[key], pattern)
    return node


def scrub_notebook(nb: Any, values: list[str], sources: bool = True) -> Any:
    """Replace every occurrence of a secret value in the notebook's strings, in place.

    In place on purpose: it runs on the event loop before each save, so the live notebook,
    the returned notebook and the error read from it are all clean. ``sources=False`` leaves
    cell sources alone (during a run: a cell that compares with the secret must still run).
    ``metadata.kernelspec`` and ``metadata.language_info`` are never rewritten.
    """
    pattern = _pattern(values)
    if pattern is None:
        return nb
    if not isinstance(nb, dict) or "cells" not in nb:
        return _scrub(nb, pattern)
    for key in list(nb):
        if key == "metadata" and isinstance(nb[key], dict):
            for name in list(nb[key]):
                if name not in _KEPT_METADATA:
                    nb[key][name] = _scrub(nb[key][name], pattern)
        elif key != "cells":
            nb[key] = _scrub(nb[key], pattern)
    for cell in nb["cells"]:
        for key in list(cell):
            if sources or key != "source":
                cell[key] = _scrub(cell[key], pattern)
    return nb


class StreamScrubber:
    """Scrubs one continuous text stream that arrives in pieces, so a value split across two
    writes is still caught: ``feed`` returns what can go out now, scrubbed, and holds back the
    rest (the last ``len(longest form) - 1`` characters; with ``lines``, everything after the
    last newline, up to 64 KiB); ``close`` returns what is held. Without values it passes text
    through (in ``lines`` mode, whole lines)."""

    _LINE_LIMIT = 1 << 16

    def __init__(self, values: list[str], lines: bool = False) -> None:
        self._pattern = _pattern(values)
        forms = _forms(values)
        self._keep = max(map(len, forms), default=1) - 1
        # a form with a line break can straddle lines: whole lines wait until it is decidable
        self._multiline = any("\n" in form for form in forms)
        self._lines = lines
        self._held = ""

    def feed(self, text: str) -> str:
        if self._lines and "\n" not in text and len(self._held) + len(text) <= self._LINE_LIMIT:
            self._held += text  # no line ends here: nothing new to send (a progress bar's \r)
            return ""
        text = self._held + text
        # a match starting before `limit` has its longest possible form in `text`: decidable
        limit = len(text) - self._keep
        if not self._lines:
            cut = max(0, limit)
        else:
            cut = text.rfind("\n", 0, max(0, limit) if self._multiline else len(text)) + 1
            if len(text) - cut > self._LINE_LIMIT:  # a line without end goes in pieces
                cut = max(cut, limit)
        return self._emit(text, cut)

    def close(self) -> str:
        text, self._held = self._held, ""
        return self._emit(text, len(text))

    def _emit(self, text: str, cut: int) -> str:
        if self._pattern is None:
            self._held = text[cut:]
            return text[:cut]
        out, pos = [], 0
        for match in self._pattern.finditer(text):
            if match.start() >= cut:
                break
            out += [text[pos : match.start()], REDACTED]
            pos = match.end()
        cut = max(cut, pos)
        out.append(text[pos:cut])
        self._held = text[cut:]
        return "".join(out)


class ScrubbingWriter:
    """A text stream that redacts secret values before passing text on. It holds back a tail
    (a value split across writes must be caught whole) until the next write or ``close``,
    which writes it and flushes, but leaves the target open (the caller owns it)."""

    def __init__(self, target: IO[str], values: list[str]) -> None:
        self._target = target
        self._scrubber = StreamScrubber(values)

    def write(self, text: str) -> int:
        self._target.write(self._scrubber.feed(text))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def close(self) -> None:
        self._target.write(self._scrubber.close())
        self._target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class _RedactingFilter(logging.Filter):
    def __init__(self, values: list[str]) -> None:
        super().__init__()
        self.values = values

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub_text(message, self.values)
        if clean != message:
            record.msg, record.args = clean, None
        return True


@contextlib.contextmanager
def redacted_logs(values: list[str], logger_name: str = "paramill") -> Iterator[None]:
    """While the run goes on, log lines are scrubbed: paramill's (``--log-output`` echoes cell
    output) and any other library's that reach a configured handler (nbclient's debug log
    prints whole kernel messages)."""
    if not values:
        yield
        return
    flt = _RedactingFilter(values)
    loggers = [logging.getLogger(), logging.getLogger(logger_name)]
    loggers += [
        log for log in logging.Logger.manager.loggerDict.values() if isinstance(log, logging.Logger)
    ]
    handlers = {id(h): h for log in loggers for h in log.handlers}.values()
    logging.getLogger(logger_name).addFilter(flt)
    for handler in handlers:
        handler.addFilter(flt)
    try:
        yield
    finally:
        logging.getLogger(logger_name).removeFilter(flt)
        for handler in handlers:
            handler.removeFilter(flt)


def secret_source(translator: Any, names: list[str]) -> str:
    """Lines of the injected cell that bind each secret from the kernel's environment."""
    if not names:
        return ""
    lines = [translator.comment("Secrets: values redacted, read from the kernel's environment")]
    for name in names:
        translator.check_name(name)
        lines.append(translator.assign(name, translator.render_secret(env_var(name))))
        forget = translator.forget_secret(env_var(name))
        if forget:
            lines.append(forget)
    return "\n".join(lines) + "\n"
