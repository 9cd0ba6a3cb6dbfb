"""``paramill warm status`` and ``paramill warm stop``: the user's servers, stopping them (see
paramill.warm).

Standard library only.
"""

from __future__ import annotations

import fcntl
import os
import time
from typing import Any

from .client import RUN_NAME, _path, request
from .keys import folder, folder_path


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
