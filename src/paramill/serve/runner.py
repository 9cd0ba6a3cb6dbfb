"""The one adapter between the server and paramill's run API.

Runs go through ``paramill.run`` on a warm ``KernelPool`` whose python kernels are forked from
a pre-imported fork server (as ``paramill sweep`` does: a hand-out in tens of milliseconds).

With the kernel-source API (``paramill.run(..., kernel_source=, events=, cancel=)``, present
when ``paramill.CancelToken`` exists) the pool is the run's kernel source, progress comes from
the run's events (cell started/finished, output) and a ``CancelToken`` stops a run. Without it
(the interim shape): ``kernel_starter=pool.acquire``, progress read from the output notebook
paramill autosaves (only for runs still going after ``PROGRESS_AFTER`` seconds, so short runs
cost nothing), and cancelling kills the run's kernel process group (paramill then saves the
partial output and the server marks the run cancelled). Everything the server needs from a run
passes through this module.
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


def _cancel_token_class() -> Any:
    """``paramill.CancelToken`` where the kernel-source API exists, else None."""
    import paramill

    try:
        return paramill.CancelToken
    except AttributeError:
        return None


class Runner:
    def __init__(self, workers: int, *, fork_server: bool = True, start_timeout: float = 60,
                 preload: list[str] = ()) -> None:
        import paramill

        # two ready kernels per worker (sweep's measurement: one leaves a worker waiting);
        # ``preload``: modules the served notebooks import, imported once by the fork server
        self.pool = paramill.KernelPool(2 * max(1, workers), fork_server=fork_server,
                                        start_timeout=start_timeout, preload=preload)
        self.token_class = _cancel_token_class()
        self.source = quick_release(self.pool) if self.token_class is not None else None
        self._kernels: dict[str, Any] = {}  # run id -> kernel manager (interim path)
        self._tokens: dict[str, Any] = {}  # run id -> CancelToken
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        closer = getattr(self.source, "close", None)
        if closer is not None and self.source is not self.pool:
            closer()  # waits for kernels still shutting down
        self.pool.close()

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
            km = self._kernels.get(run_id)
        if token is not None:
            token.cancel()
            return True
        if km is None:
            return False
        from ..kernels import kernel_pid  # the interim path only: before kernel sources

        pid = kernel_pid(km)
        if pid:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)  # kernels run in their own session
        return True

    def execute(self, job: Job, progress: Progress | None = None) -> Outcome:
        import paramill

        from ..errors import ParamillError

        options: dict[str, Any] = {}
        watcher: _Watcher | None = None
        if self.token_class is not None:
            token = self.token_class()
            with self._lock:
                self._tokens[job.run_id] = token
                if job.run_id in self._cancelled:
                    token.cancel()
            options.update(kernel_source=self.source, cancel=token)
            if progress is not None:
                options["events"] = _Events(job.run_id, progress, job.cells_total)
        else:
            options["kernel_starter"] = self._starter(job.run_id)
            if progress is not None:
                watcher = _Watcher(job, progress)
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
                **options,
            )
        except ParamillError as exc:
            return Outcome("failed", _error(exc), {})
        finally:
            if watcher is not None:
                watcher.stop()
            with self._lock:
                self._kernels.pop(job.run_id, None)
                self._tokens.pop(job.run_id, None)
                cancelled = job.run_id in self._cancelled
                self._cancelled.discard(job.run_id)
        records = _records(result.notebook)
        cells = [c for c in result.notebook.cells if c.cell_type == "code"]
        done = sum(1 for c in cells if c.metadata.get("papermill", {}).get("status") == "completed")
        if result.error is None:
            return Outcome("completed", None, records, len(cells), done)
        cancelled = cancelled or str(result.status) == "cancelled"
        error = _error(result.error)
        if cancelled:
            error["ename"], error["evalue"] = "RunCancelledError", "cancelled"
        return Outcome("cancelled" if cancelled else "failed", error, records, len(cells), done)

    def _starter(self, run_id: str) -> Callable[..., Any]:
        """Interim: ``kernel_starter`` that notes the run's kernel, so ``cancel`` can stop it."""
        pool = self.pool

        async def starter(kernel_name: str, **kwargs: Any) -> Any:
            km, kc = await pool.acquire(kernel_name, **kwargs)
            with self._lock:
                self._kernels[run_id] = km
                cancelled = run_id in self._cancelled
            if cancelled:  # asked to stop while the kernel was on its way
                self.cancel(run_id)
            return km, kc

        return starter


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


def quick_release(pool: Any) -> Any:
    """The pool as the runs' kernel source, with ``release`` that does not wait for the kernel
    to exit: the run's kernel is asked to shut down and its channels closed on the run's loop,
    then a background thread gives it ``grace`` seconds to exit and stops what is left (process
    group, files). A run's answer then does not include the kernel's ~50 ms of shutting down.
    """
    import asyncio
    import concurrent.futures

    from ..kernel.lifecycle import is_running, stop_kernel, wait_exit
    from ..kernel.source import KernelSource

    class QuickRelease(KernelSource):
        def __init__(self) -> None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                            name="serve-kernel-reaper")
            self._thread.start()
            self._pending: set[concurrent.futures.Future] = set()
            self._lock = threading.Lock()

        def prepare(self, request: Any) -> None:
            pool.prepare(request)

        async def acquire(self, request: Any) -> Any:
            return await pool.acquire(request)

        def kill(self, kernel: Any) -> None:
            pool.kill(kernel)

        def is_running(self, kernel: Any) -> bool:
            return pool.is_running(kernel)

        async def release(self, kernel: Any, *, grace: float = 3.0) -> None:
            km, kc = kernel.manager, kernel.client
            with contextlib.suppress(Exception):
                if grace > 0 and is_running(km):
                    kc.shutdown()
            with contextlib.suppress(Exception):
                kc.stop_channels()
            future = asyncio.run_coroutine_threadsafe(self._reap(km, grace), self._loop)
            with self._lock:
                self._pending.add(future)
            future.add_done_callback(self._done)

        def _done(self, future: concurrent.futures.Future) -> None:
            with self._lock:
                self._pending.discard(future)

        @staticmethod
        async def _reap(km: Any, grace: float) -> None:
            if grace > 0:
                await wait_exit(km, grace)
            await stop_kernel(km, None, grace=0)

        def close(self) -> None:
            with self._lock:
                pending = list(self._pending)
            concurrent.futures.wait(pending, timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    return QuickRelease()


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
