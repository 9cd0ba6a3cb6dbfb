"""Kernels forked from a pre-imported ipykernel: a fork server and its kernel provisioner.

Starting an ipykernel costs a Python start and the imports of IPython/ipykernel (~0.45 s of
CPU); a sweep pays it per run. A fork server imports them (and any modules it is told to
preload) once; each kernel is then a ``fork()`` of it that starts ``IPKernelApp`` at once.

Safety, point by point:
- every kernel is still a fresh process: the server never runs user code nor builds a kernel,
  it only imports modules, so nothing a run does can reach the next run;
- the server forks with one thread and no zmq context, event loop or sqlite connection open
  (it refuses to serve if preloading started a thread); a child re-seeds numpy's global RNG
  (``random`` re-seeds itself at fork), closes the server's fds and takes the driver's stdio;
- one server per (python, cwd, env, preload): modules imported in the server saw the same
  environment and working folder the kernel would have had (and ipykernel's MPLBACKEND);
- each kernel calls ``setsid`` (its own process group, like jupyter_client's launch) and dies
  with the server (``PR_SET_PDEATHSIG``); the server kills a kernel whose driver connection
  closes and kills all of them and exits when the driver's pipe to it closes (driver killed);
- exit status: the server reaps its children through pidfds and reports each exit status on
  the kernel's own connection, so ``wait`` blocks on a socket rather than polling.
Known difference from a cold start: kernels from one server share Python's str hash seed.

The package: ``servers`` (driver side: the server processes, a handle per forked kernel),
``provisioner`` (the jupyter_client provisioner), ``server`` (the server's own program, run by
path with the kernel's interpreter: standard library and ipykernel only) and, here, the
``ForkServerSource`` a run can take kernels from.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..local import LocalKernelSource
from .provisioner import (
    PROVISIONER_NAME,
    ForkServerProvisioner,
    forkable,
    provisioner_stanza,
    register,
)
from .servers import (
    ForkedKernel,
    ForkServer,
    _servers,
    close_servers,
    hold,
    let_go,
    server_for,
)


def enabled(flag: bool | None, default: bool = False) -> bool:
    """The fork-server switch: an explicit flag, else ``PARAMILL_FORK_SERVER`` (1/0), else
    ``default``."""
    if flag is not None:
        return flag
    value = os.environ.get("PARAMILL_FORK_SERVER", "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return default


class ForkServerSource(LocalKernelSource):
    """Fresh python kernels forked from a pre-imported server (others start the usual way).
    The servers live until the last source (or pool) using them is closed."""

    def __init__(self, preload: Iterable[str] = ()) -> None:
        super().__init__(provisioner=provisioner_stanza(tuple(preload)))
        hold()
        self._held = True

    def close(self) -> None:
        super().close()
        if self._held:
            self._held = False
            let_go()


__all__ = [
    "PROVISIONER_NAME",
    "ForkServer",
    "ForkServerProvisioner",
    "ForkServerSource",
    "ForkedKernel",
    "_servers",
    "close_servers",
    "enabled",
    "forkable",
    "hold",
    "let_go",
    "provisioner_stanza",
    "register",
    "server_for",
]
