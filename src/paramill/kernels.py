"""How a kernel is obtained and let go: start (IPC transport, no port race), its own stdout and
stderr (read through pipes, scrubbed, logged), fast shutdown."""

from __future__ import annotations

import asyncio
import atexit
import codecs
import contextlib
import contextvars
import fcntl
import functools
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from typing import TYPE_CHECKING, Any

from .errors import KernelError

if TYPE_CHECKING:
    from jupyter_client import AsyncKernelClient, AsyncKernelManager

kernel_logger = logging.getLogger("paramill.kernel")

_ipc_dir: str | None = None
_ipc_dir_pid: int | None = None
_ipc_lock: int | None = None  # fd of the folder's lock file, held (flock) while we live
_ipc_guard = threading.Lock()  # kernels start from several threads (sweeps, pools)

#: the lock file in an IPC folder: its owner holds an exclusive flock on it for its lifetime
IPC_LOCK = "owner.lock"
#: a folder of an older paramill (no lock file) is removed only when its process is gone and it
#: has not changed for this long: a PID cannot tell a live run in another PID namespace
LEGACY_MAX_AGE = 7 * 24 * 3600.0


# A socket path must fit sun_path (107 bytes on Linux); start_kernel appends "/<12 hex>-<n>".
_SOCKET_PATH_MAX = 107 - 16


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
        base = tempfile.gettempdir()
        if len(os.fsencode(base)) + len("/paramill-ipc-4194304-12345678") > _SOCKET_PATH_MAX:
            base = "/tmp"
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
    import re

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


def installed_kernels() -> dict[str, str]:
    """Installed kernelspec names and their resource folders."""
    from jupyter_client.kernelspec import KernelSpecManager

    return KernelSpecManager().find_kernel_specs()


def no_such_kernel(name: str) -> KernelError:
    names = ", ".join(sorted(installed_kernels())) or "none"
    return KernelError(
        f"no kernel named {name!r} is installed (installed: {names}). Register one from the "
        "environment that has it, e.g. `python -m ipykernel install --user --name NAME` "
        "(or `-k` to pick an installed kernel)"
    )


