"""The warm kernel server's program (run by path with the kernel's own interpreter).

Standard library and ipykernel only: the kernel's interpreter need not have paramill.

It imports IPython/ipykernel and the preloads once, then serves requests on a unix socket in
the user's private warm folder until it has been idle for a while:

- ``fork``: fds [stdin, stdout, stderr, request] -- the request is a memfd holding the kernel's
  argv, cwd and environment, read only by the forked child: the server never reads a
  kernel's environment (secrets included), so nothing of one run stays in it;
- ``status``: one JSON line about the server; ``stop``: kill its kernels and exit;
- ``retire``: a newer server took over: stop accepting, exit once the kernels are done.

A fork answers ``pid N`` on its connection, then ``exit CODE`` once the kernel exits; the
driver closing the connection kills the kernel (as paramill.forkserver).
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time

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


def _say(line: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')} {os.getpid()}] {line}\n")
    sys.stderr.flush()


def _installed(name: str) -> bool:
    """Whether a module comes from the interpreter's library or site-packages (only those are
    preloaded: a project's own modules may change between runs)."""
    import importlib.util
    import sysconfig

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


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _write_json(path: str, data: dict) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _remember_unsafe(folder: str, key: str, name: str) -> None:
    path = os.path.join(folder, f"{key}.unsafe")
    with open(path, "a") as f:
        f.write(name + "\n")


def _preload(folder: str, key: str, modules: list[str], kind: str = "kernel") -> list[str]:
    """Import the kernel's modules and the preloads, one by one; a preload that starts a thread
    or leaves a file open cannot be forked safely: it is remembered as unsafe and the server
    starts over without it (an import cannot be undone).

    A ``cli`` server (forks of paramill's command line) imports the modules it is given."""
    import importlib

    for name in _KERNEL_MODULES if kind == "kernel" else ():
        try:
            importlib.import_module(name)
        except ImportError:
            if name == "ipykernel.kernelapp":
                raise
    done = []
    for name in modules:
        if kind == "kernel" and not _installed(name):
            continue
        before = _fds()
        try:
            importlib.import_module(name)
        except BaseException:  # the kernel reports it when the notebook imports it
            continue
        if threading.active_count() > 1 or _fds() - before:
            _say(f"preloading {name} started a thread or left a file open: not preloaded")
            _remember_unsafe(folder, key, name)
            os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])  # type: ignore[attr-defined]
        done.append(name)
    gc.freeze()  # never collected: forks' collections skip (and do not copy) what they share
    return done


def main(argv: list[str]) -> None:
    config = json.loads(argv[0])
    folder, key = config["folder"], config["key"]
    lock_fd = int(config["lock_fd"])
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    try:
        with open(os.path.join(folder, f"{key}.unsafe")) as f:
            unsafe = set(f.read().split())
    except OSError:
        unsafe = set()
    # the run that started us is still going: import only once it is done (EOF on stdin), so
    # that run is as fast as a cold one
    while os.read(0, 4096):
        pass
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    kind = config.get("kind", "kernel")
    preloaded = _preload(folder, key, [m for m in config["preload"] if m not in unsafe], kind)
    if kind == "cli":
        if "paramill.cli.run" not in preloaded:  # forks could not run: say so, do not serve
            with open(os.path.join(folder, f"{key}.failed"), "w") as f:
                f.write("paramill.cli.run could not be imported\n")
            _say("paramill's command line cannot be imported here: not serving")
            return
        try:  # what every run would do first: compile the notebook schema's validator
            from nbformat.validator import get_validator

            get_validator(version=4, version_minor=5)
        except Exception:
            pass
    serve(config, preloaded, lock_fd)


def serve(config: dict, preloaded: list[str], lock_fd: int) -> None:
    """Serve requests until stopped, retired (and the kernels are done) or idle."""
    server = _Server(config, preloaded, lock_fd)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.loop()
    finally:
        server.close()


