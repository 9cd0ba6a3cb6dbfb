"""Warm kernels for single runs: a per-user server of pre-imported ipykernels, kept between runs.

``paramill --warm IN OUT`` (or ``PARAMILL_WARM=1``, ``warm=True``) runs on a kernel forked from
a warm server of the user. The first warm run finds none: it runs on a cold kernel and starts
one in the background, which imports once that run is over (so that run is no slower). Later
runs, from any process of the user, get a fork of it with the notebook's imports loaded.

- key: a server is for one kernelspec, the kernel's interpreter, its installed packages (names
  and times of the dist-info entries of every ``sys.path`` folder, and the folders' times) and
  the environment read at import (``PYTHON*``, locale, ``MPL*``, ``*_NUM_THREADS``); when any
  of these change the run uses (starts) another server and the stale one is told to retire;
- preloads: a notebook's ``import`` statements (installed modules only) are remembered per
  key; a run needing one the server lacks starts a replacement that takes over its socket;
- the folder (``PARAMILL_WARM_DIR``, else ``$XDG_RUNTIME_DIR/paramill-warm``, else
  ``/tmp/paramill-warm-UID``) must be a directory of the user, mode 0700; otherwise runs are
  cold. The server also refuses connections from other uids (``SO_PEERCRED``);
- the server's own environment is an allow-list (paths, locale, Python and Jupyter settings);
  each kernel's full environment (secrets included) travels in a memfd only the forked kernel
  reads;
- a server that is gone (crashed, killed) is detected at connect: one log line, a cold run;
- idle exit after ``PARAMILL_WARM_IDLE`` seconds (default 900) without a kernel or request.

Two kinds of servers: ``kernel`` (forks kernels; keeps one spare kernel initialized ahead and
hands it to the next request) and ``cli`` (forks paramill's command line itself, with its
imports done: ``run_cli``; the kernel of that run then comes from a ``kernel`` server).
Not re-randomizable after fork: the str hash seed, chosen when a server starts and shared by
its forks (``PYTHONHASHSEED`` in the run's environment is part of the key, so is honoured).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from .client import RUN_NAME, _open_fork_connection, _path, _send_fork, fork, request, start_server
from .keys import (
    DEFAULT_IDLE,
    DIR_VAR,
    IDLE_VAR,
    SERVER,
    Key,
    Unavailable,
    check_folder,
    enabled,
    folder,
    folder_path,
    idle_timeout,
    packages_digest,
)
from .status import servers, stop_all

__all__ = [
    "CLI_PRELOAD", "DEFAULT_IDLE", "DIR_VAR", "IDLE_VAR", "IN_CLI_FORK", "PROVISIONER_NAME",
    "RUN_NAME", "SERVER", "Key", "Unavailable", "check_folder", "cli_key", "enabled", "folder",
    "folder_path", "fork", "idle_timeout", "notebook_imports", "packages_digest",
    "provisioner_stanza", "register", "request", "run_cli", "servers", "start_server",
    "stop_all", "wants_cli_fork",
]  # fmt: skip

logger = logging.getLogger("paramill")

PROVISIONER_NAME = "paramill-warm"
_warned: set[str] = set()


# -- the command line itself, forked from a warm paramill ------------------------------------------
IN_CLI_FORK = False  # set in a fork of a cli server: its run must not ask for itself again
CLI_PRELOAD = [  # (a module that is not there is skipped)
    "asyncio",
    "click",
    "zmq",
    "zmq.asyncio",
    "jupyter_core.paths",
    "jupyter_client",
    "jupyter_client.asynchronous",
    "jupyter_client.provisioning",
    "jupyter_client.kernelspec",
    "nbformat",
    "nbformat.v4",
    "nbclient",
    "paramill.cli",
    "paramill.cli.run",
    "paramill.cli.options",
    "paramill.cli.exits",
    "paramill.cli.values",
    "paramill.api",
    "paramill.engine",
    "paramill.notebook",
    "paramill.parameters",
    "paramill.secrets",
    "paramill.storage",
    "paramill.kernel.lifecycle",
    "paramill.kernel.local",
    "paramill.kernel.forkserver",
    "paramill.kernel.warm",
    "paramill.warm.provisioner",
]
_cli_go: int | None = None


def _tree_times(root: str) -> list[tuple[str, int]]:
    found = []
    for base, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(base, name)
                try:
                    found.append((os.path.relpath(path, root), os.stat(path).st_mtime_ns))
                except OSError:
                    continue
    return sorted(found)


def cli_key(where: str) -> Key:
    """The key of a server of paramill's command line: this interpreter, what it imports from
    (``sys.path`` and its packages), paramill's own files and the environment read at import."""
    from types import SimpleNamespace

    spec = SimpleNamespace(argv=["paramill"], env={}, language="", name="paramill-cli")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return Key(spec, sys.executable, dict(os.environ), where, sys.path[1:], _tree_times(root))


