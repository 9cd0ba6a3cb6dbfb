"""Kernels: the kernel-source interface and its implementations.

``source`` (KernelRequest, Kernel, KernelSource), ``lifecycle`` (the one place kernels are
launched, connected, stopped and killed), ``local`` (a fresh kernel per run), ``pool`` (warm
kernels), ``forkserver`` (kernels forked from a pre-imported server), ``network`` (a kernel
someone else started), ``ipc`` and ``output`` (IPC folders; a kernel's own stdout/stderr).
Names are imported on first use, so importing this package costs nothing.
"""

from __future__ import annotations

from .. import _lazy_attributes

_LAZY = {
    "Kernel": "source",
    "KernelRequest": "source",
    "KernelSource": "source",
    "LocalKernelSource": "local",
    "KernelPool": "pool",
    "ConnectionSource": "network",
    "ForkServerSource": "forkserver",
    "WarmSource": "warm",
}

__getattr__ = _lazy_attributes(__name__, _LAZY)

__all__ = sorted(_LAZY)
