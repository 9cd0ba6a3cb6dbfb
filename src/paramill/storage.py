"""Reading and writing notebooks and parameter files on any storage.

Local paths are handled directly (atomic writes, parent folders created); every URL goes through
fsspec, so any protocol fsspec knows works with no code here. ``-`` means stdin/stdout.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from .errors import MissingDependencyError, StorageError

# Which extra installs the fsspec implementation of a protocol.
_EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
    "abs": "azure",
    "http": "http",
    "https": "http",
}


def protocol_of(path: str) -> str | None:
    """The URL scheme of ``path`` (``None`` for local paths and ``-``)."""
    if "://" not in path:
        return None
    scheme = path.split("://", 1)[0]
    # a Windows drive letter is not a protocol
    return None if len(scheme) == 1 else scheme.lower()


def is_local(path: str | os.PathLike) -> bool:
    path = os.fspath(path)
    return path != "-" and protocol_of(path) in (None, "file")


def _local_path(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def _normalize_url(url: str) -> str:
    """papermill's Azure spellings to fsspec's: abs://account.blob.core.windows.net/c/p -> az://c/p."""
    scheme, rest = url.split("://", 1)
    if scheme == "abs" and ".blob.core.windows.net/" in rest:
        return "az://" + rest.split("/", 1)[1].split("?", 1)[0]
    if scheme == "adl" and ".azuredatalakestore.net/" in rest:
        return "adl://" + rest
    return url


def _filesystem_error(url: str, exc: BaseException) -> StorageError:
    if isinstance(exc, ImportError) or (
        isinstance(exc, ValueError) and "Protocol not known" in str(exc)
    ):
        proto = protocol_of(url) or ""
        extra = _EXTRAS.get(proto)
        if extra:
            return MissingDependencyError(
                f"reading or writing {proto}:// needs an optional dependency: "
                f"pip install 'paramill[{extra}]'"
            )
        return StorageError(f"no storage backend for {proto}:// ({exc})")
    if isinstance(exc, FileNotFoundError):
        return StorageError(f"{url}: not found")
    if isinstance(exc, PermissionError):
        return StorageError(f"{url}: permission denied")
    return StorageError(f"{url}: {type(exc).__name__}: {exc}".rstrip(": "))


def read_text(path: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> str:
    """Read a whole text file (UTF-8) from a local path, ``-`` (stdin) or a URL."""
    path = os.fspath(path)
    if path == "-":
        return sys.stdin.read()
    if is_local(path):
        local = _local_path(path)
        try:
            with open(local, encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            raise StorageError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise StorageError(f"{path}: is a directory, not a file") from None
        except PermissionError:
            raise StorageError(f"{path}: permission denied") from None
        except UnicodeDecodeError as exc:
            raise StorageError(f"{path}: not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            raise StorageError(f"{path}: {exc.strerror or exc}") from None
    url = _normalize_url(path)
    try:
        import fsspec

        with fsspec.open(url, "rb", **(storage_options or {})) as f:
            data = f.read()
    except Exception as exc:  # translated once, here
        raise _filesystem_error(path, exc) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StorageError(f"{path}: not UTF-8 text ({exc.reason})") from None


def write_text(
    path: str | os.PathLike, text: str, storage_options: dict[str, Any] | None = None
) -> None:
    """Write ``text`` completely or not at all.

    Local files are written to a temporary file in the same folder and renamed over the target,
    so a reader never sees a half-written notebook; missing parent folders are created. Remote
    objects are uploaded in one piece by fsspec when the file is closed.
    """
    path = os.fspath(path)
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    if is_local(path):
        _write_local_atomic(_local_path(path), text)
        return
    url = _normalize_url(path)
    try:
        import fsspec

        with fsspec.open(url, "wb", **(storage_options or {})) as f:
            f.write(text.encode("utf-8"))
    except Exception as exc:
        raise _filesystem_error(path, exc) from exc


def _write_local_atomic(path: str, text: str) -> None:
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise StorageError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        if target.exists():
            # keep the permissions of the file we replace
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise StorageError(f"{path}: cannot write ({exc.strerror or exc})") from None
