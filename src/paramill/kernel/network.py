"""A kernel someone else started, reached through its connection info (``kernel.json``: ip,
transport, five ports, key, signature scheme): a run uses it and leaves it running.

paramill never shuts such a kernel down: at the end of a run it only closes its own sockets.
The kernel keeps what the run left in its namespace (as papermill's ``kernel_conn_id`` does).
No local process to look at, so a kernel that stops answering heartbeats is dead after the
liveness timeout (silence alone counts).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from ..errors import KernelError
from .lifecycle import connect_client
from .source import Kernel, KernelRequest, KernelSource

_PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def read_connection_info(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """Connection info from a file or a mapping, checked: every port a number, a key (may be
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


class _Remote:
    """What stands in for a kernel manager: a client factory for the connection info. The
    process is not ours: no pid, nothing to stop or kill, and it counts as alive (the
    heartbeat watchdog decides)."""

    provisioner = None
    has_kernel = False  # the engine's stop_kernel then leaves the kernel running

    def __init__(self, info: dict[str, Any], kernel_name: str) -> None:
        self.info = info
        self.kernel_name = kernel_name

    def client(self) -> Any:
        from jupyter_client.asynchronous import AsyncKernelClient

        kc = AsyncKernelClient()
        kc.load_connection_info(self.info)
        return kc

    async def is_alive(self) -> bool:
        return True

    async def cleanup_resources(self, restart: bool = False) -> None:
        return None

    def kill_now(self) -> None:
        return None  # never ours to kill


class ConnectionSource(KernelSource):
    """Runs on an existing kernel: ``connection`` is its connection info (a mapping, or the
    path of its connection file). ``timeout``: how long to try to reach it before a
    KernelError (default: the run's start timeout). Each run gets the same kernel, so state
    carries over between runs; releasing only disconnects, killing leaves it alone."""

    def __init__(
        self, connection: Mapping[str, Any] | str | os.PathLike, timeout: float | None = None
    ) -> None:
        self.info = read_connection_info(connection)
        self.origin = "connection info" if isinstance(connection, Mapping) else "connection file"
        self.timeout = timeout

    def where(self) -> str:
        return f"{self.info['transport']}://{self.info['ip']}:{self.info['shell_port']}"

    async def acquire(self, request: KernelRequest) -> Kernel:
        if request.env:
            # an existing kernel's environment is fixed: a secret could not reach it
            raise KernelError(
                "secrets and kernel environment variables cannot be sent to an existing "
                f"kernel ({self.origin}): it was started by someone else"
            )
        timeout = min(self.timeout or request.startup_timeout, request.startup_timeout)
        remote = _Remote(self.info, request.kernel_name)
        try:
            kc = await connect_client(remote, timeout)
        except KernelError:
            raise KernelError(
                f"the kernel at {self.where()} ({self.origin}) did not answer within "
                f"{timeout:g} s: is it running, and is the key right?"
            ) from None
        return Kernel(remote, kc, self, request, pid=None, owned=False)

    async def release(self, kernel: Kernel, *, grace: float = 3.0) -> None:
        """Disconnect; the kernel keeps running."""
        kernel.client.stop_channels()

    def kill(self, kernel: Kernel) -> None:
        """Not ours to kill: the run is stopped, the kernel left as it is."""

    def is_running(self, kernel: Kernel) -> bool:
        return True
