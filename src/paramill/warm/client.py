"""Talking to warm servers: control requests, starting one, asking one for a fork (see
paramill.warm).

Standard library only: imported on the command line's start path.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import subprocess
from typing import Any

from .keys import SERVER, Key, idle_timeout

logger = logging.getLogger("paramill")

RUN_NAME = "__paramill_warm_server__"
_MAX_PRELOADS = 64
_SERVER_ENV = {
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMPDIR", "TEMP", "TMP",
    "VIRTUAL_ENV", "LD_LIBRARY_PATH", "PYDEVD_DISABLE_FILE_VALIDATION",
}  # fmt: skip
_SERVER_ENV_PREFIXES = ("LC_", "PYTHON", "XDG_", "CONDA_", "JUPYTER_", "IPYTHON", "MPL")


def _path(where: str, key: str, suffix: str) -> str:
    return os.path.join(where, f"{key}{suffix}")


def request(where: str, key: str, op: str, timeout: float = 10) -> dict[str, Any]:
    """One control request (status, stop, retire) to a server; its JSON reply."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(_path(where, key, ".sock"))
        data = json.dumps({"op": op}).encode()
        sock.sendall(len(data).to_bytes(8, "big") + data)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError(errno.ECONNRESET, "the server closed the connection")
            reply += chunk
        return json.loads(reply)
    finally:
        sock.close()


def _read_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _remember(where: str, key: str, modules: list[str]) -> list[str]:
    """Add a notebook's imports to the key's remembered preloads; all of them, in order."""
    path = _path(where, key, ".preload")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            known = json.loads(f.read() or "[]")
        except ValueError:
            known = []
        new = [m for m in modules if m not in known]
        if new:
            known = (known + new)[-_MAX_PRELOADS:]
            f.seek(0)
            f.truncate()
            f.write(json.dumps(known))
    return known


def _server_env(env: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in env.items()
        if k in _SERVER_ENV or k.startswith(_SERVER_ENV_PREFIXES) or k.endswith("_NUM_THREADS")
    }


def start_server(
    where: str, key: Key, preload: list[str], env: dict[str, str], kind: str = "kernel"
) -> int | None:
    """Start a server for ``key`` in the background, detached, unless one is starting.

    Returns the write end of its "go" pipe: the server imports once it is closed (the run that
    started it is over, or its process exited).
    """
    lock = os.open(_path(where, key.digest, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        return None  # another process is starting one
    read, write = os.pipe()
    config = {
        "folder": where,
        "key": key.digest,
        "family": key.family,
        "describe": key.describe,
        "idle": idle_timeout(),
        "preload": preload,
        "lock_fd": lock,
        "kind": kind,
    }
    boot = f"import runpy; runpy.run_path({SERVER!r}, run_name={RUN_NAME!r})"
    try:
        with open(_path(where, key.digest, ".log"), "ab") as log:
            process = subprocess.Popen(
                [key.python, "-c", boot, json.dumps(config)],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=where,
                env=_server_env(env),
                pass_fds=(lock,),
                start_new_session=True,  # detached: outlives this process, its signals
            )
        with open(_path(where, key.digest, ".starting"), "w") as f:
            f.write(str(process.pid))
        # not waited for: it outlives us; reaped here if it exits before we do
        _detached[:] = [p for p in _detached if p.poll() is None]
        _detached.append(process)
    except OSError as exc:
        os.close(write)
        logger.debug("warm: the server did not start: %s", exc)
        return None
    finally:
        os.close(read)
        os.close(lock)
    return write


_detached: list[subprocess.Popen] = []


def _open_fork_connection(where: str, key: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(_path(where, key, ".sock"))
    except BaseException:
        sock.close()
        raise
    return sock


def fork(
    sock: socket.socket, argv: list[str], cwd: str, env: dict[str, str], stdio: list[int]
) -> Any:
    """Ask a connected server for a kernel (a ``ForkedKernel``); the request (env included)
    goes in a memfd."""
    pid, info = _send_fork(sock, argv, cwd, env, stdio)
    sock.setblocking(False)
    try:  # where the kernel-source redesign puts the fork server
        from ..kernel.forkserver.servers import ForkedKernel  # type: ignore[import-not-found]
    except ImportError:
        from ..forkserver import ForkedKernel

    kernel = ForkedKernel(sock, pid)
    kernel.connection = info  # type: ignore[attr-defined]
    return kernel


def _send_fork(
    sock: socket.socket, argv: list[str], cwd: str, env: dict[str, str], stdio: list[int]
) -> tuple[int, dict | None]:
    memfd = os.memfd_create("paramill-warm-request", os.MFD_CLOEXEC)
    try:
        os.write(memfd, json.dumps({"argv": argv, "cwd": cwd, "env": env}).encode())
        header = json.dumps({"op": "fork"}).encode()
        socket.send_fds(sock, [len(header).to_bytes(8, "big") + header], [*stdio, memfd])
    finally:
        os.close(memfd)
    sock.settimeout(30)
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionResetError(errno.ECONNRESET, "the warm server closed the connection")
        line += chunk
    parts = line.strip().split(b" ", 2)
    if parts[0] != b"pid" or len(parts) < 2:
        raise OSError(f"the warm server failed to fork: {line.decode().strip()}")
    # a spare kernel (initialized ahead) comes with its own connection
    return int(parts[1]), (json.loads(parts[2]) if len(parts) > 2 else None)
