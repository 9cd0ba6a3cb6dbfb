"""The one adapter between the server and paramill's run API.

Runs go through ``paramill.run`` with a warm ``KernelPool`` as their kernel source: python
kernels forked from a pre-imported fork server (as ``paramill sweep`` does: a hand-out in tens
of milliseconds), released without waiting for them to exit. Progress comes from the run's
events (cell finished, output) and a ``CancelToken`` per run stops it (the kernel is stopped,
the partial output saved and marked cancelled). Everything the server needs from a run passes
through this module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("paramill.serve")



@dataclass
class Job:
    run_id: str
    path: str  # the notebook file
    parameters: dict[str, Any]
    output_path: str
    timeout: float | None
    secrets: dict[str, str] = field(default_factory=dict)
    storage_options: dict[str, Any] | None = None
    cells_total: int | None = None  # code cells the run will have (for progress)


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
    def __init__(self, workers: int, *, fork_server: bool = True, start_timeout: float = 60,
                 preload: list[str] = ()) -> None:
        import paramill

        # two ready kernels per worker (sweep's measurement: one leaves a worker waiting);
        # ``preload``: modules the served notebooks import, imported once by the fork server
        self.pool = paramill.KernelPool(2 * max(1, workers), fork_server=fork_server,
                                        start_timeout=start_timeout, preload=preload)
        self._tokens: dict[str, Any] = {}  # run id -> CancelToken, while it runs
        self._cancelled: set[str] = set()  # asked before its token existed
        self._lock = threading.Lock()

    def close(self) -> None:
        self.pool.close()  # waits for kernels still shutting down

    def warm(self, path: str, nb: Any, secrets: dict[str, str]) -> None:
        """Start kernels for this notebook before its first run."""
        from ..secrets import kernel_env

        kernel = nb.metadata.get("kernelspec", {}).get("name")
        if kernel:
            self.pool.warm(kernel, cwd=os.path.dirname(path), env=kernel_env(secrets))

    def cancel(self, run_id: str) -> bool:
        """Stop a run this process is executing (the partial output is kept). False when the
        run is not running here."""
        with self._lock:
            self._cancelled.add(run_id)
            token = self._tokens.get(run_id)
        if token is None:
            return False
        token.cancel()
        return True

    def execute(self, job: Job, progress: Progress | None = None) -> Outcome:
        import paramill

        from ..errors import ParamillError

        token = paramill.CancelToken()
        with self._lock:
            self._tokens[job.run_id] = token
            if job.run_id in self._cancelled:
                token.cancel()
        events = _Events(job.run_id, progress, job.cells_total) if progress else None
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
                kernel_source=self.pool,
                events=events,
                cancel=token,
            )
        except ParamillError as exc:
            return Outcome("failed", _error(exc), {})
        finally:
            with self._lock:
                self._tokens.pop(job.run_id, None)
                self._cancelled.discard(job.run_id)
        records = _records(result.notebook)
        cells = [c for c in result.notebook.cells if c.cell_type == "code"]
        done = sum(1 for c in cells if c.metadata.get("papermill", {}).get("status") == "completed")
        if result.error is None:
            return Outcome("completed", None, records, len(cells), done)
        error = _error(result.error)
        if str(result.status) == "cancelled" or token.cancelled:
            error["ename"], error["evalue"] = "RunCancelledError", "cancelled"
            return Outcome("cancelled", error, records, len(cells), done)
        return Outcome("failed", error, records, len(cells), done)


class _Events:
    """Run events to progress: cells done, streamed output. Called from the run's thread."""

    def __init__(self, run_id: str, progress: Progress, total: int | None) -> None:
        self.run_id, self.progress, self.total = run_id, progress, total
        self.done, self.text = 0, ""

    def cell_started(self, index: int, cell: Any) -> None:
        pass

    def cell_finished(self, index: int, cell: Any) -> None:
        if cell.get("cell_type") == "code":
            self.done += 1
            self._send()

    def output(self, index: int, output: Any) -> None:
        if output.get("output_type") == "stream":
            self.text = (self.text + "".join(output.get("text", "")))[-4000:]
            self._send()

    def _send(self) -> None:
        with contextlib.suppress(Exception):
            self.progress(self.run_id, {"cells_done": self.done, "cells_total": self.total,
                                        "output": self.text})


def notebook_imports(nb: Any) -> list[str]:
    """Modules a python notebook imports (what ``paramill sweep`` preloads)."""
    language = (nb.metadata.get("kernelspec", {}).get("language")
                or nb.metadata.get("language_info", {}).get("name") or "")
    if language.lower() != "python":
        return []
    from ..sweeps.plan import template_imports

    return template_imports(nb)


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
