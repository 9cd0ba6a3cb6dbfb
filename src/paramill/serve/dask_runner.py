"""``--executor dask``: runs execute on a Dask cluster instead of this server's own workers.

Same interface as ``runner.Runner`` (``warm``, ``execute``, ``cancel``, ``close``). Each run is
one task; on the worker it goes through a ``Runner`` kept per worker process (a warm kernel
pool there, as in this server). Dask cannot interrupt a running task, so a cancel is sent
through a ``distributed.Event`` named after the run: the task watches it and stops the run's
kernel on its worker. Progress is not streamed from the cluster (status only).
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import MissingDependencyError
from .runner import Job, Outcome, Progress, Runner

_worker_runner: Runner | None = None
_worker_lock = threading.Lock()


def _event_name(run_id: str) -> str:
    return f"paramill-serve-cancel-{run_id}"


def _task(job: Job, threads: int, preload: list[str]) -> Outcome:
    """Runs on a Dask worker."""
    global _worker_runner
    import distributed

    with _worker_lock:
        if _worker_runner is None:
            _worker_runner = Runner(threads, preload=preload)
        runner = _worker_runner
    # the run goes on in a thread of its own; this task's thread (where the worker's client
    # answers) watches for a cancel
    cancel = distributed.Event(_event_name(job.run_id))
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(runner.execute(job))
        except BaseException as exc:  # raised again in the task: Dask reports it
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True, name="serve-dask-run")
    thread.start()
    while thread.is_alive():
        try:
            if cancel.wait(timeout=0.5):
                runner.cancel(job.run_id)
                break
        except Exception:  # the scheduler went away: the run goes on
            thread.join(0.5)
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


class DaskRunner:
    def __init__(self, scheduler: str | None, *, preload: list[str] = ()) -> None:
        try:
            import distributed
        except ImportError:
            raise MissingDependencyError(
                "--executor dask needs dask.distributed: pip install 'paramill[dask]'"
            ) from None
        self.distributed = distributed
        self.client = distributed.Client(scheduler) if scheduler else distributed.Client(
            processes=True)
        self.preload = list(preload)
        self._futures: dict[str, Any] = {}
        self._lock = threading.Lock()

    def warm(self, path: str, nb: Any, secrets: dict[str, str]) -> None:
        pass  # worker pools fill on their first run

    def execute(self, job: Job, progress: Progress | None = None) -> Outcome:
        threads = max(self.client.nthreads().values() or [1])
        future = self.client.submit(_task, job, threads, self.preload,
                                    key=f"paramill-serve-{job.run_id}", pure=False)
        with self._lock:
            self._futures[job.run_id] = future
        try:
            return future.result()
        except Exception as exc:  # the task itself failed (worker lost, ...)
            return Outcome("failed", {"cell_index": None, "ename": type(exc).__name__,
                                      "evalue": str(exc)}, {})
        finally:
            with self._lock:
                self._futures.pop(job.run_id, None)

    def cancel(self, run_id: str) -> bool:
        with self._lock:
            future = self._futures.get(run_id)
        if future is None:
            return False
        self.distributed.Event(_event_name(run_id), client=self.client).set()
        return True

    def close(self) -> None:
        self.client.close()
