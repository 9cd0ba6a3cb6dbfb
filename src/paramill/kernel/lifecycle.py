"""The one place a kernel is launched, connected, asked to run code silently, stopped and killed.

Every kernel source (local, pool, fork server, network) goes through these functions; nothing
else in paramill talks to a kernel manager's process directly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from queue import Empty
from typing import TYPE_CHECKING, Any

from ..errors import KernelError
from ..secrets import values_in
from .ipc import ipc_dir
from .output import KernelOutput, outputs

if TYPE_CHECKING:
    from jupyter_client import AsyncKernelClient, AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec


# -- kernelspecs ----------------------------------------------------------------------------------
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


def kernelspec(name: str) -> KernelSpec:
    """The installed kernelspec ``name``; KernelError listing the installed ones if none."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        return KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise no_such_kernel(name) from None


def supports_ipc(kernel_name: str) -> bool:
    """Whether a kernel can listen on IPC sockets: those launched by Python (ipykernel and the
    kernels built on it) can; others may not (ijavascript dies, tslab hangs), so they get TCP."""
    try:
        argv = kernelspec(kernel_name).argv
    except KernelError:
        return True  # launching reports the missing kernel
    launcher = os.path.basename(argv[0]) if argv else ""
    return launcher.startswith("python") or launcher == "{python_executable}"


# -- starting -------------------------------------------------------------------------------------
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
    output = outputs[km] = KernelOutput(values_in(kernel_env))
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


async def connect_client(km: Any, timeout: float = 60) -> AsyncKernelClient:
    """A client on the running loop for a kernel that is already up (a pooled or remote one).

    Like ``wait_for_ready`` (a kernel_info round trip, then one IOPub message to know the
    subscription is live) without its 0.2 s IOPub flush, which is most of a warm hand-out.
    ``km`` may be a manager or a client factory with ``is_alive`` (a kernel started elsewhere).
    """
    kc = km.client()
    kc.start_channels(hb=False)  # the engine pings the heartbeat itself
    deadline = time.monotonic() + timeout
    try:
        while not await _answers(kc, min(1.0, max(0.01, deadline - time.monotonic()))):
            if not await km.is_alive():
                raise KernelError(f"kernel {km.kernel_name!r} died before it was handed out")
            if time.monotonic() >= deadline:
                raise KernelError(
                    f"kernel {km.kernel_name!r} did not answer within {timeout:g} s "
                    "(--start-timeout)"
                )
    except BaseException:
        kc.stop_channels()
        raise
    kc.allow_stdin = False
    return kc


async def _answers(kc: AsyncKernelClient, timeout: float) -> bool:
    """One kernel_info round trip and one IOPub message within ``timeout``."""
    reply = await shell_reply(kc, kc.kernel_info(), timeout)
    if reply is None:
        return False
    try:
        await kc.iopub_channel.get_msg(timeout=0.2)
    except Empty:
        return False
    kc._handle_kernel_info_reply(reply)
    return True


async def shell_reply(kc: AsyncKernelClient, msg_id: str, timeout: float) -> dict | None:
    """The shell reply to ``msg_id``, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            msg = await kc.shell_channel.get_msg(timeout=max(0.0, deadline - time.monotonic()))
        except Empty:
            return None
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


async def run_silently(kc: AsyncKernelClient, code: str, timeout: float) -> dict | None:
    """Run ``code`` without a trace in the notebook (no output, history or execution count);
    the reply content, or None if it did not finish within ``timeout``."""
    try:
        reply = await kc.execute_interactive(
            code,
            silent=True,
            store_history=False,
            timeout=timeout,
            output_hook=lambda msg: None,  # not jupyter_client's default: print to stdout
        )
    except TimeoutError:
        return None
    return reply["content"]


# -- the process ----------------------------------------------------------------------------------
def kernel_pid(km: Any) -> int | None:
    process = getattr(getattr(km, "provisioner", None), "process", None)
    return getattr(process, "pid", None)


def is_running(km: Any) -> bool:
    process = getattr(getattr(km, "provisioner", None), "process", None)
    return process is not None and process.poll() is None


def kill_process_group(pid: int | None) -> None:
    """SIGKILL a kernel's process group (kernels run in their own session), else the process."""
    if not pid:
        return
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except OSError:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


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
        ps = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
        state = ps.stdout.strip()[:1] or "X"
    return state in "TtZXx"


async def wait_exit(km: AsyncKernelManager, seconds: float) -> bool:
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


async def stop_kernel(
    km: AsyncKernelManager, kc: AsyncKernelClient | None, grace: float = 3.0
) -> None:
    """Ask the kernel to shut down, wait up to ``grace`` seconds, then kill its process group.

    Connection and IPC files are removed in every case.
    """
    try:
        if kc is not None and grace > 0 and km.has_kernel:
            kc.shutdown()
            await wait_exit(km, grace)
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
            await wait_exit(km, 5.0)
            await provisioner.wait()  # reaps at once: the process has exited
        await km.cleanup_resources()
    except Exception:
        pass
    output = outputs.pop(km, None)
    if output is not None:  # what the kernel wrote before it exited is logged now
        output.close()


def kill_now(km: Any) -> None:
    """Kill a kernel at once from any thread, without its event loop (the loop is broken):
    its process group, its output pipes, its files."""
    kill_process_group(kernel_pid(km))
    output = outputs.pop(km, None)
    if output is not None:
        output.close()
    for cleanup in ("cleanup_connection_file", "cleanup_ipc_files"):
        try:
            getattr(km, cleanup)()
        except Exception:
            pass