def _listen(folder: str, key: str, address: str) -> tuple[socket.socket, socket.socket | None]:
    """Our listening socket, moved to the key's address; a connection to the server that was
    there (a server of the same key with fewer preloads hands over: told to retire)."""
    temp = os.path.join(folder, f"{key}.{os.getpid()}.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(temp)
    listener.listen(64)
    previous = None
    try:
        previous = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous.connect(address)
    except OSError:
        if previous is not None:
            previous.close()
        previous = None
    os.rename(temp, address)
    return listener, previous


def _announce(config: dict, preloaded: list[str], lock_fd: int, info_path: str) -> dict:
    """Write the server's info file and end the starting phase; the info."""
    folder, key = config["folder"], config["key"]
    info = {
        "pid": os.getpid(),
        "key": key,
        "family": config["family"],
        "kind": config.get("kind", "kernel"),
        "describe": config["describe"],
        "python": sys.executable,
        "preload": preloaded,
        "requested": config["preload"],
        "started": time.time(),
        "idle_timeout": float(config["idle"]),
    }
    _write_json(info_path, info)
    try:
        os.unlink(os.path.join(folder, f"{key}.starting"))
    except OSError:
        pass
    os.close(lock_fd)  # starting is over: another starter may now try (and find us)
    return info


def _retire_others(previous: socket.socket | None, folder: str, key: str, family: str) -> None:
    """Tell the server we replace and the stale ones of our family to retire."""
    for old in [previous] + _same_family(folder, key, family):
        if old is None:
            continue
        try:
            _request(old, {"op": "retire"})
        except OSError:
            pass
        old.close()


class _Server:
    """A serving server: its socket, its kernels (pidfd -> pid and driver connection), its
    spare (a kernel forked and initialized ahead, handed to the next request; kernel kind)."""

    def __init__(self, config: dict, preloaded: list[str], lock_fd: int) -> None:
        import ctypes

        self.config = config
        folder, key = config["folder"], config["key"]
        self.folder, self.idle = folder, float(config["idle"])
        self.address = os.path.join(folder, f"{key}.sock")
        self.info_path = os.path.join(folder, f"{key}.info")
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.listener, previous = _listen(folder, key, self.address)
        self.mine = os.stat(self.address)
        self.info = _announce(config, preloaded, lock_fd, self.info_path)
        _retire_others(previous, folder, key, config["family"])
        _say(f"serving {key} (preloaded: {', '.join(preloaded) or 'nothing'})")
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.kernels: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, connection)
        self.by_conn: dict[int, int] = {}  # connection fd -> pid
        self.forks = 0
        self.last = time.monotonic()
        self.listening = True
        self.spare: dict | None = None
        self.spare_failures = 0
        self.spares_used = 0
        self.spares = config.get("kind", "kernel") == "kernel" and config.get("spare", True)
        self.files: dict[int, list[str]] = {}  # pid -> the spare's files, removed when it exits

    def drop_spare(self) -> None:
        spare = self.spare
        if spare is None:
            return
        _killpg(spare["pid"])
        self.selector.unregister(spare["pidfd"])
        os.close(spare["pidfd"])
        spare["ctl"].close()
        try:
            os.waitpid(spare["pid"], 0)
        except ChildProcessError:
            pass
        _remove(spare["files"])
        self.spare = None

    def ours(self) -> bool:
        """Whether the key's address is still our socket."""
        try:
            st = os.stat(self.address)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == (self.mine.st_dev, self.mine.st_ino)

    def stop_listening(self) -> None:
        if not self.listening:
            return
        self.listening = False
        if self.ours():
            for path in (self.address, self.info_path):
                try:
                    os.unlink(path)
                except OSError:
                    pass
        self.selector.unregister(self.listener)
        self.listener.close()
        self.drop_spare()

    def loop(self) -> None:
        while True:
            if not self.kernels and not self.listening:
                return  # retired and done
            if self.spares and self.spare is None and self.listening and self.spare_failures < 3:
                self.spare = _make_spare(
                    self.folder, self.selector, self.listener, self.kernels, self.libc, self.forks
                )
                if self.spare is not None:
                    self.selector.register(self.spare["pidfd"], selectors.EVENT_READ, "spare-exit")
            timeout = None
            if not self.kernels:
                timeout = max(0.0, self.last + self.idle - time.monotonic())
                if timeout == 0:
                    _say("idle: exiting")
                    return
            events = self.selector.select(timeout)
            if self.listening and not self.ours():  # replaced or removed (paramill warm stop -f)
                self.stop_listening()
            for sel_key, _ in events:
                self.last = time.monotonic()
                if self.handle(sel_key):
                    return

    def handle(self, sel_key: selectors.SelectorKey) -> bool:
        """One event; True: stop serving."""
        what = sel_key.data
        if what == "accept":
            return self.accept()
        if what == "spare-exit":  # died before it was handed over
            if self.spare is not None:
                self.drop_spare()
            self.spare_failures += 1
        elif what == "exit":
            self.reap(sel_key.fd)
        elif what == "conn":  # the driver closed a kernel's connection: kill it
            try:
                data = sel_key.fileobj.recv(64)  # type: ignore[union-attr]
            except OSError:
                data = b""
            if not data and sel_key.fd in self.by_conn:
                _killpg(self.by_conn.pop(sel_key.fd))
                self.selector.unregister(sel_key.fileobj)
        return False

    def accept(self) -> bool:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return False
        request, fds = _receive(conn)
        if request is None:
            conn.close()
            return False
        op = request.get("op")
        if op == "fork" and self.listening:
            self.fork(conn, fds)
            return False
        return self.control(op, conn, fds)

    def fork(self, conn: socket.socket, fds: list[int]) -> None:
        """A kernel for a driver: the spare if it is ready, else a fork."""
        if self.spare is not None and _ready(self.spare) and self.hand_over_spare(conn, fds):
            return
        spare = self.spare
        extra = [spare["pidfd"], spare["ctl"].fileno()] if spare else []
        child = _fork_one(
            conn, fds, self.listener, self.selector, self.kernels, self.libc, self.config, extra
        )
        if child is None:
            conn.close()
            return
        self.forks += 1
        self.track(os.pidfd_open(child), child, conn)

    def hand_over_spare(self, conn: socket.socket, fds: list[int]) -> bool:
        spare = self.spare
        assert spare is not None
        handed = _hand_over(spare, conn, fds)
        self.selector.unregister(spare["pidfd"])
        if handed:
            self.forks += 1
            self.spares_used += 1
            self.files[spare["pid"]] = spare["files"]
            self.track(spare["pidfd"], spare["pid"], conn)
            self.spare = None
            return True
        self.selector.register(spare["pidfd"], selectors.EVENT_READ, "spare-exit")
        self.drop_spare()
        self.spare_failures += 1
        return False

    def track(self, pidfd: int, pid: int, conn: socket.socket) -> None:
        self.kernels[pidfd] = (pid, conn)
        self.by_conn[conn.fileno()] = pid
        self.selector.register(pidfd, selectors.EVENT_READ, "exit")
        self.selector.register(conn, selectors.EVENT_READ, "conn")

    def control(self, op: object, conn: socket.socket, fds: list[int]) -> bool:
        """status, stop, retire (or a fork once retired); True: stop serving."""
        for fd in fds:
            os.close(fd)
        reply: dict = {"ok": True}
        if op == "status":
            reply = self.status()
        elif op in ("stop", "retire"):
            self.stop_listening()
        else:
            reply = {"ok": False, "error": f"unknown request {op!r}"}
        try:
            conn.sendall(json.dumps(reply).encode() + b"\n")
        except OSError:
            pass
        conn.close()
        return op == "stop"

    def status(self) -> dict:
        spare = self.spare
        return {
            **self.info,
            "kernels": sorted(pid for pid, _ in self.kernels.values()),
            "forks": self.forks,
            "listening": self.listening,
            "spare_ready": spare is not None and _ready(spare),
            "spare_pid": spare["pid"] if spare is not None else None,
            "spares_used": self.spares_used,
        }

    def reap(self, pidfd: int) -> None:
        """A kernel exited: tell its driver the exit code."""
        pid, conn = self.kernels.pop(pidfd)
        _remove(self.files.pop(pid, []))
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        if self.by_conn.pop(conn.fileno(), None) is not None:
            self.selector.unregister(conn)
        try:
            conn.sendall(b"exit %d\n" % os.waitstatus_to_exitcode(status))
        except OSError:
            pass
        conn.close()

    def close(self) -> None:
        self.stop_listening()
        self.drop_spare()
        for pid, _ in self.kernels.values():
            _killpg(pid)
        for pid, _ in list(self.kernels.values()):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        for paths in self.files.values():
            _remove(paths)