def supports_ipc(kernel_name: str) -> bool:
    """Whether a kernel can listen on IPC sockets: those launched by Python (ipykernel and the
    kernels built on it) can; others may not (ijavascript dies, tslab hangs), so they get TCP."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec(kernel_name).argv
    except NoSuchKernel:
        return True  # start_kernel reports the missing kernel
    launcher = os.path.basename(argv[0]) if argv else ""
    return launcher.startswith("python") or launcher == "{python_executable}"


async def start_kernel(
    kernel_name: str,
    *,
    cwd: str | None = None,
    startup_timeout: float = 60,
    env: dict[str, str] | None = None,
    transport: str = "ipc",
    extra_arguments: list[str] | None = None,
    provisioner: dict[str, Any] | None = None,
) -> tuple[AsyncKernelManager, AsyncKernelClient]:
    """Start a kernel and wait until it answers; raise KernelError if it cannot."""
    km = await launch_kernel(
        kernel_name,
        cwd=cwd,
        env=env,
        transport=transport,
        extra_arguments=extra_arguments,
        provisioner=provisioner,
    )
    return km, await connect_kernel(km, startup_timeout)


async def launch_kernel(
    kernel_name: str,
    *,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    transport: str = "ipc",
    extra_arguments: list[str] | None = None,
    provisioner: dict[str, Any] | None = None,
) -> AsyncKernelManager:
    """Launch a kernel process (it boots while the caller does other work). Its stdout and
    stderr go through paramill (``KernelOutput``), never straight to ours."""
    import zmq
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import NoSuchKernel

    if transport == "ipc" and not supports_ipc(kernel_name):
        transport = "tcp"
    kwargs: dict[str, Any] = {"kernel_name": kernel_name, "transport": transport}
    folder, name = ipc_dir(), uuid.uuid4().hex[:12]
    # in the private folder, so a driver killed outright leaves nothing the next one misses
    kwargs["connection_file"] = os.path.join(folder, f"kernel-{name}.json")
    if transport == "ipc":
        kwargs["ip"] = os.path.join(folder, name)
    km = AsyncKernelManager(**kwargs)
    kernel_env = dict(os.environ)
    kernel_env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    kernel_env.update(env or {})
    from .secrets import values_in

    output = KernelOutput(values_in(kernel_env))
    outputs[km] = output
    try:
        if provisioner:  # a kernelspec `kernel_provisioner` stanza, e.g. the fork server's
            km.kernel_spec.metadata["kernel_provisioner"] = provisioner
        await km.start_kernel(
            cwd=cwd,
            env=kernel_env,
            extra_arguments=extra_arguments or [],
            stdout=output.write_fds[0],
            stderr=output.write_fds[1],
        )
    except NoSuchKernel:
        outputs.pop(km, output).close()
        raise no_such_kernel(kernel_name) from None
    except (OSError, ValueError, zmq.ZMQError) as exc:
        await stop_kernel(km, None, grace=0)
        raise KernelError(f"kernel {kernel_name!r} failed to start: {exc}") from None
    except BaseException:
        await stop_kernel(km, None, grace=0)
        raise
    finally:
        output.launched()
    return km


async def connect_kernel(km: AsyncKernelManager, startup_timeout: float = 60) -> AsyncKernelClient:
    """A client for a launched kernel, once it answers; stops the kernel if it does not."""
    kernel_name = km.kernel_name
    kc = km.client()
    try:
        kc.start_channels(hb=False)  # the engine pings the heartbeat itself
        ready = getattr(km.provisioner, "wait_ready", None)  # a provisioner's faster way
        await (ready(kc, startup_timeout) if ready else kc.wait_for_ready(timeout=startup_timeout))
    except (RuntimeError, TimeoutError) as exc:
        await stop_kernel(km, kc, grace=0)
        reason = (
            "died while starting"
            if "died" in str(exc)
            else (f"did not answer within {startup_timeout:g} s (--start-timeout)")
        )
        raise KernelError(f"kernel {kernel_name!r} {reason}") from None
    except BaseException:  # cancelled (signal, run timeout) while starting: leave no orphan
        await stop_kernel(km, kc, grace=0)
        raise
    kc.allow_stdin = False
    return kc


def stopped_or_gone(pid: int | None) -> bool:
    """Whether a kernel that stopped answering heartbeats is frozen (SIGSTOP, a debugger), a
    zombie or gone. A running or sleeping process is only busy: IRkernel, for one, answers
    heartbeats between cells only. Without a pid (a remote kernel) silence is all we know."""
    if pid is None:
        return True
    if os.path.exists("/proc/self/stat"):
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
    else:  # macOS and the BSDs
        import subprocess

        ps = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
        state = ps.stdout.strip()[:1] or "X"
    return state in "TtZXx"


def kernel_pid(km: AsyncKernelManager) -> int | None:
    process = getattr(km.provisioner, "process", None)
    return getattr(process, "pid", None)


async def _wait_exit(km: AsyncKernelManager, seconds: float) -> bool:
    """Wait up to ``seconds`` for the kernel process to exit; True once it has.

    Woken by a pidfd the moment the process exits (jupyter_client polls every 0.1 s); where
    pidfds are not available, polls every 5 ms.
    """
    process = getattr(km.provisioner, "process", None)
    if process is None or process.poll() is not None:
        return True
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        exited = loop.create_future()
        try:
            loop.add_reader(fd, lambda: exited.done() or exited.set_result(None))
            await asyncio.wait_for(exited, seconds)
        except (asyncio.TimeoutError, NotImplementedError):
            pass
        finally:
            try:
                loop.remove_reader(fd)
            except (NotImplementedError, ValueError):
                pass
            os.close(fd)
        if process.poll() is not None or fd is None:
            return process.poll() is not None
    deadline = time.monotonic() + seconds
    while process.poll() is None:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def stop_kernel(km: AsyncKernelManager, kc: AsyncKernelClient | None, grace: float = 3.0):
    """Ask the kernel to shut down, wait up to ``grace`` seconds, then kill its process group.

    Connection and IPC files are removed in every case.
    """
    try:
        if kc is not None and grace > 0 and km.has_kernel:
            kc.shutdown()
            await _wait_exit(km, grace)
    except Exception:  # the kernel may already be gone; killing below covers it
        pass
    try:
        if kc is not None:
            kc.stop_channels()
    except Exception:
        pass
    try:
        provisioner = km.provisioner
        if km.has_kernel:
            # kill what is left of the process group (children of a kernel that exited, or a
            # kernel that did not): not jupyter_client's forced shutdown, which sends SIGINT
            # first (a kernel interrupted mid-startup prints a traceback into our stderr) and
            # then sleeps in 0.1 s polling steps
            await provisioner.kill()
            await _wait_exit(km, 5.0)
            await provisioner.wait()  # reaps at once: the process has exited
        await km.cleanup_resources()
    except Exception:
        pass
    output = outputs.pop(km, None)
    if output is not None:  # what the kernel wrote before it exited is logged now
        output.close()


# each launched kernel's output pipes, until the kernel is stopped
outputs: weakref.WeakKeyDictionary[Any, KernelOutput] = weakref.WeakKeyDictionary()


class KernelOutput:
    """A kernel process's own stdout and stderr (its file descriptors 1 and 2: C libraries,
    child processes, ipykernel's echo of what they write) through pipes read on the loop that
    launched the kernel. Each line is scrubbed of the secret values in the kernel's environment
    and logged (``paramill.kernel``: stdout at INFO, stderr at WARNING, like ``--log-output``
    logs cell streams) in ``context``, the run holding the kernel, so a sweep names the run.
    Never on paramill's stdout (``paramill in.ipynb -`` writes the notebook there), never in
    the middle of another log line. The read ends close at the kernel's EOF or at ``close``."""

    def __init__(self, secrets: list[str]) -> None:
        from .secrets import StreamScrubber

        self._loop = asyncio.get_running_loop()
        self.context = contextvars.copy_context()  # a pool sets the run's when it hands out
        self._pipes: dict[int, tuple[int, Any, StreamScrubber]] = {}  # read fd: level, ...
        self.write_fds: list[int] = []
        for level in (logging.INFO, logging.WARNING):
            read_fd, write_fd = os.pipe()
            os.set_blocking(read_fd, False)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            self._pipes[read_fd] = (level, decoder, StreamScrubber(secrets, lines=True))
            self.write_fds.append(write_fd)
            self._loop.add_reader(read_fd, self._read, read_fd)

    def launched(self) -> None:
        """The kernel holds the write ends now (or never will): ours go."""
        for fd in self.write_fds:
            os.close(fd)
        self.write_fds = []

    def _read(self, fd: int) -> None:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._feed(fd, data)
        else:  # every holder of the write end (the kernel, its children) is gone
            self._close_pipe(fd)

    def _feed(self, fd: int, data: bytes, final: bool = False) -> None:
        level, decoder, scrubber = self._pipes[fd]
        text = scrubber.feed(decoder.decode(data, final))
        if final:
            text += scrubber.close()
        if text:
            for line in text.removesuffix("\n").split("\n"):
                emit = functools.partial(kernel_logger.log, level, "%s", line.rstrip("\r"))
                self.context.run(emit)

    def _close_pipe(self, fd: int) -> None:
        with contextlib.suppress(OSError):  # what is left: up to EOF, EAGAIN or 1 MB
            for _ in range(16):
                data = os.read(fd, 1 << 16)
                if not data:
                    break
                self._feed(fd, data)
        self._feed(fd, b"", final=True)
        if not self._loop.is_closed():
            self._loop.remove_reader(fd)
        os.close(fd)
        del self._pipes[fd]

    def close(self) -> None:
        """Log what is left and close the pipes; from any thread (the reading loop does it)."""
        self.launched()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self._loop and self._loop.is_running():
            with contextlib.suppress(RuntimeError):  # closed meanwhile: nothing left to read
                self._loop.call_soon_threadsafe(self.close)
            return
        for fd in list(self._pipes):
            self._close_pipe(fd)
