"""The fork server's program: run by path with the kernel's own interpreter (which need not
have paramill), so it imports only the standard library and, to preload them, ipykernel and
IPython. It imports modules once, then forks a kernel per request (see the package docstring)."""

from __future__ import annotations

import atexit
import ctypes
import gc
import importlib
import importlib.util
import json
import os
import selectors
import signal
import socket
import sys
import sysconfig
import threading
import traceback
from typing import Any

RUN_NAME = "__paramill_forkserver__"
_PR_SET_PDEATHSIG = 1
# what a kernel imports besides ipykernel.kernelapp (debugpy is most of it): IPKernelApp's
# initialize, its start (tornado's asyncio loop) and its shutdown (psutil: child processes)
_KERNEL_MODULES = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.debugger",
    "IPython.core.completerlib",
    "IPython.core.debugger",
    "IPython.core.logger",
    "IPython.core.oinspect",
    "IPython.extensions.storemagic",
    "sqlite3",
    "tornado.platform.asyncio",
    "psutil",
    "faulthandler",
    "resource",
)


def serve(address: str, preload: list[str]) -> None:
    """Import, then fork a kernel per request until the driver's pipe (our stdin) closes."""
    if not _preload(preload):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "driver")
    kernels: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, driver connection)
    _say("ready")
    try:
        _loop(listener, selector, kernels, libc)
    finally:
        for pid, _ in kernels.values():
            _killpg(pid)
        for pid, _ in list(kernels.values()):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        listener.close()
        for remove, path in ((os.unlink, address), (os.rmdir, os.path.dirname(address))):
            try:
                remove(path)  # the driver may be gone: leave no socket or folder behind
            except OSError:
                pass


def _preload(preload: list[str]) -> bool:
    """Import what every kernel imports, and the preloads; False (said on stdout) when
    forking would not be safe afterwards."""
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]  # as ipykernel_launcher: imports must not come from the kernel's cwd
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    fds = set(os.listdir("/proc/self/fd"))
    for name in _KERNEL_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            if name == "ipykernel.kernelapp":
                raise  # no ipykernel: nothing to fork (the driver falls back to a launch)
    for name in filter(_installed, preload):
        try:
            importlib.import_module(name)
        except BaseException:  # the kernel reports it when the notebook imports it
            pass
    if threading.active_count() > 1:
        _say(f"preloading {', '.join(preload)} started a thread: cannot fork safely")
        return False
    # a connection or file opened at import would be shared by every kernel forked from here
    if set(os.listdir("/proc/self/fd")) - fds:
        _say(f"preloading {', '.join(preload)} left a file or socket open: cannot fork safely")
        return False
    # what was imported is never collected: kernels' collections skip it (and so do not touch,
    # and copy, the memory they share with this process)
    gc.freeze()
    return True


def _loop(listener: socket.socket, selector: Any, kernels: dict, libc: Any) -> None:
    """Serve requests, report exits, kill kernels whose driver connection closed."""
    by_conn: dict[int, int] = {}  # connection fd -> pid
    while True:
        for key, _ in selector.select():
            what = key.data
            if what == "driver":
                if not os.read(key.fd, 4096):
                    return  # the driver is gone (or closed us): kill the kernels and exit
            elif what == "accept":
                conn, _ = listener.accept()
                child = _fork_one(conn, listener, selector, kernels, libc)
                if child is None:
                    conn.close()
                    continue
                pidfd = os.pidfd_open(child)
                kernels[pidfd] = (child, conn)
                by_conn[conn.fileno()] = child
                selector.register(pidfd, selectors.EVENT_READ, "exit")
                selector.register(conn, selectors.EVENT_READ, "conn")
            elif what == "exit":
                pid, conn = kernels.pop(key.fd)
                selector.unregister(key.fd)
                os.close(key.fd)
                _, status = os.waitpid(pid, 0)
                if by_conn.pop(conn.fileno(), None) is not None:  # else unregistered at EOF
                    selector.unregister(conn)
                try:
                    conn.sendall(b"exit %d\n" % os.waitstatus_to_exitcode(status))
                except OSError:
                    pass
                conn.close()
            elif what == "conn":  # the driver closed a kernel's connection: kill it
                try:
                    data = key.fileobj.recv(64)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if not data and key.fd in by_conn:
                    _killpg(by_conn.pop(key.fd))
                    selector.unregister(key.fileobj)


def _installed(name: str) -> bool:
    """Whether a module comes from the interpreter's library or site-packages.

    Only those are imported in the server: a project's own modules (next to the notebook, or
    on PYTHONPATH) may change during a sweep, so kernels import them (the pool preloads them).
    """
    try:
        spec = importlib.util.find_spec(name.split(".")[0])
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    roots = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    where = spec.origin or next(iter(spec.submodule_search_locations or []), "")
    return any(os.path.realpath(where).startswith(os.path.realpath(r) + os.sep) for r in roots)


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    conn.settimeout(10)
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    try:
        size = int.from_bytes(data[:8], "big")
        data = data[8:]
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise OSError("short request")
            data += chunk
        return json.loads(data), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _fork_one(conn, listener, selector, kernels, libc) -> int | None:
    try:
        request, fds = _receive(conn)
    except (OSError, ValueError):
        return None
    conn.setblocking(True)
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        return None
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        try:
            conn.sendall(b"pid %d\n" % pid)
        except OSError:
            _killpg(pid)
        return pid
    # the kernel: nothing below returns into the server's loop
    code = 1
    try:
        os.setsid()
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the server died between fork and prctl
            os._exit(1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for fd, target in zip(fds, (0, 1, 2), strict=True):
            os.dup2(fd, target)
            os.close(fd)
        selector.close()
        listener.close()
        conn.close()
        for pidfd, (_, other) in kernels.items():
            os.close(pidfd)
            other.close()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if "numpy.random" in sys.modules:  # numpy does not re-seed at fork (random does)
            sys.modules["numpy.random"].seed()
        sys.argv = [sys.modules["ipykernel"].__path__[0] + "_launcher.py", *request["argv"]]
        from ipykernel import kernelapp

        code = 0
        kernelapp.launch_new_instance()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        # what interpreter exit would do: join non-daemon threads, run atexit hooks
        try:
            threading._shutdown()  # type: ignore[attr-defined]
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


if __name__ == RUN_NAME:
    serve(sys.argv[1], sys.argv[2:])