def _remove(paths: list[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


_PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def _make_spare(folder, selector, listener, kernels, libc, n) -> dict | None:
    """Fork a kernel now, on its own connection (IPC sockets in the warm folder, a new key):
    the next request gets it already initialized, after it took the request's cwd, env and
    stdio (its handover thread)."""
    ip = os.path.join(folder, f"s{os.getpid()}-{n}-{os.urandom(3).hex()}")
    info: dict = {name: i for i, name in enumerate(_PORTS, 1)}
    info.update(ip=ip, key=os.urandom(32).hex(), transport="ipc")
    info.update(signature_scheme="hmac-sha256", kernel_name="")
    connection_file = ip + ".json"
    fd = os.open(connection_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
    paths = [connection_file] + [f"{ip}-{i}" for i in range(1, 6)]
    ctl, theirs = socket.socketpair()
    pid = os.fork()
    if pid:
        theirs.close()
        return {"pid": pid, "pidfd": os.pidfd_open(pid), "ctl": ctl, "info": info, "files": paths}
    code = 1
    try:
        os.setsid()
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:
            os._exit(1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(devnull, target)
        os.close(devnull)
        ctl.close()
        selector.close()
        if listener.fileno() != -1:
            listener.close()
        for pidfd, (_, other) in kernels.items():
            os.close(pidfd)
            other.close()
        if "numpy.random" in sys.modules:
            sys.modules["numpy.random"].seed()
        threading.Thread(target=_take_over, args=(theirs,), daemon=True).start()
        sys.argv = [sys.modules["ipykernel"].__path__[0] + "_launcher.py", "-f", connection_file]
        from ipykernel import kernelapp

        code = 0
        kernelapp.launch_new_instance()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        code = 1
    finally:
        try:
            threading._shutdown()  # type: ignore[attr-defined]
            atexit._run_exitfuncs()
        finally:
            os._exit(code)


def _take_over(ctl: socket.socket) -> None:
    """In a spare: wait for the request, then become its kernel (cwd, env, stdio)."""
    try:
        _, fds, _, _ = socket.recv_fds(ctl, 1024, 4)
    except OSError:
        os._exit(1)
    if len(fds) != 4:
        os._exit(1)  # the server is gone: this spare is not needed
    with os.fdopen(fds[3], "rb") as f:
        f.seek(0)
        request = json.loads(f.read())
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    del request
    # ipykernel captures fds 1 and 2 and echoes to copies of them: those become the request's
    os.dup2(fds[0], 0)
    for fd, stream, default in ((fds[1], sys.stdout, 1), (fds[2], sys.stderr, 2)):
        copy = getattr(stream, "_original_stdstream_copy", None)
        os.dup2(fd, copy if copy is not None else default)
    for fd in fds[:3]:
        os.close(fd)
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None and isinstance(shell.user_ns.get("_dh"), list):
            shell.user_ns["_dh"][:] = [os.getcwd()]
    except Exception:
        pass
    ctl.sendall(b"ok\n")
    ctl.close()


def _ready(spare: dict) -> bool:
    """Whether a spare has bound its sockets (it answers as soon as its loop runs)."""
    return all(os.path.exists(path) for path in spare["files"][1:])


def _hand_over(spare: dict, conn: socket.socket, fds: list[int]) -> bool:
    """Give the request to the spare; tell the driver its pid and connection."""
    try:
        if len(fds) != 4:
            return False
        socket.send_fds(spare["ctl"], [b"take"], fds)
        spare["ctl"].settimeout(10)
        if spare["ctl"].recv(16) != b"ok\n":
            return False
        info = json.dumps(spare["info"]).encode()
        conn.setblocking(True)
        conn.sendall(b"pid %d %s\n" % (spare["pid"], info))
        for fd in fds:
            os.close(fd)
        return True
    except OSError:
        return False  # the request's fds stay open: a fresh fork takes them
    finally:
        spare["ctl"].close()


def _run_cli(argv: list[str]) -> int:
    """A fork of a ``cli`` server: paramill's command line on the client's stdio."""
    import io

    def stream(fd: int, mode: str, old: io.TextIOWrapper) -> io.TextIOWrapper:
        return open(  # noqa: SIM115
            fd,
            mode,
            encoding=old.encoding,
            errors=old.errors,
            closefd=False,
            buffering=1 if mode == "w" and (fd == 2 or os.isatty(fd)) else -1,
        )

    sys.stdin = sys.__stdin__ = stream(0, "r", sys.stdin)  # type: ignore[misc]
    sys.stdout = sys.__stdout__ = stream(1, "w", sys.stdout)  # type: ignore[misc]
    sys.stderr = sys.__stderr__ = stream(2, "w", sys.stderr)  # type: ignore[misc]
    sys.argv = ["paramill", *argv]
    import paramill.warm as warm  # type: ignore[import-not-found]

    warm.IN_CLI_FORK = True  # this run must not ask a server for itself again
    from paramill.cli import main as cli_main  # type: ignore[import-not-found]

    cli_main(args=argv, prog_name="paramill")
    return 0


def _same_family(folder: str, key: str, family: str) -> list[socket.socket]:
    """Connections to the servers of the same kernel whose key differs (stale: packages or the
    interpreter changed): they are told to retire."""
    found = []
    for name in os.listdir(folder):
        if not name.endswith(".info") or name == f"{key}.info":
            continue
        try:
            with open(os.path.join(folder, name)) as f:
                other = json.load(f)
            if other.get("family") != family:
                continue
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(os.path.join(folder, name[: -len(".info")] + ".sock"))
            found.append(sock)
        except (OSError, ValueError):
            continue
    return found


def _request(sock: socket.socket, request: dict) -> bytes:
    data = json.dumps(request).encode()
    sock.settimeout(5)
    sock.sendall(len(data).to_bytes(8, "big") + data)
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    return reply


def _receive(conn: socket.socket) -> tuple[dict | None, list[int]]:
    # only the user's own processes (the folder is 0700 too)
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    if uid != os.getuid():
        _say(f"refused a connection from uid {uid}")
        return None, []
    conn.settimeout(10)
    fds: list[int] = []
    try:
        data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
        size = int.from_bytes(data[:8], "big")
        data = data[8:]
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise OSError("short request")
            data += chunk
        return json.loads(data), fds
    except (OSError, ValueError):
        for fd in fds:
            os.close(fd)
        return None, []


def _fork_one(conn, fds, listener, selector, kernels, libc, config, extra=()) -> int | None:
    conn.setblocking(True)
    if len(fds) != 4:
        for fd in fds:
            os.close(fd)
        return None
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)  # the request is never read here: only the kernel reads its env
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
        for fd, target in zip(fds[:3], (0, 1, 2), strict=True):
            os.dup2(fd, target)
            os.close(fd)
        with os.fdopen(fds[3], "rb") as f:
            f.seek(0)
            request = json.loads(f.read())
        selector.close()
        if listener.fileno() != -1:
            listener.close()
        conn.close()
        for pidfd, (_, other) in kernels.items():
            os.close(pidfd)
            other.close()
        for fd in extra:
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()
        sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
        # `random` re-seeds itself at fork; numpy's global generator does not
        if "numpy.random" in sys.modules:
            sys.modules["numpy.random"].seed()
        if config.get("kind") == "cli":
            code = _run_cli(request["argv"])
        else:
            sys.argv = [sys.modules["ipykernel"].__path__[0] + "_launcher.py", *request["argv"]]
            del request
            from ipykernel import kernelapp

            # read from the environment when ipykernel was imported (in the server): as for a
            # launched kernel, no banner on stdout, and the driver is its parent
            parent = int(os.environ.get("JPY_PARENT_PID") or 0)
            app_class = kernelapp.IPKernelApp
            app_class.parent_handle.default_value = parent  # type: ignore[attr-defined]
            static = getattr(app_class, "_static_immutable_initial_values", None)
            if isinstance(static, dict) and "parent_handle" in static:  # traitlets 5 caches it
                static["parent_handle"] = parent
            code = 0
            kernelapp.launch_new_instance()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            threading._shutdown()  # type: ignore[attr-defined]
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


if __name__ == "__paramill_warm_server__":
    main(sys.argv[1:])
