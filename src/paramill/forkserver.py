"""Kernels forked from a pre-imported ipykernel: a fork server and its kernel provisioner.

Starting an ipykernel costs a Python start and the imports of IPython/ipykernel (~0.45 s of
CPU); a sweep pays it per run. A fork server imports them (and any modules it is told to
preload) once; each kernel is then a ``fork()`` of it that starts ``IPKernelApp`` at once.

Safety, point by point:
- every kernel is still a fresh process: the server never runs user code nor builds a kernel,
  it only imports modules, so nothing a run does can reach the next run;
- the server forks with one thread and no zmq context, event loop or sqlite connection open
  (it refuses to serve if preloading started a thread); a child re-seeds numpy's global RNG
  (``random`` re-seeds itself at fork), closes the server's fds and takes the driver's stdio;
- one server per (python, cwd, env, preload): modules imported in the server saw the same
  environment and working folder the kernel would have had (and ipykernel's MPLBACKEND);
- each kernel calls ``setsid`` (its own process group, like jupyter_client's launch) and dies
  with the server (``PR_SET_PDEATHSIG``); the server kills a kernel whose driver connection
  closes and kills all of them and exits when the driver's pipe to it closes (driver killed);
- exit status: the server reaps its children through pidfds and reports each exit status on
  the kernel's own connection, so ``wait`` blocks on a socket rather than polling.
Known difference from a cold start: kernels from one server share Python's str hash seed.

This file is also the server's program: it is run with the kernel's own interpreter through
``runpy.run_path`` (that interpreter need not have paramill), so its module-level imports are
the standard library and jupyter_client (which ipykernel requires) only.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import selectors
import signal
import socket
import sys
import tempfile
import threading
from typing import Any

from jupyter_client.provisioning import LocalProvisioner
from traitlets import List, Unicode

logger = logging.getLogger("paramill")

PROVISIONER_NAME = "paramill-fork-server"
RUN_NAME = "__paramill_forkserver__"
_LAUNCHERS = ("ipykernel_launcher", "ipykernel")
_PR_SET_PDEATHSIG = 1
# what IPKernelApp.initialize imports besides ipykernel.kernelapp (debugpy is most of it)
_KERNEL_MODULES = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.debugger",
    "IPython.core.completerlib",
    "IPython.core.debugger",
    "IPython.core.oinspect",
    "IPython.extensions.storemagic",
    "sqlite3",
)


# ---------------------------------------------------------------------------------------------
# driver side: one server per key, a Popen-like handle per forked kernel, the provisioner
# ---------------------------------------------------------------------------------------------
class ForkedKernel:
    """A Popen-like handle on a kernel forked by the server (``process`` of the provisioner).

    The kernel is the server's child, not ours: its exit status arrives on ``sock``.
    """

    stdin = stdout = stderr = None

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self.sock = sock
        self.pid = pid
        self.returncode: int | None = None
        self._buffer = b""

    def _feed(self, data: bytes) -> None:
        if not data:  # the server is gone: its kernels died with it (PR_SET_PDEATHSIG)
            self.returncode = -signal.SIGKILL if self.returncode is None else self.returncode
            return
        self._buffer += data
        if b"\n" in self._buffer:
            self.returncode = int(self._buffer.split(b"\n", 1)[0].split()[1])

    def poll(self) -> int | None:
        while self.returncode is None:
            try:
                data = self.sock.recv(64, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError:
                data = b""
            self._feed(data)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.poll() is not None:
            return self.returncode  # type: ignore[return-value]
        self.sock.settimeout(timeout)
        try:
            while self.returncode is None:
                try:
                    self._feed(self.sock.recv(64))
                except TimeoutError:
                    import subprocess

                    raise subprocess.TimeoutExpired(str(self.pid), timeout or 0) from None
                except OSError:
                    self._feed(b"")
        finally:
            if self.sock.fileno() != -1:
                self.sock.setblocking(False)
        return self.returncode

    async def wait_async(self) -> int:
        loop = asyncio.get_running_loop()
        while self.poll() is None:  # (a closed socket polls as killed: no setblocking here)
            future = loop.create_future()
            fd = self.sock.fileno()
            loop.add_reader(fd, _set_done, future)
            try:
                await future
            finally:
                loop.remove_reader(fd)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        # checked first so a pid the server already reaped (and the system may reuse) is left
        # alone; the server reports an exit as soon as it reaps
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def close(self) -> None:
        self.sock.close()


def _set_done(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class ForkServer:
    """One server process (python, cwd, env, preload) and the requests that fork kernels."""

    def __init__(self, python: str, cwd: str, env: dict[str, str], preload: tuple[str, ...]):
        import subprocess

        self.folder = tempfile.mkdtemp(prefix="paramill-fork-", dir=_socket_base())
        self.address = os.path.join(self.folder, "s")
        boot = f"import runpy; runpy.run_path({__file__!r}, run_name={RUN_NAME!r})"
        # stdin is the driver-death signal (EOF); stdout says "ready" once imports are done
        self.process = subprocess.Popen(
            [python, "-c", boot, self.address, *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,  # Ctrl-C in the terminal reaches the driver, not the server
        )
        self.failure: str | None = None
        self.warned = False
        self.ready = False
        self._lock = threading.Lock()

    def wait_ready(self, timeout: float) -> None:
        with self._lock:
            if not self.ready and self.failure is None:
                assert self.process.stdout is not None
                if _readable(self.process.stdout.fileno(), timeout):
                    line = self.process.stdout.readline().decode(errors="replace").strip()
                else:
                    self.process.kill()
                    line = f"not ready after {timeout:g} s"
                if line == "ready":
                    self.ready = True
                else:
                    self.failure = line or f"it exited with {self.process.wait()}"
        if self.failure:
            raise OSError(f"the fork server failed to start: {self.failure}")

    def spawn(self, argv: list[str], cwd: str, env: dict[str, str], fds: list[int]) -> ForkedKernel:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.address)
            request = json.dumps({"argv": argv, "cwd": cwd, "env": env}).encode()
            # length first: the connection stays open both ways, its EOF means "driver gone"
            socket.send_fds(sock, [len(request).to_bytes(8, "big") + request], fds)
            sock.settimeout(30)
            line = b""
            while not line.endswith(b"\n"):
                chunk = sock.recv(64)
                if not chunk:
                    raise OSError("the fork server closed the connection")
                line += chunk
            word, value = line.split()[:2]
            if word != b"pid":
                raise OSError(f"the fork server failed to fork: {line.decode().strip()}")
            sock.setblocking(False)
            return ForkedKernel(sock, int(value))
        except BaseException:
            sock.close()
            raise

    def close(self) -> None:
        # closing its stdin makes the server kill whatever kernels are left and exit
        import shutil

        try:
            if self.process.stdin:
                self.process.stdin.close()
            self.process.wait(5)
        except Exception:
            self.process.kill()
            self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)


_servers: dict[tuple, ForkServer] = {}
_servers_lock = threading.Lock()


def _readable(fd: int, timeout: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        return bool(selector.select(timeout))


def _socket_base() -> str:
    base = tempfile.gettempdir()
    return base if len(os.fsencode(base)) < 70 else "/tmp"


def server_for(python: str, cwd: str, env: dict[str, str], preload: tuple[str, ...]) -> ForkServer:
    """The running server for this key, started on first use (and after it died)."""
    key = (python, cwd, tuple(sorted(env.items())), preload)
    with _servers_lock:
        server = _servers.get(key)
        # a server that failed to start stays (and fails fast); one that died later is replaced
        if server is None or (server.failure is None and server.process.poll() is not None):
            if server is not None:
                server.close()
            if not _servers:
                atexit.register(close_servers)
            server = _servers[key] = ForkServer(python, cwd, env, preload)
    return server


_users = 0


def hold() -> None:
    """A user (a kernel pool) needs the servers: they live until the last user lets go."""
    global _users
    with _servers_lock:
        _users += 1


def let_go() -> None:
    """The user is done; the last one closes the servers (and so kills their kernels)."""
    global _users
    with _servers_lock:
        _users = max(0, _users - 1)
        last = _users == 0
    if last:
        close_servers()


def close_servers() -> None:
    """Stop every fork server of this process (their kernels are killed)."""
    with _servers_lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.close()


def forkable(cmd: list[str]) -> bool:
    """Whether a kernel command is ``PYTHON -m ipykernel_launcher ...`` (what we can fork)."""
    return len(cmd) >= 3 and cmd[1] == "-m" and cmd[2] in _LAUNCHERS


def _fd(value: Any, default: int) -> int:
    if value is None:
        return default
    return value if isinstance(value, int) else value.fileno()


class ForkServerProvisioner(LocalProvisioner):
    """Launches python kernels as forks of a fork server; anything else as LocalProvisioner."""

    preload = List(Unicode(), help="modules the fork server imports before forking").tag(
        config=True
    )

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        if not forkable(cmd):
            return await super().launch_kernel(cmd, **kwargs)
        cwd = os.path.abspath(os.fspath(kwargs.get("cwd") or os.getcwd()))
        env = dict(kwargs.get("env") or os.environ)
        # as jupyter_client's launcher sets it; ipykernel reads it when imported (in the server)
        env["JPY_PARENT_PID"] = str(os.getpid())
        # the server never holds a secret: only the kernel gets it, in its request
        from .secrets import ENV_PREFIX

        public = {k: v for k, v in env.items() if not k.startswith(ENV_PREFIX)}
        server = server_for(cmd[0], cwd, public, tuple(self.preload))
        try:
            if not server.ready:
                await asyncio.get_running_loop().run_in_executor(None, server.wait_ready, 120)
        except OSError as exc:
            # once per server: every kernel of a sweep would say the same
            (logger.debug if server.warned else logger.warning)(
                "%s; starting kernels the usual way", exc
            )
            server.warned = True
            return await super().launch_kernel(cmd, **kwargs)
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            fds = [devnull, _fd(kwargs.get("stdout"), 1), _fd(kwargs.get("stderr"), 2)]
            self.process = server.spawn(cmd[3:], cwd, env, fds)
        finally:
            os.close(devnull)
        self.pid = self.pgid = self.process.pid
        self.cwd = cwd
        await self._wait_bound(cwd)
        return self.connection_info

    async def _wait_bound(self, cwd: str, timeout: float = 30) -> None:
        """Wait until an IPC kernel has bound its sockets (or died), polling fast.

        A client that connects first is refused and zmq retries only after 100 ms, which would
        be most of a forked kernel's start.
        """
        info = self.connection_info
        if info.get("transport") != "ipc":
            return
        ip = os.path.join(cwd, str(info["ip"]))
        paths = [f"{ip}-{info[name]}" for name in info if name.endswith("_port")]
        deadline = asyncio.get_running_loop().time() + timeout
        delay = 0.001
        while not all(map(os.path.exists, paths)):
            if self.process.poll() is not None or asyncio.get_running_loop().time() > deadline:
                return  # the caller's wait for the kernel reports it
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.01)

    async def wait(self) -> int | None:
        if not isinstance(self.process, ForkedKernel):
            return await super().wait()
        ret = await self.process.wait_async()
        self.process.close()
        self.process = None
        return ret

    async def cleanup(self, restart: bool = False) -> None:
        if isinstance(self.process, ForkedKernel) and self.process.poll() is not None:
            self.process.close()
        await super().cleanup(restart)


def register() -> None:
    """Make the provisioner known to jupyter_client even without a reinstall of paramill."""
    from importlib.metadata import EntryPoint

    from jupyter_client.provisioning import KernelProvisionerFactory

    factory = KernelProvisionerFactory.instance()
    if PROVISIONER_NAME not in factory.provisioners:
        factory.provisioners[PROVISIONER_NAME] = EntryPoint(
            PROVISIONER_NAME,
            f"{__name__}:ForkServerProvisioner",
            "jupyter_client.kernel_provisioners",
        )


def provisioner_stanza(preload: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """The kernelspec ``kernel_provisioner`` metadata that selects the fork server."""
    register()
    return {"provisioner_name": PROVISIONER_NAME, "config": {"preload": list(preload)}}


def enabled(flag: bool | None, default: bool = False) -> bool:
    """The fork-server switch: an explicit flag, else ``PARAMILL_FORK_SERVER`` (1/0), else
    ``default``."""
    if flag is not None:
        return flag
    value = os.environ.get("PARAMILL_FORK_SERVER", "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return default


# ---------------------------------------------------------------------------------------------
# server side (runs in the kernel's interpreter, standard library only)
# ---------------------------------------------------------------------------------------------
def serve(address: str, preload: list[str]) -> None:
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]  # as ipykernel_launcher: imports must not come from the kernel's cwd
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    import ctypes
    import importlib

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
        return
    # a connection or file opened at import would be shared by every kernel forked from here
    if set(os.listdir("/proc/self/fd")) - fds:
        _say(f"preloading {', '.join(preload)} left a file or socket open: cannot fork safely")
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
    by_conn: dict[int, int] = {}  # connection fd -> pid
    _say("ready")
    try:
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


def _installed(name: str) -> bool:
    """Whether a module comes from the interpreter's library or site-packages.

    Only those are imported in the server: a project's own modules (next to the notebook, or
    on PYTHONPATH) may change during a sweep, so kernels import them (the pool preloads them).
    """
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
        import traceback

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
