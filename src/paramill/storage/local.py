"""Local files: UTF-8 reads with one-line errors, atomic writes (temporary file + rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import StorageError
from .locations import local_path


def read_local(path: str) -> str:
    try:
        with open(local_path(path), encoding="utf-8") as f:
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


def _umask() -> int:
    """The process umask, read without setting it (os.umask is racy across threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def write_local_atomic(path: str, text: str) -> None:
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
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0600; a new file gets the usual
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise StorageError(f"{path}: cannot write ({exc.strerror or exc})") from None
