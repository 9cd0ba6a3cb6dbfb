"""``ForkServerProvisioner``: a jupyter_client kernel provisioner that launches python kernels
as forks of a fork server (anything else as ``LocalProvisioner`` does)."""

from __future__ import annotations

import asyncio
import logging
import os
from importlib.metadata import EntryPoint
from typing import Any

from jupyter_client.provisioning import KernelProvisionerFactory, LocalProvisioner
from traitlets import List, Unicode

from ...secrets import ENV_PREFIX
from .servers import ForkedKernel, server_for

logger = logging.getLogger("paramill")

PROVISIONER_NAME = "paramill-fork-server"
_LAUNCHERS = ("ipykernel_launcher", "ipykernel")


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
    factory = KernelProvisionerFactory.instance()
    target = f"{__name__}:ForkServerProvisioner"
    known = factory.provisioners.get(PROVISIONER_NAME)
    if known is None or known.value != target:  # (an install made before the move)
        factory.provisioners[PROVISIONER_NAME] = EntryPoint(
            PROVISIONER_NAME,
            target,
            "jupyter_client.kernel_provisioners",
        )


def provisioner_stanza(preload: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """The kernelspec ``kernel_provisioner`` metadata that selects the fork server."""
    register()
    return {"provisioner_name": PROVISIONER_NAME, "config": {"preload": list(preload)}}
