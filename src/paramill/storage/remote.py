"""Remote storage through fsspec: options per protocol, cached filesystems, one request per read
or write. fsspec and its backends are imported only when a URL is used."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from .locations import EXTRAS, normalize_url, protocol_of
from .retry import translate, with_retries

# Spellings of one store; options scoped to any of them apply to all.
_FAMILIES = [{"s3", "s3a"}, {"gs", "gcs"}, {"az", "abfs", "abfss", "abs"}, {"http", "https"}]
# Environment variables that change what a filesystem instance does, per family (cache key).
_ENV_PREFIXES = (
    "AWS_",
    "BOTO3_",
    "AZURE_",
    "GOOGLE_",
    "GCSFS_",
    "STORAGE_EMULATOR_HOST",
    "FSSPEC_",
)
_ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "BOTO3_ENDPOINT_URL")


def _family(protocol: str) -> set[str]:
    for family in _FAMILIES:
        if protocol in family:
            return family
    return {protocol}


def _known_protocols() -> set[str]:
    import fsspec
    from fsspec.registry import registry

    return set(fsspec.available_protocols()) | set(registry) | set(EXTRAS)


def options_for(protocol: str, storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options that apply to a URL of ``protocol``: the flat keys, then the keys scoped to
    the protocol's family (which win), then defaults from the environment."""
    flat: dict[str, Any] = {}
    scoped: dict[str, Any] = {}
    if storage_options:
        known = _known_protocols()
        family = _family(protocol)
        for key, value in storage_options.items():
            if key in known and isinstance(value, Mapping):
                if key in family:
                    scoped.update(value)
            else:
                flat[key] = value
    options = {**flat, **scoped}
    _add_env_defaults(protocol, options)
    return options


def _add_env_defaults(protocol: str, options: dict[str, Any]) -> None:
    family = _family(protocol)
    if "s3" in family:
        # botocore reads AWS_* too, but only from version 1.31 on; BOTO3_ENDPOINT_URL is
        # papermill's name for it
        endpoint = next((os.environ[k] for k in _ENDPOINT_VARS if os.environ.get(k)), None)
        client_kwargs = options.get("client_kwargs") or {}
        if endpoint and "endpoint_url" not in options and "endpoint_url" not in client_kwargs:
            options["endpoint_url"] = endpoint
    elif "gs" in family:
        # an emulator takes no credentials; without this gcsfs looks for Google ones first
        if os.environ.get("STORAGE_EMULATOR_HOST") and "token" not in options:
            options["token"] = "anon"


_cache: dict[tuple, Any] = {}
_cache_lock = threading.Lock()


def _filesystem_class(protocol: str, options: Mapping[str, Any]) -> type:
    import fsspec

    emulated = os.environ.get("STORAGE_EMULATOR_HOST") or options.get("endpoint_url")
    if protocol in ("gs", "gcs") and emulated:
        # gcsfs's default class (unless GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false before import)
        # makes a gRPC call with a 60 s deadline per operation, which an emulator never answers
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem
    return fsspec.get_filesystem_class(protocol)


def _filesystem(protocol: str, options: dict[str, Any]) -> Any:
    """A filesystem instance, reused while the options and the storage environment are the same
    (fsspec's own cache ignores the environment, so a changed AWS_* would go unseen)."""
    cls = _filesystem_class(protocol, options)
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)))
    key = (cls, repr(sorted(options.items())), env, os.getpid())
    with _cache_lock:
        fs = _cache.get(key)
        if fs is None:
            fs = cls(**options, skip_instance_cache=True)
            if len(_cache) > 32:
                _cache.clear()
            _cache[key] = fs
        return fs


def _resolve(url: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    """(filesystem, path within it) for a URL."""
    import fsspec

    normalized, extra = normalize_url(url)
    protocol = protocol_of(normalized) or "file"
    options = {**extra, **options_for(protocol_of(url) or protocol, storage_options)}
    if "::" in normalized:  # chained URLs: fsspec splits the options itself
        return fsspec.core.url_to_fs(normalized, **options)
    fs = _filesystem(protocol, options)
    return fs, fs._strip_protocol(normalized)


def _run(fs: Any, method: str, *args: Any, timeout: float) -> Any:
    """Call a filesystem method, cancelling it after ``timeout`` seconds when it is async (so a
    late upload cannot land after a newer one)."""
    from fsspec.asyn import AsyncFileSystem, sync

    if isinstance(fs, AsyncFileSystem) and not fs.asynchronous:
        return sync(fs.loop, getattr(fs, "_" + method), *args, timeout=timeout)
    return getattr(fs, method)(*args)


# -- reading and writing -----------------------------------------------------------------------


def read_bytes(url: str, storage_options: Mapping[str, Any] | None = None) -> bytes:
    """The whole content of a remote object (one GET, retried when transient)."""
    try:
        fs, path = _resolve(url, storage_options)
    except Exception as exc:
        raise translate(url, exc, writing=False) from exc
    return with_retries(url, lambda left: _run(fs, "cat_file", path, timeout=left), False)


def write_bytes(url: str, data: bytes, storage_options: Mapping[str, Any] | None = None) -> None:
    """Replace a remote object with ``data`` in one upload, retried when transient."""
    try:
        fs, path = _resolve(url, storage_options)
    except Exception as exc:
        raise translate(url, exc, writing=True) from exc
    with_retries(url, lambda left: _run(fs, "pipe_file", path, data, timeout=left), True)
