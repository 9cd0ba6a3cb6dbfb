"""A fresh local kernel per run, optionally launched ahead (``prepare``) while the notebook is
still being read and parameterized."""

from __future__ import annotations

import threading
from typing import Any

from .lifecycle import connect_kernel, installed_kernels, launch_kernel, start_kernel, stop_kernel
from .source import Kernel, KernelRequest, KernelSource


class LocalKernelSource(KernelSource):
    """Starts a new kernel process for each request (IPC transport where the kernel can)."""

    def __init__(self, *, provisioner: dict[str, Any] | None = None) -> None:
        #: a kernelspec ``kernel_provisioner`` stanza (the fork server's), or None
        self.provisioner = provisioner
        self._ahead: tuple[KernelRequest, Any] | None = None
        self._lock = threading.Lock()

    def prepare(self, request: KernelRequest) -> None:
        """Launch the kernel now; ``acquire`` with the same request connects to it."""
        from jupyter_core.utils import run_sync

        try:
            if request.kernel_name not in installed_kernels():
                return  # acquire reports it
            km = run_sync(launch_kernel)(
                request.kernel_name,
                cwd=request.cwd,
                env=dict(request.env) or None,
                provisioner=self.provisioner,
            )
        except Exception:  # acquire (the normal path) reports it
            return
        with self._lock:
            self._discard_ahead()
            self._ahead = (request, km)

    async def acquire(self, request: KernelRequest) -> Kernel:
        with self._lock:
            ahead, self._ahead = self._ahead, None
        if ahead is not None and _same(ahead[0], request):
            km = ahead[1]
            return self._kernel(km, await connect_kernel(km, request.startup_timeout), request)
        if ahead is not None:
            await stop_kernel(ahead[1], None, grace=0)
        km, kc = await start_kernel(
            request.kernel_name,
            cwd=request.cwd,
            startup_timeout=request.startup_timeout,
            env=dict(request.env) or None,
            provisioner=self.provisioner,
        )
        return self._kernel(km, kc, request)

    def close(self) -> None:
        """Stop a kernel launched ahead that no run took."""
        with self._lock:
            self._discard_ahead()

    def _discard_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            from jupyter_core.utils import run_sync

            run_sync(stop_kernel)(ahead[1], None, grace=0)


def _same(a: KernelRequest, b: KernelRequest) -> bool:
    return (a.kernel_name, a.cwd, dict(a.env)) == (b.kernel_name, b.cwd, dict(b.env))
