"""Locations: local paths, ``-`` and URLs, how paramill shows them, and papermill's spellings."""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import StorageError

# Which extra installs the fsspec implementation of a protocol.
EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "abs": "azure",
    "http": "http",
    "https": "http",
}
# Spellings of one store; options scoped to any of them apply to all.


def protocol_of(path: str) -> str | None:
    """The URL scheme of ``path`` (``None`` for local paths and ``-``)."""
    if "://" not in path:
        return None
    scheme = path.split("://", 1)[0]
    if "::" in scheme:  # a chained URL (simplecache::s3://...): the outermost protocol
        scheme = scheme.split("::", 1)[0]
    # a Windows drive letter is not a protocol
    return None if len(scheme) == 1 else scheme.lower()


def is_url(path: Any) -> bool:
    """Whether ``path`` is a URL (``s3://...``, ``file://...``, ``simplecache::gs://...``):
    a string with a scheme before ``://``; local paths, ``-`` and non-strings are not."""
    return isinstance(path, str) and protocol_of(path) is not None


def is_local(path: str | os.PathLike) -> bool:
    path = os.fspath(path)
    return path != "-" and protocol_of(path) in (None, "file")


# Stores whose URL names a container before the '@' (abfs://CONTAINER@ACCOUNT...): not user-info.
_CONTAINER_AT = {"az", "abfs", "abfss"}
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()]+")


def display_url(path: Any) -> Any:
    """A location as paramill logs, stores and prints it: a URL loses its user-info
    (``user:password@``) and its query string (an Azure SAS token, a signed URL's signature,
    ``?token=...``); local paths and non-strings are returned as they are. The real location
    is still the one read and written."""
    if not isinstance(path, str) or is_local(path) or path == "-":
        return path
    return "::".join(_without_credentials(part) for part in path.split("::"))


def _without_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    user, at, host = authority.rpartition("@")
    if at and (scheme.lower() not in _CONTAINER_AT or ":" in user):
        authority = host
    return f"{scheme}{sep}{authority}{slash}{tail}".split("?", 1)[0]


def display_urls(text: str) -> str:
    """``text`` (an SDK's error message, say) with every URL in it shown as ``display_url``."""
    return _URL_IN_TEXT.sub(lambda m: display_url(m[0]), text)


def same_location(a: Any, b: Any) -> bool:
    """Whether two locations name one file: local paths once resolved (symlinks, ``..``,
    ``file://``), URLs when they are the same string. ``-`` and non-strings never match."""
    if not isinstance(a, str) or not isinstance(b, str) or "-" in (a, b):
        return False
    return location_key(a) == location_key(b)


def location_key(path: str) -> str:
    """One spelling per location: a local path resolved and case-normalized, a URL as is."""
    if not is_local(path):
        return path
    return os.path.normcase(os.path.realpath(local_path(path)))


def local_path(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def normalize_url(url: str) -> tuple[str, dict[str, Any]]:
    """papermill's spellings to fsspec's, with the options the spelling carries.

    ``abs://ACCOUNT.blob.core.windows.net/CONTAINER/PATH?SAS`` -> ``az://CONTAINER/PATH`` with
    ``account_name`` and ``sas_token``; a github.com file page -> its raw content.
    """
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme == "abs":
        host, _, path = rest.partition("/")
        path, _, sas = path.partition("?")
        account = host.split(".", 1)[0] if host.endswith(".blob.core.windows.net") else ""
        if not account or not path:
            raise StorageError(
                f"{display_url(url)}: expected abs://ACCOUNT.blob.core.windows.net/CONTAINER/PATH"
            )
        extra: dict[str, Any] = {"account_name": account}
        if sas:
            extra["sas_token"] = sas
        return "az://" + path, extra
    if scheme in ("http", "https") and rest.startswith("github.com/"):
        # papermill reads github.com/ORG/REPO/blob/REF/PATH through GitHub's API; the raw file
        # is the same content (GITHUB_ACCESS_TOKEN, if set, for private repositories)
        parts = rest.split("?", 1)[0].split("/")
        if len(parts) >= 6 and parts[3] in ("blob", "raw"):
            org, repo, ref, path = parts[1], parts[2], parts[4], "/".join(parts[5:])
            token = os.environ.get("GITHUB_ACCESS_TOKEN")
            extra = {"headers": {"Authorization": f"token {token}"}} if token else {}
            return f"https://raw.githubusercontent.com/{org}/{repo}/{ref}/{path}", extra
    if scheme == "adl":
        raise StorageError(
            f"{display_url(url)}: adl:// is Azure Data Lake Storage Gen1, which Azure retired in "
            "2024; use az://CONTAINER/PATH or abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH"
        )
    return url, {}
