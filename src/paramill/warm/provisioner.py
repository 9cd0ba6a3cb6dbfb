"""The jupyter_client provisioner of warm kernels (see paramill.warm)."""

from __future__ import annotations

import logging
import os
from typing import Any

try:  # where the kernel-source redesign puts the fork server
    from ..kernel.forkserver.provisioner import (  # type: ignore[import-not-found]
        ForkServerProvisioner,
        _fd,
        forkable,
    )
except ImportError:
    from ..forkserver import ForkServerProvisioner, _fd, forkable
from . import _say_once
from .client import _open_fork_connection, _path, _read_json, _remember, fork, start_server
from .keys import Key, Unavailable, _which, folder

logger = logging.getLogger("paramill")


class WarmProvisioner(ForkServerProvisioner):
    """Python kernels forked from the user's warm server; a cold launch when there is none."""

    _go: int | None = None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        from jupyter_client.provisioning import LocalProvisioner

        name = getattr(self.kernel_spec, "display_name", None) or cmd[0]
        if not forkable(cmd):
            logger.debug("warm: kernel %r is not an ipykernel; starting it cold", name)
            return await LocalProvisioner.launch_kernel(self, cmd, **kwargs)
        cwd = os.path.abspath(os.fspath(kwargs.get("cwd") or os.getcwd()))
        env = dict(kwargs.get("env") or os.environ)
        env["JPY_PARENT_PID"] = str(os.getpid())
        try:
            kernel = self._warm(cmd, cwd, env, kwargs)
        except Unavailable as exc:
            _say_once(logging.WARNING, "warm: %s; starting a cold kernel", exc)
            kernel = None
        if kernel is None:
            return await LocalProvisioner.launch_kernel(self, cmd, **kwargs)
        self.process = kernel
        self.pid = self.pgid = kernel.pid
        self.cwd = cwd
        spare = getattr(kernel, "connection", None)
        if spare:  # a kernel started ahead, on its own connection (already bound)
            self.connection_info = {**spare, "key": spare["key"].encode()}
            return self.connection_info
        await self._wait_bound(cwd)
        return self.connection_info

    def _warm(self, cmd: list[str], cwd: str, env: dict[str, str], kwargs: dict) -> Any:
        where = folder()
        python = _which(cmd[0], env)
        key = Key(self.kernel_spec, python, env, where)
        wanted = _remember(where, key.digest, list(self.preload))
        try:
            sock = _open_fork_connection(where, key.digest)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            if isinstance(exc, ConnectionRefusedError):  # its socket is left: it died
                logger.warning(
                    "warm: the warm kernel server %s is gone (crashed or killed); "
                    "starting a cold kernel and a new server",
                    key.digest,
                )
                for suffix in (".sock", ".info"):
                    try:
                        os.unlink(_path(where, key.digest, suffix))
                    except OSError:
                        pass
            else:
                logger.info("warm: no warm kernel server yet; this run starts a cold kernel")
            self._go = start_server(where, key, wanted, env)
            return None
        except OSError as exc:
            raise Unavailable(f"cannot reach the warm server: {exc}") from None
        info = _read_json(_path(where, key.digest, ".info")) or {}
        missing = [m for m in wanted if m not in info.get("requested", wanted)]
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            stdio = [devnull, _fd(kwargs.get("stdout"), 1), _fd(kwargs.get("stderr"), 2)]
            kernel = fork(sock, cmd[3:], cwd, env, stdio)
        except OSError as exc:
            sock.close()
            logger.warning(
                "warm: the warm kernel server %s failed (%s); starting a cold kernel",
                key.digest,
                exc,
            )
            return None
        finally:
            os.close(devnull)
        if missing:  # imports the server never saw: a replacement with them takes over
            self._go = start_server(where, key, wanted, env)
        return kernel

    @staticmethod
    async def wait_ready(kc: Any, timeout: float) -> None:
        """``wait_for_ready`` without its fixed 0.2 s of listening for stray IOPub messages:
        done once IOPub carries the idle status of the latest kernel_info request (it is
        subscribed, and nothing older is left queued); asks again if it was subscribed late."""
        import asyncio
        from queue import Empty

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if loop.time() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")
            msg_id = kc.kernel_info()
            try:
                reply = await kc.shell_channel.get_msg(timeout=1)
            except Empty:
                if not await kc._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info") from None
                continue
            if reply["msg_type"] != "kernel_info_reply":
                continue
            end = loop.time() + 0.25
            while (left := end - loop.time()) > 0:
                try:
                    msg = await kc.iopub_channel.get_msg(timeout=left)
                except Empty:
                    break
                if (
                    msg["msg_type"] == "status"
                    and msg["content"].get("execution_state") == "idle"
                    and msg["parent_header"].get("msg_id") == msg_id
                ):
                    kc._handle_kernel_info_reply(reply)
                    return

    async def cleanup(self, restart: bool = False) -> None:
        if self._go is not None:  # the run is over: a server it started may import now
            os.close(self._go)
            self._go = None
        await super().cleanup(restart)
