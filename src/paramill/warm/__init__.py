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

import errno
import fcntl
import hashlib
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import time
from typing import Any

logger = logging.getLogger("paramill")

PROVISIONER_NAME = "paramill-warm"
DIR_VAR = "PARAMILL_WARM_DIR"
IDLE_VAR = "PARAMILL_WARM_IDLE"
DEFAULT_IDLE = 900.0
SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server.py")
RUN_NAME = "__paramill_warm_server__"
_MAX_PRELOADS = 64
_SERVER_ENV = {
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMPDIR", "TEMP", "TMP",
    "VIRTUAL_ENV", "LD_LIBRARY_PATH", "PYDEVD_DISABLE_FILE_VALIDATION",
}  # fmt: skip
_SERVER_ENV_PREFIXES = ("LC_", "PYTHON", "XDG_", "CONDA_", "JUPYTER_", "IPYTHON", "MPL")
_KEY_ENV_PREFIXES = ("LC_", "PYTHON", "MPL", "CONDA_PREFIX", "VIRTUAL_ENV", "LD_LIBRARY_PATH")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
_warned: set[str] = set()


class Unavailable(Exception):
    """No warm kernel for this run (the message says why; the run starts a cold kernel)."""


def enabled(flag: bool | None = None) -> bool:
    """The warm switch: an explicit flag, else ``PARAMILL_WARM`` (1/0), else ``warm = true``
    under ``[tool.paramill]`` in ``./pyproject.toml``, else off."""
    if flag is not None:
        return flag
    value = os.environ.get("PARAMILL_WARM", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE[:-1]:
        return False
    return bool(_config().get("warm", False))


def _config() -> dict[str, Any]:
    try:
        with open("pyproject.toml", "rb") as f:
            text = f.read()
    except OSError:
        return {}
    if b"[tool.paramill" not in text:
        return {}
    try:
        import tomllib  # type: ignore[import-not-found]
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            return {}
    try:
        section = tomllib.loads(text.decode()).get("tool", {}).get("paramill", {})
    except (ValueError, UnicodeDecodeError):
        return {}
    return section if isinstance(section, dict) else {}


def idle_timeout() -> float:
    value = os.environ.get(IDLE_VAR) or _config().get("warm_idle")
    try:
        return max(0.1, float(value)) if value not in (None, "") else DEFAULT_IDLE
    except (TypeError, ValueError):
        return DEFAULT_IDLE


def folder_path() -> str:
    if os.environ.get(DIR_VAR):
        return os.path.abspath(os.environ[DIR_VAR])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and len(runtime) < 60:
        return os.path.join(runtime, "paramill-warm")
    return f"/tmp/paramill-warm-{os.geteuid()}"


def folder(create: bool = True) -> str:
    """The user's warm folder, checked: a directory (not a link) owned by us, mode 0700."""
    path = folder_path()
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise Unavailable(f"cannot create the warm folder {path}: {exc.strerror}") from None
    check_folder(path)
    return path


def check_folder(path: str) -> None:
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise Unavailable(f"warm folder {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise Unavailable(f"warm folder {path} is not a directory: refused")
    if st.st_uid != os.geteuid():
        raise Unavailable(f"warm folder {path} belongs to uid {st.st_uid}, not you: refused")
    if st.st_mode & 0o077:
        raise Unavailable(f"warm folder {path} has mode {st.st_mode & 0o777:o}, not 700: refused")


# -- the key ----------------------------------------------------------------------------------
def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _which(python: str, env: dict[str, str]) -> str:
    import shutil

    found = python if os.sep in python else shutil.which(python, path=env.get("PATH"))
    if not found:
        raise Unavailable(f"{python}: not found")
    return os.path.abspath(found)


def _python_path(python: str, env: dict[str, str], where: str) -> list[str]:
    """The interpreter's ``sys.path`` (without the script folder), asked once and cached."""
    real = os.path.realpath(python)
    st = os.stat(real)
    names = ("PYTHONPATH", "PYTHONHOME", "PYTHONNOUSERSITE", "PYTHONUSERBASE", "HOME")
    cache = os.path.join(
        where,
        "path-"
        + _digest(python, real, st.st_mtime_ns, st.st_ino, [env.get(n) for n in names])[:16]
        + ".cache",
    )
    try:
        with open(cache) as f:
            return json.load(f)
    except (OSError, ValueError):
        pass
    code = "import sys, json; print(json.dumps(sys.path[1:]))"
    try:
        out = subprocess.run(
            [python, "-c", code], env=env, capture_output=True, timeout=60, cwd=where, check=True
        ).stdout
        paths = json.loads(out)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"cannot ask {python} for its sys.path: {exc}") from None
    tmp = f"{cache}.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(paths, f)
    os.replace(tmp, cache)
    return paths


_DIST = (".dist-info", ".egg-info", ".egg-link", ".pth", ".egg")


def packages_digest(paths: list[str]) -> str:
    """What is installed where the interpreter imports from: each folder's time and its
    distributions' names (with versions) and times. Installing, upgrading or removing a
    package changes it."""
    seen = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        seen.append((path, st.st_mtime_ns))
        if not stat.S_ISDIR(st.st_mode):
            continue
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    if entry.name.endswith(_DIST):
                        try:
                            seen.append((entry.name, entry.stat().st_mtime_ns))
                        except OSError:
                            continue
        except OSError:
            continue
    seen.sort()
    return _digest(seen)


class Key:
    """What makes two kernels equivalent: a server serves one key."""

    def __init__(
        self,
        kernel_spec: Any,
        python: str,
        env: dict[str, str],
        where: str,
        paths: list[str] | None = None,
        extra: Any = None,
    ) -> None:
        spec = {
            "argv": list(kernel_spec.argv),
            "env": dict(kernel_spec.env or {}),
            "language": kernel_spec.language,
            "name": getattr(kernel_spec, "name", ""),
        }
        self.python = python
        packages = packages_digest(paths if paths is not None else _python_path(python, env, where))
        import_env = {
            k: v
            for k, v in env.items()
            if k.startswith(_KEY_ENV_PREFIXES) or k == "LANG" or k.endswith("_NUM_THREADS")
        }
        with open(SERVER, "rb") as f:
            program = hashlib.sha256(f.read()).hexdigest()
        real = os.path.realpath(python)
        st = os.stat(real)
        self.family = _digest(spec["name"], spec["argv"], real)[:16]
        self.digest = _digest(spec, real, st.st_mtime_ns, packages, import_env, program, extra)[:20]
        self.describe = {
            "kernelspec": spec["name"] or spec["argv"][0],
            "python": python,
            "packages": packages[:12],
            "env": _digest(import_env)[:12],
        }


# -- talking to servers -----------------------------------------------------------------------
def _path(where: str, key: str, suffix: str) -> str:
    return os.path.join(where, f"{key}{suffix}")


def request(where: str, key: str, op: str, timeout: float = 10) -> dict[str, Any]:
    """One control request (status, stop, retire) to a server; its JSON reply."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(_path(where, key, ".sock"))
        data = json.dumps({"op": op}).encode()
        sock.sendall(len(data).to_bytes(8, "big") + data)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError(errno.ECONNRESET, "the server closed the connection")
            reply += chunk
        return json.loads(reply)
    finally:
        sock.close()


def _read_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _remember(where: str, key: str, modules: list[str]) -> list[str]:
    """Add a notebook's imports to the key's remembered preloads; all of them, in order."""
    path = _path(where, key, ".preload")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            known = json.loads(f.read() or "[]")
        except ValueError:
            known = []
        new = [m for m in modules if m not in known]
        if new:
            known = (known + new)[-_MAX_PRELOADS:]
            f.seek(0)
            f.truncate()
            f.write(json.dumps(known))
    return known


def _server_env(env: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in env.items()
        if k in _SERVER_ENV or k.startswith(_SERVER_ENV_PREFIXES) or k.endswith("_NUM_THREADS")
    }


def start_server(
    where: str, key: Key, preload: list[str], env: dict[str, str], kind: str = "kernel"
) -> int | None:
    """Start a server for ``key`` in the background, detached, unless one is starting.

    Returns the write end of its "go" pipe: the server imports once it is closed (the run that
    started it is over, or its process exited).
    """
    lock = os.open(_path(where, key.digest, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        return None  # another process is starting one
    read, write = os.pipe()
    config = {
        "folder": where,
        "key": key.digest,
        "family": key.family,
        "describe": key.describe,
        "idle": idle_timeout(),
        "preload": preload,
        "lock_fd": lock,
        "kind": kind,
    }
    boot = f"import runpy; runpy.run_path({SERVER!r}, run_name={RUN_NAME!r})"
    try:
        with open(_path(where, key.digest, ".log"), "ab") as log:
            process = subprocess.Popen(
                [key.python, "-c", boot, json.dumps(config)],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=where,
                env=_server_env(env),
                pass_fds=(lock,),
                start_new_session=True,  # detached: outlives this process, its signals
            )
        with open(_path(where, key.digest, ".starting"), "w") as f:
            f.write(str(process.pid))
        # not waited for: it outlives us; reaped here if it exits before we do
        _detached[:] = [p for p in _detached if p.poll() is None]
        _detached.append(process)
    except OSError as exc:
        os.close(write)
        logger.debug("warm: the server did not start: %s", exc)
        return None
    finally:
        os.close(read)
        os.close(lock)
    return write


_detached: list[subprocess.Popen] = []


def _open_fork_connection(where: str, key: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(_path(where, key, ".sock"))
    except BaseException:
        sock.close()
        raise
    return sock


def fork(
    sock: socket.socket, argv: list[str], cwd: str, env: dict[str, str], stdio: list[int]
) -> Any:
    """Ask a connected server for a kernel (a ``ForkedKernel``); the request (env included)
    goes in a memfd."""
    pid, info = _send_fork(sock, argv, cwd, env, stdio)
    sock.setblocking(False)
    try:  # where the kernel-source redesign puts the fork server
        from ..kernel.forkserver.servers import ForkedKernel  # type: ignore[import-not-found]
    except ImportError:
        from ..forkserver import ForkedKernel

    kernel = ForkedKernel(sock, pid)
    kernel.connection = info  # type: ignore[attr-defined]
    return kernel


def _send_fork(
    sock: socket.socket, argv: list[str], cwd: str, env: dict[str, str], stdio: list[int]
) -> tuple[int, dict | None]:
    memfd = os.memfd_create("paramill-warm-request", os.MFD_CLOEXEC)
    try:
        os.write(memfd, json.dumps({"argv": argv, "cwd": cwd, "env": env}).encode())
        header = json.dumps({"op": "fork"}).encode()
        socket.send_fds(sock, [len(header).to_bytes(8, "big") + header], [*stdio, memfd])
    finally:
        os.close(memfd)
    sock.settimeout(30)
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionResetError(errno.ECONNRESET, "the warm server closed the connection")
        line += chunk
    parts = line.strip().split(b" ", 2)
    if parts[0] != b"pid" or len(parts) < 2:
        raise OSError(f"the warm server failed to fork: {line.decode().strip()}")
    # a spare kernel (initialized ahead) comes with its own connection
    return int(parts[1]), (json.loads(parts[2]) if len(parts) > 2 else None)


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


# -- status and stop --------------------------------------------------------------------------
def _proc(pid: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss_kb"] = int(line.split()[1])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out


def _starting_pid(where: str, key: str) -> int | None:
    """The pid of a server of this key that is still starting (its lock is held)."""
    try:
        with open(_path(where, key, ".starting")) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if RUN_NAME.encode() not in f.read():
                return None
    except (OSError, ValueError):
        return None
    lock = os.open(_path(where, key, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None  # nobody holds it: not starting
    except OSError:
        return pid
    finally:
        os.close(lock)


def servers() -> list[dict[str, Any]]:
    """The user's warm servers: serving ones (asked), starting ones and stale entries."""
    where = folder(create=False) if os.path.isdir(folder_path()) else None
    if where is None:
        return []
    found = []
    keys = {n.rsplit(".", 1)[0] for n in os.listdir(where) if n.endswith((".sock", ".starting"))}
    for key in sorted(keys):
        entry: dict[str, Any] = {"key": key}
        if os.path.exists(_path(where, key, ".sock")):
            try:
                entry.update(request(where, key, "status"), state="serving")
                entry["age"] = round(time.time() - entry["started"], 1)
                entry.update(_proc(entry["pid"]))
            except OSError as exc:
                entry.update(state="gone", error=str(exc))
        pid = _starting_pid(where, key)
        if pid is not None:
            found.append({"key": key, "state": "starting", "pid": pid})
        if "state" in entry:
            found.append(entry)
    return found


def stop_all(timeout: float = 10) -> list[dict[str, Any]]:
    """Stop every server of the user (their kernels are killed); what was stopped."""
    import signal

    where = folder(create=False) if os.path.isdir(folder_path()) else None
    if where is None:
        return []
    stopped = []
    for entry in servers():
        pid = entry.get("pid")
        if entry["state"] == "serving":
            try:
                request(where, entry["key"], "stop")
            except OSError:
                pass
        elif entry["state"] == "starting" and pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if pid:
            _wait_gone(pid, timeout)
        for suffix in (".sock", ".info", ".starting"):
            if entry["state"] != "serving" or suffix != ".starting":
                try:
                    os.unlink(_path(where, entry["key"], suffix))
                except OSError:
                    pass
        stopped.append(entry)
    return stopped


def _wait_gone(pid: int, timeout: float) -> None:
    import signal

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in "ZX":
                    return
        except OSError:
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
