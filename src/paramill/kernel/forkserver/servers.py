"""The driver side of the fork server: one server process per (python, cwd, env, preload), and a
Popen-like handle on each kernel it forks (see ``paramill.kernel.forkserver``)."""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

from ..ipc import socket_base
from .server import RUN_NAME

SERVER_PROGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server.py")


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
        self.folder = tempfile.mkdtemp(
            prefix="paramill-fork-", dir=socket_base(len("/paramill-fork-12345678/s"))
        )
        self.address = os.path.join(self.folder, "s")
        boot = f"import runpy; runpy.run_path({SERVER_PROGRAM!r}, run_name={RUN_NAME!r})"
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
