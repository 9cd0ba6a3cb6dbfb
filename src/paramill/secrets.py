"""Secrets: values a notebook can use that never reach anything paramill writes.

A secret travels to the kernel in its environment (``PARAMILL_SECRET_<NAME>``); the injected
cell holds only code that reads (and removes) that variable, and the notebook's metadata holds
``<redacted>``. Whatever the notebook prints anyway is scrubbed from the outputs before every
save, from the stdout/stderr files and from log lines.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import IO, Any

from .errors import ParameterError

REDACTED = "<redacted>"
ENV_PREFIX = "PARAMILL_SECRET_"
# Output bundles whose data is base64: a secret there is no readable leak, and replacing
# characters would corrupt the image.
_BINARY_MIMETYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf")


def env_var(name: str) -> str:
    """The environment variable that carries secret ``name`` to the kernel."""
    return f"{ENV_PREFIX}{name}"


def check_secrets(secrets: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, str]:
    """Secrets as a name -> str dict; a name that is also a parameter is an error."""
    checked: dict[str, str] = {}
    for name, value in secrets.items():
        if name in parameters:
            raise ParameterError(f"{name!r} is given both as a parameter and as a secret")
        if not isinstance(value, str):
            raise ParameterError(f"secret {name!r} must be a string, not {type(value).__name__}")
        if not value:
            raise ParameterError(f"secret {name!r} is empty")
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


def parse_secret_env(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """NAME=ENVVAR pairs from the command line."""
    pairs = {}
    for item in items:
        name, sep, variable = item.partition("=")
        if not sep or not name or not variable:
            raise ParameterError(f"--secret-env {item!r}: expected NAME=ENVVAR")
        pairs[name] = variable
    return pairs


def kernel_env(secrets: Mapping[str, str]) -> dict[str, str]:
    return {env_var(name): value for name, value in secrets.items()}


def redacted(secrets: Mapping[str, Any]) -> dict[str, str]:
    """What the notebook's metadata and the run record show for each secret."""
    return dict.fromkeys(secrets, REDACTED)


def _forms(values: list[str]) -> list[str]:
    """Each value as printed and as it appears escaped inside JSON or repr strings, once or
    twice (a repr inside a JSON document, a message dict in a debug log), longest first."""
    import json

    forms = set(values)
    for _ in range(2):
        forms |= {json.dumps(f)[1:-1] for f in forms} | {repr(f)[1:-1] for f in forms}
    return sorted((f for f in forms if f), key=len, reverse=True)


def scrub_text(text: str, values: list[str]) -> str:
    for form in _forms(values):
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def _scrub(node: Any, forms: list[str]) -> Any:
    if isinstance(node, str):
        for form in forms:
            if form in node:
                node = node.replace(form, REDACTED)
        return node
    if isinstance(node, list):
        for i, item in enumerate(node):
            node[i] = _scrub(item, forms)
    elif isinstance(node, dict):
        for key in list(node):
            if key in _BINARY_MIMETYPES:
                continue
            node[key] = _scrub(node[key], forms)
    return node


def scrub_notebook(nb: Any, values: list[str], sources: bool = True) -> Any:
    """Replace every occurrence of a secret value in the notebook's strings, in place.

    In place on purpose: it runs on the event loop before each save, so the live notebook,
    the returned notebook and the error read from it are all clean. ``sources=False`` leaves
    cell sources alone (during a run: a cell that compares with the secret must still run).
    """
    if not values:
        return nb
    forms = _forms(values)
    if sources or not isinstance(nb, dict) or "cells" not in nb:
        return _scrub(nb, forms)
    for key in list(nb):
        if key != "cells":
            nb[key] = _scrub(nb[key], forms)
    for cell in nb["cells"]:
        for key in list(cell):
            if key != "source":
                cell[key] = _scrub(cell[key], forms)
    return nb


class ScrubbingWriter:
    """A text stream that redacts secret values before passing text on."""

    def __init__(self, target: IO[str], values: list[str]) -> None:
        self._target = target
        self._values = values

    def write(self, text: str) -> int:
        return self._target.write(scrub_text(text, self._values))

    def flush(self) -> None:
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
    return "\n".join(lines) + "\n"
