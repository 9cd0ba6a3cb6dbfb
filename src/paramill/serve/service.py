"""Workers that take queued runs from the store and execute them, and the events they send.

``workers`` threads each claim the oldest queued run (store.claim: never the same run twice,
even across server processes sharing PostgreSQL) and execute it through the runner. A
submission here wakes a worker at once; runs queued by another server process (or left queued
by a previous start) are found by a poll every ``POLL`` seconds.

Events (status changes, progress) go to in-process subscribers: the ``wait=`` of POST
/api/runs and the server-sent events of /api/runs/<id>/events. A subscriber also re-reads the
store every ``POLL`` seconds, for runs another process executes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

from .notebooks import Catalog
from .runner import Job, Runner, notebook_imports
from .store import FINAL, Run, Store, as_json

logger = logging.getLogger("paramill.serve")

POLL = 1.0
PROGRESS_EVERY = 0.5


class QueueFull(Exception):
    pass


class Broker:
    def __init__(self) -> None:
        # run id -> (loop, queue, whether it wants progress events or status changes only)
        self._subs: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Queue, bool]]] = {}
        self._lock = threading.Lock()

    def subscribe(self, run_id: str, progress: bool = True) -> asyncio.Queue:
        """Events of ``run_id`` from now on; with ``progress=False`` only status changes (a
        waiting request is not woken for every cell)."""
        queue: asyncio.Queue = asyncio.Queue()
        with self._lock:
            self._subs.setdefault(run_id, []).append((asyncio.get_running_loop(), queue, progress))
        return queue

    def unsubscribe(self, run_id: str, queue: asyncio.Queue) -> None:
        with self._lock:
            subs = [s for s in self._subs.get(run_id, []) if s[1] is not queue]
            if subs:
                self._subs[run_id] = subs
            else:
                self._subs.pop(run_id, None)

    def publish(self, run_id: str, event: dict[str, Any]) -> None:
        with self._lock:
            subs = list(self._subs.get(run_id, []))
        status = event.get("event") == "status"
        for loop, queue, progress in subs:
            if not (status or progress):
                continue
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:  # loop closed
                pass


class Service:
    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        *,
        workers: int = 2,
        output_dir: str,
        secrets: dict[str, str] | None = None,
        timeout: float = 3600,
        queue_limit: int = 1000,
        storage_options: dict[str, Any] | None = None,
        fork_server: bool = True,
        stop_timeout: float = 10,
        executor: str = "local",
        scheduler: str | None = None,
    ) -> None:
        self.catalog, self.store = catalog, store
        self.workers = max(1, workers)
        self.output_dir = output_dir.rstrip("/")
        self.secrets = secrets or {}
        self.timeout = timeout
        self.queue_limit = queue_limit
        self.storage_options = storage_options
        self.stop_timeout = stop_timeout
        self.broker = Broker()
        preload: dict[str, None] = {}
        for served in catalog.all():
            if served.nb is not None:
                preload.update(dict.fromkeys(notebook_imports(served.nb)))
        if executor == "dask":
            from .dask_runner import DaskRunner

            self.runner: Any = DaskRunner(scheduler, preload=list(preload))
        else:
            self.runner = Runner(self.workers, fork_server=fork_server, preload=list(preload))
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: set[str] = set()
        self._saved_progress: dict[str, float] = {}
        self.latest: dict[str, dict[str, Any]] = {}  # run id -> its last progress (running here)
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        stale = self.store.mark_stale()
        if stale:
            logger.warning("%d run(s) left running by a stopped server marked failed", stale)
        import nbclient  # noqa: F401  (imported before the threads: no half-imported module)

        from .. import engine  # noqa: F401

        for served in self.catalog.all():
            if served.nb is not None:
                self.runner.warm(served.path, served.nb, self.secrets_for(served))
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"serve-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        threading.Thread(target=self._watch_cancels, name="serve-cancels", daemon=True).start()

    def stop(self) -> None:
        """Take no new run; let running ones finish within ``stop_timeout``, then cancel them.
        Queued runs stay queued: the next start runs them."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        deadline = time.monotonic() + self.stop_timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = list(self._running)
        for run_id in left:
            logger.warning("run %s cancelled: the server is stopping", run_id)
            self.runner.cancel(run_id)
        for thread in self._threads:
            thread.join(30)
        self.runner.close()

    # -- runs ----------------------------------------------------------------------------------
    def secrets_for(self, served: Any) -> dict[str, str]:
        """Secrets reach only notebooks that declare them."""
        return {name: self.secrets[name] for name in served.secrets if name in self.secrets}

    def submit(self, notebook: str, parameters: dict, who: str,
               run_id: str | None = None) -> Run:
        if self._stopping.is_set():
            raise QueueFull("the server is stopping")
        if self.store.queued_count() >= self.queue_limit:
            raise QueueFull(f"{self.queue_limit} runs are queued already")
        run = self.store.submit(notebook, parameters, who, run_id)
        with self._wake:
            self._wake.notify()
        return run

    def cancel(self, run_id: str) -> str | None:
        status = self.store.cancel(run_id)
        if status == "cancelled":
            self.broker.publish(run_id, {"event": "status", "status": "cancelled"})
        elif status == "running":
            self.runner.cancel(run_id)  # no-op when another server runs it: it polls
        return status

    def output_path(self, run_id: str) -> str:
        return f"{self.output_dir}/{run_id}.ipynb"

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                run = self.store.claim(self.output_path)
            except Exception:
                logger.exception("claiming a run")
                run = None
            if run is None:
                with self._wake:
                    self._wake.wait(POLL)
                continue
            with self._lock:
                self._running.add(run.id)
            try:
                self._execute(run)
            except Exception as exc:  # never leave a run "running"
                logger.exception("run %s", run.id)
                self.store.finish(run.id, "failed", error={
                    "cell_index": None, "ename": type(exc).__name__, "evalue": str(exc)})
                self.broker.publish(run.id, {"event": "status", "status": "failed"})
            finally:
                with self._lock:
                    self._running.discard(run.id)

    def _execute(self, run: Run) -> None:
        self.broker.publish(run.id, {"event": "status", "status": "running"})
        served = self.catalog.get(run.notebook)
        if served is None or served.nb is None:
            self.store.finish(run.id, "failed", error={
                "cell_index": None, "ename": "NotFound",
                "evalue": f"notebook {run.notebook!r} is no longer served"})
            self.broker.publish(run.id, {"event": "status", "status": "failed"})
            return
        output = run.output or self.output_path(run.id)
        code_cells = sum(1 for c in served.nb.cells if c.cell_type == "code")
        injected = bool(served.declared and (run.parameters or self.secrets_for(served)))
        job = Job(
            run_id=run.id,
            path=served.path,
            parameters=run.parameters or {},
            output_path=output,
            timeout=served.timeout or self.timeout,
            secrets=self.secrets_for(served),
            storage_options=self.storage_options,
            cells_total=code_cells + injected,
        )
        self._saved_progress[run.id] = time.monotonic()  # the first save after PROGRESS_EVERY
        try:
            outcome = self.runner.execute(job, self._progress)
        finally:
            self._saved_progress.pop(run.id, None)
            self.latest.pop(run.id, None)
        final = self.store.finish(
            run.id,
            outcome.status,
            error=outcome.error,
            records=outcome.records,
            cells_total=outcome.cells_total,
            cells_done=outcome.cells_done,
        )
        event: dict[str, Any] = {"event": "status", "status": outcome.status}
        if final is not None:  # a waiting request answers with it, without reading it again
            event["run"] = as_json(final)
        self.broker.publish(run.id, event)

    def _progress(self, run_id: str, state: dict[str, Any]) -> None:
        """To subscribers at once; to the store (for other processes, page loads) at most every
        PROGRESS_EVERY seconds, so short runs write nothing extra."""
        self.latest[run_id] = state  # a page opened later starts from here
        self.broker.publish(run_id, {"event": "progress", **state})
        now = time.monotonic()
        if now - self._saved_progress.get(run_id, now) >= PROGRESS_EVERY:
            self._saved_progress[run_id] = now
            self.store.update(run_id, cells_done=state["cells_done"],
                              cells_total=state["cells_total"])

    def _watch_cancels(self) -> None:
        """Cancels asked through another server process reach the run here."""
        while not self._stopping.wait(POLL):
            with self._lock:
                running = list(self._running)
            try:
                for run_id in self.store.cancel_requested(running):
                    self.runner.cancel(run_id)
            except Exception:
                logger.debug("checking cancels", exc_info=True)

    # -- waiting -------------------------------------------------------------------------------
    async def wait_final(self, run_id: str, timeout: float,
                         queue: asyncio.Queue | None = None) -> dict[str, Any] | None:
        """The run (as JSON) once it ended, or as it is when ``timeout`` runs out. ``queue``:
        a subscription taken before the run was submitted (then no event can be missed)."""
        own = queue is None
        queue = queue or self.broker.subscribe(run_id, progress=False)
        try:
            deadline = time.monotonic() + timeout
            check = own  # a subscription taken after submitting may have missed the end
            while True:
                if check:
                    run = await asyncio.to_thread(self.store.get, run_id)
                    if run is None or run.status in FINAL or time.monotonic() >= deadline:
                        return as_json(run) if run else None
                check = True
                left = deadline - time.monotonic()
                try:
                    while True:
                        event = await asyncio.wait_for(queue.get(), max(0.0, min(left, POLL)))
                        if event.get("event") == "status" and event["status"] in FINAL:
                            if "run" in event:
                                return event["run"]
                            break
                except asyncio.TimeoutError:
                    pass
        finally:
            self.broker.unsubscribe(run_id, queue)


def default_output_dir(root: str) -> str:
    return os.path.join(root, ".paramill", "runs")
