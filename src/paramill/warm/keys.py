"""The user's warm folder, the warm switch and the key of a server (see paramill.warm).

Standard library only: imported on the command line's start path.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from typing import Any

DIR_VAR = "PARAMILL_WARM_DIR"
IDLE_VAR = "PARAMILL_WARM_IDLE"
DEFAULT_IDLE = 900.0
SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server.py")
_KEY_ENV_PREFIXES = ("LC_", "PYTHON", "MPL", "CONDA_PREFIX", "VIRTUAL_ENV", "LD_LIBRARY_PATH")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


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
