"""A kernel someone else started, reached over the network from its connection info (ip,
ports, key, transport): a run uses it and leaves it running; paramill never shuts it down."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from ..errors import KernelError
from .lifecycle import connect_client
from .source import Kernel, KernelRequest, KernelSource


class _Remote:
    """What stands in for a kernel manager: a client factory for the connection info. The
    process is not ours: no pid, and it counts as alive (the heartbeat watchdog decides)."""

    provisioner = None
    has_kernel = False

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

    def where(self) -> str:
        ip, port = self.info.get("ip", "?"), self.info.get("shell_port", "?")
        return f"{self.info.get('transport', 'tcp')}://{ip}:{port}"


class ConnectionSource(KernelSource):
    """Runs on an existing kernel: ``connection`` is its connection info (a mapping, or the
    path of its connection file). ``timeout``: how long to try to reach it before a
    KernelError. Each run gets the same kernel, so state carries over between runs."""

    def __init__(self, connection: Mapping[str, Any] | str | os.PathLike, timeout: float = 10):
        if isinstance(connection, (str, os.PathLike)):
            with open(connection) as f:
                connection = json.load(f)
        self.info = dict(connection)
        self.timeout = timeout

    async def acquire(self, request: KernelRequest) -> Kernel:
        remote = _Remote(self.info, request.kernel_name)
        try:
            kc = await connect_client(remote, min(self.timeout, request.startup_timeout))
        except KernelError:
            raise KernelError(
                f"could not reach the kernel at {remote.where()} within "
                f"{min(self.timeout, request.startup_timeout):g} s"
            ) from None
        return Kernel(remote, kc, self, request, pid=None, owned=False)

    async def release(self, kernel: Kernel, *, grace: float = 3.0) -> None:
        """Disconnect; the kernel keeps running."""
        kernel.client.stop_channels()

    def kill(self, kernel: Kernel) -> None:
        """Not ours to kill: the run is stopped, the kernel left as it is."""

    def is_running(self, kernel: Kernel) -> bool:
        return True
