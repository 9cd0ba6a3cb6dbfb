"""The Dask executor: each run is a task; each worker process keeps a warm kernel pool.

The pool lives in a worker plugin, so it is created when the sweep registers the plugin and
closed (its unused kernels stopped) when the sweep unregisters it, or when the worker closes.
Paths are made absolute in the driver, since workers may run in another directory. Imported
only when a sweep asks for ``executor="dask"`` (through the ``paramill.executors`` entry point).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..errors import MissingDependencyError
from ..kernel import forkserver
from ..kernel.pool import KernelPool
from ..storage import is_url
from .executors import Executor, SweepJob
from .plan import RunSpec
from .run_one import SweepRun, execute_one

PLUGIN_PREFIX = "paramill-kernel-pool"

try:  # register_plugin tells worker plugins from others by their base class
    from distributed.diagnostics.plugin import WorkerPlugin as _PluginBase
except ImportError:  # reported by _distributed() when a sweep asks for Dask
    _PluginBase = object  # type: ignore[assignment,misc]


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError(
            "the dask executor needs dask.distributed: pip install 'paramill[dask]'"
        ) from None
    return distributed


class KernelPoolPlugin(_PluginBase):
    """A ``distributed`` worker plugin holding one KernelPool per worker process."""

    def __init__(
        self,
        name: str,
        size: int,
        preload: Sequence[str],
        start_timeout: float,
        fork_server: bool = True,
    ):
        self.name = name
        self.size = size
        self.preload = list(preload)
        self.start_timeout = start_timeout
        self.fork_server = fork_server  # python kernels forked from a pre-imported server
        self.pool: Any = None

    def setup(self, worker: Any) -> None:
        self.pool = KernelPool(
            self.size,
            preload=self.preload,
            start_timeout=self.start_timeout,
            fork_server=self.fork_server,
        )

    def teardown(self, worker: Any) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def _local(path: Any) -> Any:
    if isinstance(path, str) and path != "-" and not is_url(path) and not path.startswith("{"):
        return os.path.abspath(path)
    return path


def _task(spec: RunSpec, run_options: Mapping[str, Any], plugin: str | None, keep: bool):
    """One run on a Dask worker, with a kernel from that worker's pool if there is one."""
    starter = None
    if plugin:
        from distributed import get_worker

        pool = getattr(get_worker().plugins.get(plugin), "pool", None)
        starter = pool
    return execute_one(spec, run_options, kernel_source=starter, keep_notebook=keep)


class DaskExecutor(Executor):
    """Runs on a Dask cluster: ``options.client``, else a ``Client(options.scheduler)``, else
    a local cluster of processes (closed afterwards)."""

    def run(self, job: SweepJob) -> None:
        distributed = _distributed()
        client = owned = None
        if self.options.client is not None:
            client = self.options.client
        elif self.options.scheduler:
            client = owned = distributed.Client(self.options.scheduler)
        else:
            client = owned = distributed.Client(processes=True)
        token = uuid.uuid4().hex[:8]
        plugin = f"{PLUGIN_PREFIX}-{token}" if job.pooled else None
        try:
            if plugin is not None:
                threads = max(client.nthreads().values() or [1])
                start_timeout = job.run_options.get("start_timeout", 60)
                fork = forkserver.enabled(self.options.fork_server, default=True)
                pool = KernelPoolPlugin(
                    plugin, threads, job.preload_modules(), start_timeout, fork_server=fork
                )
                client.register_plugin(pool, name=plugin)
            self._submit_and_collect(distributed, client, job, plugin, token)
        finally:
            if plugin is not None:
                try:
                    client.unregister_worker_plugin(plugin)
                except Exception:  # the cluster may be gone; its workers' exit stops the kernels
                    pass
            if owned is not None:
                owned.close()

    @staticmethod
    def _submit_and_collect(
        distributed: Any, client: Any, job: SweepJob, plugin: str | None, token: str
    ) -> None:
        options = dict(job.run_options)
        if options.get("cwd") is not None:
            options["cwd"] = os.path.abspath(os.fspath(options["cwd"]))
        futures = {}
        for spec in job.specs:
            spec = replace(
                spec, input_path=_local(spec.input_path), output_path=_local(spec.output_path)
            )
            future = client.submit(
                _task,
                spec,
                options,
                plugin,
                job.keep_notebooks,
                key=f"paramill-run-{token}-{spec.index}",
                pure=False,
            )
            futures[future] = spec
            job.tracker.begin(spec)  # queued on the cluster; Dask decides when it starts
        for future in distributed.as_completed(list(futures)):
            if future.cancelled():
                continue  # fail-fast cancelled it: the tracker reports it skipped
            outcome: SweepRun = future.result()
            if job.tracker.finish(outcome):
                client.cancel([f for f in futures if not f.done()])
