"""Option values the library does not take as given: storage options, secrets, log level."""

from __future__ import annotations

import logging
import sys
from typing import Any

from ..errors import ParameterError
from ..parameters import load_yaml
from ..secrets import from_environment, from_files, parse_secret_env
from .options import SharedOptions


def parse_storage_options(items: tuple[str, ...]) -> dict[str, Any] | None:
    """KEY=VALUE pairs; values are YAML scalars (true, 3, ...); dotted keys nest
    (client_kwargs.endpoint_url=...)."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParameterError(f"--storage-option {item!r}: expected KEY=VALUE")
        target = options
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = load_yaml(f"v: {value}" if value else "v: ''").get("v", value)
    return options or None


def secrets(opts: SharedOptions) -> dict[str, str]:
    """-s, --secret-env and --secret-file as one name -> value dict."""
    return {
        **dict(opts.secret),
        **from_environment(parse_secret_env(opts.secret_env)),
        **from_files(opts.secret_file),
    }


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    logging.getLogger("paramill").setLevel(level)
