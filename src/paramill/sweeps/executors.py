"""Executors: how a sweep's planned runs are carried out.

An ``Executor`` gets a ``SweepJob`` (the runs, their options, and a ``Tracker``) and runs
every spec through it. The tracker is the one place for what all executors share: skipping
runs after a fail-fast failure, the progress events, and collecting outcomes in grid order.
Executors are found by name in the entry point group ``paramill.executors`` (``local`` here,
``dask`` in ``paramill.sweeps.dask``); another one is one class registered there.
"""

from __future__ import annotations

import abc
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from .. import engine as _engine  # noqa: F401  (imported before the threads: see LocalExecutor)
from .._registry import is_default_engine, lookup
from ..kernel.pool import KernelPool
from ..kernel.source import KernelSource
from ..secrets import kernel_env
from .plan import RunSpec, first_notebook, kernel_for, preload_list
from .run_one import SweepRun, execute_one

ENTRY_POINT_GROUP = "paramill.executors"


class SweepEvents:
    """Receives progress; the CLI's console implements it. Called from worker threads."""

    def started(self, spec: RunSpec) -> None: ...

    def finished(self, run: SweepRun) -> None: ...


class Tracker:
    """Skipping, fail-fast, events and outcomes of one sweep, for every executor (thread-safe)."""

    def __init__(self, specs: Sequence[RunSpec], events: SweepEvents, fail_fast: bool):
        self.specs = list(specs)
        self.events = events
        self.fail_fast = fail_fast
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcomes: dict[int, SweepRun] = {}

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Start no more runs (a fail-fast failure, Ctrl-C): the rest are ``skipped``."""
        self._stop.set()

    def begin(self, spec: RunSpec) -> bool:
        """Whether ``spec`` may still start; if so it is reported as started."""
        if self.stopped:
            return False
        self.events.started(spec)
        return True

    def finish(self, outcome: SweepRun) -> bool:
        """Keep and report ``outcome``; True if it is the failure that stops a fail-fast sweep."""
        with self._lock:
            self._outcomes[outcome.index] = outcome
            stops = self.fail_fast and not outcome.ok and not self.stopped
            if stops:
                self.stop()
        self.events.finished(outcome)
        return stops

    def results(self) -> list[SweepRun]:
        """One ``SweepRun`` per spec in grid order; a run that never ran is ``skipped``."""
        with self._lock:
            return [
                self._outcomes.get(s.index) or SweepRun.planned(s, "skipped") for s in self.specs
            ]


@dataclass
class ExecutorOptions:
    """Settings that choose where runs go; each executor reads the ones it knows."""

    workers: int | None = None  # local: parallel runs (default: the number of cores)
    client: Any = None  # dask: a distributed.Client
    scheduler: str | None = None  # dask: a scheduler address (when no client)
    fork_server: bool | None = None  # local: fork python kernels from a pre-imported server


@dataclass
class SweepJob:
    """What an executor is given: the planned runs and how each one runs."""

    specs: list[RunSpec]
    run_options: dict[str, Any]
    tracker: Tracker
    warm: bool = True  # runs may use warm (pre-started) kernels
    keep_notebooks: bool = False
    preload: Any = None  # the caller's ``preload`` (see ``plan.preload_list``)

    @property
    def pooled(self) -> bool:
        """Whether runs take warm kernels: other engines may not accept a kernel source."""
        return self.warm and is_default_engine(self.run_options.get("engine_name"))

    def preload_modules(self, nb: Any = None) -> list[str]:
        """Modules each warm kernel imports ahead of its run (from the first notebook)."""
        if nb is None:
            nb = first_notebook(self.specs, self.run_options)
        return preload_list(nb, self.run_options, self.preload)

    def run_one(self, spec: RunSpec, source: KernelSource | None = None) -> None:
        """Run ``spec`` here and now unless the sweep stopped (fail-fast, Ctrl-C)."""
        if not self.tracker.begin(spec):
            return
        outcome = execute_one(
            spec, self.run_options, kernel_source=source, keep_notebook=self.keep_notebooks
        )
        self.tracker.finish(outcome)


class Executor(abc.ABC):
    """Carries out a sweep's runs; outcomes go to ``job.tracker``, never raised."""

    def __init__(self, options: ExecutorOptions):
        self.options = options

    @abc.abstractmethod
    def run(self, job: SweepJob) -> None:
        """Run every spec of ``job`` (``job.run_one`` where runs happen in this process)."""


def get_executor(name: str) -> type[Executor]:
    """The executor class registered as ``name``; an unknown name is an InputError."""
    return lookup(ENTRY_POINT_GROUP, name, "executor", builtins={"local": LocalExecutor})


class LocalExecutor(Executor):
    """Worker threads in this process sharing a warm ``KernelPool``."""

    def run(self, job: SweepJob) -> None:
        # imported before the threads start: a module half-imported by one thread fails in
        # another (nbclient is heavy, so only here; paramill.engine is imported above)
        import nbclient  # noqa: F401

        from ..kernel.forkserver import enabled  # imports jupyter_client: when a sweep runs

        workers = max(1, int(self.options.workers or os.cpu_count() or 1))
        specs, options = job.specs, job.run_options
        if options.get("gateway") is not None or options.get("connection_info") is not None:
            from .remote import run_on_remote_kernels  # kernels elsewhere

            return run_on_remote_kernels(job, workers)
        # two ready kernels per worker: with one, a worker waits for its next kernel to boot
        # (measured on 2 cores: 9 -> 12 trivial runs/s; three per worker was slower again)
        size = min(2 * workers, len(specs)) if job.pooled else 0
        nb = first_notebook(specs, options) if job.pooled else None  # its kernel and imports
        with KernelPool(
            size,
            preload=job.preload_modules(nb) if job.pooled else (),
            limit=len(specs),
            start_timeout=options.get("start_timeout", 60),
            fork_server=enabled(self.options.fork_server, default=True),
        ) as pool:
            starter = pool if job.pooled else None
            threads = ThreadPoolExecutor(workers, thread_name_prefix="paramill-sweep")
            futures: list[Future] = []
            try:
                if nb is not None:
                    _warm(pool, nb, options)
                futures = [threads.submit(job.run_one, spec, starter) for spec in specs]
                _wait_all(futures)
            except BaseException:  # Ctrl-C / SIGTERM: start nothing new, end what runs
                job.tracker.stop()
                pool.kill_all()
                for future in futures:
                    future.cancel()
                raise
            finally:
                threads.shutdown(wait=True)


def _warm(pool: KernelPool, nb: Any, run_options: Mapping[str, Any]) -> None:
    """Start the pool's kernels for the notebook's kernel, with the environment the runs ask
    for (secrets included)."""
    kernel = kernel_for(nb, run_options)
    if kernel:
        env = {
            **(run_options.get("kernel_env") or {}),
            **kernel_env(run_options.get("secrets") or {}),
        }
        pool.warm(kernel, cwd=run_options.get("cwd"), env=env)


def _wait_all(futures: list[Future]) -> None:
    pending = set(futures)
    while pending:
        # a timeout keeps the main thread responsive to Ctrl-C
        done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
        for future in done:
            future.result()  # a bug in a worker thread surfaces here