def run_cli(argv: list[str]) -> int | None:
    """Run this command line in a fork of the user's warm paramill server (its stdio, cwd and
    environment are ours); its exit code. None: run it in this process (there is no server
    yet: one starts once this process is done)."""
    global _cli_go
    if IN_CLI_FORK:
        return None
    try:
        where = folder()
        key = cli_key(where)
        cwd = os.getcwd()
    except (Unavailable, OSError):
        return None  # the run itself says why, if it is about the folder
    try:
        sock = _open_fork_connection(where, key.digest)
    except OSError:
        failed = os.path.exists(_path(where, key.digest, ".failed"))  # cannot import paramill
        if _cli_go is None and not failed:
            _cli_go = start_server(where, key, CLI_PRELOAD, dict(os.environ), kind="cli")
        return None
    try:
        pid, _ = _send_fork(sock, argv, cwd, dict(os.environ), [0, 1, 2])
    except OSError:
        sock.close()
        return None
    import signal

    def forward(signum: int, _frame: Any) -> None:
        try:
            os.kill(pid, signum)
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    sock.settimeout(None)
    line = b""
    while not line.endswith(b"\n"):
        try:
            chunk = sock.recv(64)
        except OSError:
            chunk = b""
        if not chunk:
            sys.stderr.write("paramill: error: the warm paramill server died during the run\n")
            return 1
        line += chunk
    code = int(line.split()[1])
    return code if code >= 0 else 128 - code


def wants_cli_fork(args: list[str]) -> bool:
    """Whether a command line asks for a warm run (``--warm``, else PARAMILL_WARM/config)."""
    args = args[: args.index("--")] if "--" in args else args
    if "--no-warm" in args:
        return False
    return "--warm" in args or enabled(None)


def _say_once(level: int, message: str, *args: Any) -> None:
    text = message % args
    if text in _warned:
        level = logging.DEBUG
    _warned.add(text)
    logger.log(level, text)


def register() -> None:
    """Make the provisioner known to jupyter_client even without a reinstall of paramill."""
    from importlib.metadata import EntryPoint

    from jupyter_client.provisioning import KernelProvisionerFactory

    factory = KernelProvisionerFactory.instance()
    if PROVISIONER_NAME not in factory.provisioners:
        factory.provisioners[PROVISIONER_NAME] = EntryPoint(
            PROVISIONER_NAME,
            f"{__name__}.provisioner:WarmProvisioner",
            "jupyter_client.kernel_provisioners",
        )


def provisioner_stanza(preload: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The kernelspec ``kernel_provisioner`` metadata that selects a warm kernel."""
    register()
    return {"provisioner_name": PROVISIONER_NAME, "config": {"preload": list(preload)}}


def notebook_imports(nb: Any) -> list[str]:
    """The modules a notebook (a dict as read from JSON, or a NotebookNode) imports."""
    from types import SimpleNamespace

    from ..sweeps.plan import template_imports

    cells = []
    for cell in nb.get("cells", []) if isinstance(nb, dict) else nb.cells:
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        cells.append(SimpleNamespace(cell_type=cell.get("cell_type"), source=source))
    return template_imports(SimpleNamespace(cells=cells))
