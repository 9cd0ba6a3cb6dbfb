"""The one adapter between the server and paramill's run API.

Interim shape (until ``paramill.run`` takes ``kernel_source=``/``events=``/``cancel=``): runs go
through ``paramill.run`` with ``kernel_starter=pool.acquire`` on a warm ``KernelPool`` whose
python kernels are forked from a pre-imported fork server (as ``paramill sweep`` does: a
hand-out in tens of milliseconds). Progress comes from the output notebook paramill autosaves
while a run goes on (read only for runs still going after ``PROGRESS_AFTER`` seconds, so
short runs cost nothing), and cancelling kills the run's kernel process group: paramill then
ends the run, saves the partial output, and the server marks it cancelled. Everything the
server needs from a run passes through this module, so switching to the new keywords touches
nothing else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("paramill.serve")

PROGRESS_AFTER = 0.5  # seconds before a run's autosaved output is first read
PROGRESS_EVERY = 0.5


@dataclass
class Job:
    run_id: str
    path: str  # the notebook file
    parameters: dict[str, Any]
    output_path: str
    timeout: float | None
    secrets: dict[str, str] = field(default_factory=dict)
    storage_options: dict[str, Any] | None = None


@dataclass
class Outcome:
    status: str  # completed | failed | cancelled
    error: dict[str, Any] | None
    records: dict[str, Any]
    cells_total: int | None = None
    cells_done: int | None = None


# (run id, {"cells_done", "cells_total", "output"})
Progress = Callable[[str, dict[str, Any]], None]


class Runner:
    def __init__(self, workers: int, *, fork_server: bool = True, start_timeout: float = 60):
        from ..pool import KernelPool

        # two ready kernels per worker (sweep's measurement: one leaves a worker waiting)
        self.pool = KernelPool(2 * max(1, workers), fork_server=fork_server,
                               start_timeout=start_timeout)
        self._kernels: dict[str, Any] = {}  # run id -> kernel manager, while it runs
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        self.pool.close()

    def warm(self, path: str, nb: Any, secrets: dict[str, str]) -> None:
        """Start kernels for this notebook before its first run."""
        from ..secrets import kernel_env

        kernel = nb.metadata.get("kernelspec", {}).get("name")
        if kernel:
            self.pool.warm(kernel, cwd=os.path.dirname(path), env=kernel_env(secrets))

    def cancel(self, run_id: str) -> bool:
        """Stop a run this process is executing: its kernel is killed, paramill saves the
        partial output. False when the run is not running here."""
        from ..kernels import kernel_pid

        with self._lock:
            self._cancelled.add(run_id)
            km = self._kernels.get(run_id)
        if km is None:
            return False
        pid = kernel_pid(km)
        if pid:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)  # kernels run in their own session
        return True

    def execute(self, job: Job, progress: Progress | None = None) -> Outcome:
        import paramill

        from ..errors import ParamillError

        pool = self.pool

        async def starter(kernel_name: str, **kwargs: Any) -> Any:
            km, kc = await pool.acquire(kernel_name, **kwargs)
            with self._lock:
                self._kernels[job.run_id] = km
                cancelled = job.run_id in self._cancelled
            if cancelled:  # asked to stop while the kernel was on its way
                self.cancel(job.run_id)
            return km, kc

        watcher = _Watcher(job, progress) if progress is not None else None
        try:
            result = paramill.run(
                job.path,
                job.output_path,
                job.parameters,
                cwd=os.path.dirname(job.path),
                strict=True,
                secrets=job.secrets or None,
                run_timeout=job.timeout,
                handle_signals=False,
                progress_bar=False,
                storage_options=job.storage_options,
                kernel_starter=starter,
            )
        except ParamillError as exc:
            return Outcome("failed", _error(exc), {})
        finally:
            if watcher is not None:
                watcher.stop()
            with self._lock:
                self._kernels.pop(job.run_id, None)
                cancelled = job.run_id in self._cancelled
                self._cancelled.discard(job.run_id)
        records = _records(result.notebook)
        cells = [c for c in result.notebook.cells if c.cell_type == "code"]
        done = sum(1 for c in cells if c.metadata.get("papermill", {}).get("status") == "completed")
        if result.error is None:
            return Outcome("completed", None, records, len(cells), done)
        status = "cancelled" if cancelled else "failed"
        error = _error(result.error)
        if cancelled:
            error["ename"], error["evalue"] = "RunCancelledError", "cancelled"
        return Outcome(status, error, records, len(cells), done)


def _error(exc: Any) -> dict[str, Any]:
    from ..errors import strip_color

    return {
        "cell_index": getattr(exc, "cell_index", None),
        "ename": getattr(exc, "ename", None) or type(exc).__name__,
        "evalue": strip_color(str(getattr(exc, "evalue", None) or getattr(exc, "message", exc))),
    }


def _records(nb: Any) -> dict[str, Any]:
    from ..records import find_records

    out = {}
    for name, rec in find_records(nb).items():
        value = rec.as_json()
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = repr(value)
        out[name] = value
    return out


class _Watcher:
    """Reads the autosaved output notebook of a run that lasts, for progress (interim)."""

    def __init__(self, job: Job, progress: Progress) -> None:
        self.job, self.progress = job, progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="serve-progress")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        if self._stop.wait(PROGRESS_AFTER):
            return
        seen = None
        while not self._stop.is_set():
            try:
                with open(self.job.output_path, encoding="utf-8") as f:
                    nb = json.load(f)
            except (OSError, ValueError):
                nb = None
            if nb is not None:
                state = _progress_of(nb)
                key = (state["cells_done"], len(state["output"]))
                if key != seen:
                    seen = key
                    with contextlib.suppress(Exception):
                        self.progress(self.job.run_id, state)
            self._stop.wait(PROGRESS_EVERY)


def _progress_of(nb: dict) -> dict[str, Any]:
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    done = sum(1 for c in cells if c.get("metadata", {}).get("papermill", {}).get("status")
               == "completed")
    text = []
    for cell in cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text.append("".join(out.get("text", "")))
    return {"cells_done": done, "cells_total": len(cells), "output": "".join(text)[-4000:]}


def now() -> float:
    return time.time()
