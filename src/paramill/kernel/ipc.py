"""Private folders for a process's kernel files (IPC sockets, connection files), locked while
the process lives so an abandoned one can be told from a live one, and the socket path limit."""

from __future__ import annotations

import atexit
import fcntl
import os
import re
import shutil
import tempfile
import threading
import time

_ipc_dir: str | None = None
_ipc_dir_pid: int | None = None
_ipc_lock: int | None = None  # fd of the folder's lock file, held (flock) while we live
_ipc_guard = threading.Lock()  # kernels start from several threads (sweeps, pools)

#: the lock file in an IPC folder: its owner holds an exclusive flock on it for its lifetime
IPC_LOCK = "owner.lock"
#: a folder of an older paramill (no lock file) is removed only when its process is gone and it
#: has not changed for this long: a PID cannot tell a live run in another PID namespace
LEGACY_MAX_AGE = 7 * 24 * 3600.0


# A socket path must fit sun_path (107 bytes on Linux); a kernel's sockets add "/<12 hex>-<n>".
SOCKET_PATH_MAX = 107 - 16


def socket_base(name_length: int = len("/paramill-ipc-4194304-12345678")) -> str:
    """The temp dir, or /tmp when a folder named ``name_length`` bytes under it would leave no
    room for socket names (a deep TMPDIR)."""
    base = tempfile.gettempdir()
    return base if len(os.fsencode(base)) + name_length <= SOCKET_PATH_MAX else "/tmp"


def ipc_dir() -> str:
    """A private folder for this process's kernel files (IPC sockets, connection files),
    removed at exit, named after the process (``paramill-ipc-<pid>-...``).

    The process holds an exclusive ``flock`` on the folder's lock file for its lifetime (the
    kernel learns of it only through the folder's name; the fd is not inherited by children).
    A folder whose owner is gone without cleaning up (SIGKILL, as an orchestrator sends after its
    grace period) has no holder left: the next paramill that makes its own folder removes it. A
    PID alone proves nothing (a run in another PID namespace, e.g. a container sharing /tmp).
    Under the temp dir unless its path is too long for a socket name (a deep TMPDIR), then /tmp.
    """
    global _ipc_dir, _ipc_dir_pid, _ipc_lock
    with _ipc_guard:
        if _ipc_dir is not None and _ipc_dir_pid == os.getpid() and os.path.isdir(_ipc_dir):
            return _ipc_dir
        base = socket_base()
        _remove_abandoned(base)
        if _ipc_lock is not None:  # our folder was removed under us
            os.close(_ipc_lock)
            _ipc_lock = None
        folder = tempfile.mkdtemp(prefix=f"paramill-ipc-{os.getpid()}-", dir=base)
        # locked before it takes its name: a cleaner never sees an unlocked lock file
        fd, name = tempfile.mkstemp(dir=folder)  # not inheritable (O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(name, os.path.join(folder, IPC_LOCK))
        _ipc_dir, _ipc_dir_pid, _ipc_lock = folder, os.getpid(), fd
        atexit.register(shutil.rmtree, folder, True)
        return folder


def _after_fork_in_child() -> None:
    """A forked child makes its own folder and does not keep its parent's alive (the
    parent's lock stays: it still has the file open)."""
    global _ipc_lock, _ipc_guard
    _ipc_guard = threading.Lock()
    if _ipc_lock is not None:
        os.close(_ipc_lock)
        _ipc_lock = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def _remove_abandoned(base: str) -> None:
    """Remove this user's ``paramill-ipc-<pid>-*`` folders whose owner provably exited: nobody
    holds the lock on its lock file. A folder without one (an older paramill) is left unless
    its PID does not exist here and it has not changed for ``LEGACY_MAX_AGE``."""
    for entry in os.scandir(base):
        found = re.fullmatch(r"paramill-ipc-(\d+)-\w+", entry.name)
        try:
            if not found or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            if not entry.is_dir(follow_symlinks=False):
                continue
            fd = os.open(os.path.join(entry.path, IPC_LOCK), os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            if _legacy_abandoned(entry, int(found[1])):
                shutil.rmtree(entry.path, ignore_errors=True)
            continue
        except OSError:  # gone meanwhile, not readable: leave it
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its owner is alive (in whatever PID namespace)
            os.close(fd)
            continue
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
        finally:
            os.close(fd)


def _legacy_abandoned(entry: os.DirEntry, pid: int) -> bool:
    try:
        if time.time() - entry.stat(follow_symlinks=False).st_mtime < LEGACY_MAX_AGE:
            return False
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive but not ours to signal, or gone meanwhile
        return False
    return False
