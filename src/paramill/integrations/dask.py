"""Sweeps on a Dask cluster: each run is a task; each worker process keeps a warm kernel pool.

The pool lives in a worker plugin, so it is created when the sweep registers the plugin and
closed (its unused kernels stopped) when the sweep unregisters it, or when the worker closes.
Paths are made absolute in the driver, since workers may run in another directory.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..errors import MissingDependencyError
from ..sweeps import RunSpec, SweepEvents, SweepRun, execute_one

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

    def __init__(self, name: str, size: int, preload: Sequence[str], start_timeout: float):
        self.name = name
        self.size = size
        self.preload = list(preload)
        self.start_timeout = start_timeout
        self.pool: Any = None

    def setup(self, worker: Any) -> None:
        from ..kernel.pool import KernelPool

        self.pool = KernelPool(self.size, preload=self.preload, start_timeout=self.start_timeout)

    def teardown(self, worker: Any) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def _local(path: Any) -> Any:
    if isinstance(path, str) and path != "-" and "://" not in path and not path.startswith("{"):
        return os.path.abspath(path)
    return path


def _task(spec: RunSpec, run_options: Mapping[str, Any], plugin: str | None, keep: bool):
    starter = None
    if plugin:
        from distributed import get_worker

        pool_plugin = get_worker().plugins.get(plugin)
        pool = getattr(pool_plugin, "pool", None)
        starter = pool
    return execute_one(spec, run_options, kernel_starter=starter, keep_notebook=keep)


def run_on_dask(
    specs: Sequence[RunSpec],
    run_options: Mapping[str, Any],
    *,
    client: Any = None,
    scheduler: str | None = None,
    fail_fast: bool = False,
    preload: Sequence[str] = (),
    warm: bool = True,
    keep_notebooks: bool = False,
    events: SweepEvents | None = None,
) -> list[SweepRun]:
    """Submit every run to the cluster and collect them in grid order."""
    distributed = _distributed()
    events = events or SweepEvents()
    owned = None
    if client is None:
        owned = client = (
            distributed.Client(scheduler) if scheduler else distributed.Client(processes=True)
        )
    options = dict(run_options)
    if options.get("cwd") is not None:
        options["cwd"] = os.path.abspath(os.fspath(options["cwd"]))
    specs = [
        replace(s, input_path=_local(s.input_path), output_path=_local(s.output_path))
        for s in specs
    ]
    token = uuid.uuid4().hex[:8]
    plugin = None
    engine = options.get("engine_name")
    try:
        if warm and engine in (None, "", "nbclient"):
            threads = max(client.nthreads().values() or [1])
            plugin = f"{PLUGIN_PREFIX}-{token}"
            client.register_plugin(
                KernelPoolPlugin(plugin, threads, preload, options.get("start_timeout", 60)),
                name=plugin,
            )
        futures = {}
        for spec in specs:
            future = client.submit(
                _task,
                spec,
                options,
                plugin,
                keep_notebooks,
                key=f"paramill-run-{token}-{spec.index}",
                pure=False,
            )
            futures[future] = spec
            events.started(spec)  # queued on the cluster; Dask decides when it starts
        results: dict[int, SweepRun] = {}
        stopped = False
        for future in distributed.as_completed(list(futures)):
            spec = futures[future]
            if future.cancelled():
                results[spec.index] = SweepRun(
                    spec.index, spec.grid, spec.parameters, spec.output_path, "skipped"
                )
                continue
            outcome = future.result()
            results[spec.index] = outcome
            events.finished(outcome)
            if fail_fast and not outcome.ok and not stopped:
                stopped = True
                client.cancel([f for f in futures if not f.done()])
        return [
            results.get(s.index)
            or SweepRun(s.index, s.grid, s.parameters, s.output_path, "skipped")
            for s in specs
        ]
    finally:
        if plugin is not None:
            try:
                client.unregister_worker_plugin(plugin)
            except Exception:  # the cluster may be gone; its workers' exit stops the kernels
                pass
        if owned is not None:
            owned.close()
