"""The kernel-source interface: how a run gets a started, connected kernel and gives it back.

A run describes the kernel it needs as a ``KernelRequest``; a ``KernelSource`` turns it into a
``Kernel`` (``acquire``), takes it back when the run is over (``release``) or kills it at once
(``kill``). New ways of getting a kernel (a remote gateway, a server's own pool) are one new
subclass; the run path does not change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .lifecycle import is_running, kernel_pid, kill_now, stop_kernel


@dataclass(frozen=True)
class KernelRequest:
    """What a run needs: a kernelspec, its working folder and environment (the variables added
    to paramill's own), and how long it may take to answer."""

    kernel_name: str
    language: str | None = None
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    startup_timeout: float = 60

    @property
    def key(self) -> tuple[str, str | None, tuple[tuple[str, str], ...]]:
        """Kernels are interchangeable when these match (cwd and env are fixed at start)."""
        folder = os.path.abspath(os.fspath(self.cwd)) if self.cwd is not None else None
        return (self.kernel_name, folder, tuple(sorted(self.env.items())))


@dataclass
class Kernel:
    """A started kernel with a client on the caller's event loop."""

    manager: Any  # an AsyncKernelManager, or what stands in for one (see network.py)
    client: Any  # an AsyncKernelClient
    source: KernelSource
    request: KernelRequest
    pid: int | None = None  # the kernel process, when it is on this machine
    owned: bool = True  # whether paramill stops it when the run is over

    @property
    def kernel_name(self) -> str:
        return self.request.kernel_name


class KernelSource:
    """Gives kernels to runs. ``acquire`` and ``release`` run on the run's event loop.

    Subclasses implement ``acquire``; the default ``release`` stops the kernel (a short grace,
    then its process group is killed), ``kill`` kills it from any thread.
    """

    def prepare(self, request: KernelRequest) -> None:
        """A hint, before the notebook is read: a kernel for ``request`` will be asked for
        soon (a source may start it now). Never raises."""

    async def acquire(self, request: KernelRequest) -> Kernel:
        raise NotImplementedError

    async def release(self, kernel: Kernel, *, grace: float = 3.0) -> None:
        """The run is over: stop the kernel (``grace`` seconds to shut down cleanly)."""
        await stop_kernel(kernel.manager, kernel.client, grace=grace)

    def kill(self, kernel: Kernel) -> None:
        """Kill the kernel now, from any thread (the run's loop may be broken)."""
        kill_now(kernel.manager)

    def is_running(self, kernel: Kernel) -> bool:
        return is_running(kernel.manager)

    def close(self) -> None:
        """Stop whatever the source keeps (kernels started ahead, servers)."""

    def __enter__(self) -> KernelSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _kernel(self, manager: Any, client: Any, request: KernelRequest) -> Kernel:
        return Kernel(manager, client, self, request, pid=kernel_pid(manager))
