"""A kernel someone else started, reached through its connection info (``kernel.json``: ip,
transport, five ports, key, signature scheme).

paramill never shuts such a kernel down: at the end of a run it only closes its own sockets.
The kernel keeps what the run left in its namespace (as papermill's ``kernel_conn_id`` does).
No local process to look at, so a kernel that stops answering heartbeats is dead after the
liveness timeout (silence alone counts).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from .errors import KernelError
from .kernel.source import Kernel, KernelSource

logger = logging.getLogger("paramill")

_PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def read_connection_info(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """Connection info from a file or a dict, checked: every port a number, a key (may be
    empty), transport and ip defaulted as jupyter_client does."""
    where = "the connection info"
    if isinstance(source, Mapping):
        info = dict(source)
    else:
        where = os.fspath(source)
        try:
            with open(where) as f:
                info = json.load(f)
        except OSError as exc:
            raise KernelError(f"connection file {where}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise KernelError(f"connection file {where} is not JSON: {exc}") from None
        if not isinstance(info, dict):
            raise KernelError(f"connection file {where} is not a JSON object")
    missing = [p for p in _PORTS if not isinstance(info.get(p), int) or isinstance(info[p], bool)]
    if missing:
        raise KernelError(f"{where}: missing or not a port number: {', '.join(missing)}")
    info.setdefault("transport", "tcp")
    info.setdefault("ip", "127.0.0.1")
    key = info.get("key", "")
    info["key"] = key.encode() if isinstance(key, str) else (key or b"")
    info.setdefault("signature_scheme", "hmac-sha256")
    info.pop("kernel_name", None)
    return info


def describe(info: Mapping[str, Any]) -> str:
    return f"{info.get('transport', 'tcp')}://{info.get('ip', '127.0.0.1')}:{info['shell_port']}"


class ExistingKernel:
    """The manager side of a kernel paramill did not start: nothing to stop, nothing to kill."""

    has_kernel = False  # the engine's stop_kernel then leaves the kernel running
    provisioner = None

    def __init__(self, info: Mapping[str, Any], kernel_name: str) -> None:
        self.info = dict(info)
        self.kernel_name = kernel_name

    async def cleanup_resources(self, restart: bool = False) -> None:
        return None

    def kill_now(self) -> None:
        return None  # never ours to kill


class ConnectionSource(KernelSource):
    """Runs on one existing kernel. Every run on it shares the kernel's state; releasing only
    disconnects, killing leaves it alone."""

    def __init__(self, connection: str | os.PathLike | Mapping[str, Any]) -> None:
        self.info = read_connection_info(connection)

    async def starter(
        self,
        kernel_name: str,
        *,
        cwd: Any = None,
        startup_timeout: float = 60,
        env: Mapping[str, str] | None = None,
    ) -> tuple[ExistingKernel, Any]:
        from jupyter_client.asynchronous import AsyncKernelClient

        if env:
            # an existing kernel's environment is fixed: a secret could not reach it
            raise KernelError(
                "secrets and kernel environment variables cannot be sent to an existing "
                "kernel (--connection-file): it was started by someone else"
            )
        kc = AsyncKernelClient()
        kc.load_connection_info(self.info)
        kc.start_channels(hb=False)  # the engine pings the heartbeat itself
        try:
            await kc.wait_for_ready(timeout=startup_timeout)
        except (RuntimeError, TimeoutError):
            kc.stop_channels()
            raise KernelError(
                f"the kernel at {describe(self.info)} (connection file) did not answer within "
                f"{startup_timeout:g} s (--start-timeout): is it running, and is the key right?"
            ) from None
        except BaseException:
            kc.stop_channels()
            raise
        kc.allow_stdin = False
        return ExistingKernel(self.info, kernel_name), kc

    async def acquire(self, request: Any) -> Kernel:
        km, kc = await self.starter(
            request.kernel_name,
            startup_timeout=request.startup_timeout,
            env=dict(request.env or {}),
        )
        return Kernel(km, kc, self, request, pid=None, owned=False)

    async def release(self, kernel: Kernel, *, grace: float = 3.0) -> None:
        """Disconnect; the kernel keeps running."""
        kernel.client.stop_channels()

    def kill(self, kernel: Kernel) -> None:
        """Not ours to kill: the run is stopped, the kernel left as it is."""

    def is_running(self, kernel: Kernel) -> bool:
        return True

    def close(self) -> None:
        """Nothing to release: the kernel is not ours."""
