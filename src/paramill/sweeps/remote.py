"""Sweeps on kernels elsewhere: each run on its own gateway kernel, started ahead of use like
the local pool (``GatewayPool``), or every run on one existing kernel, one at a time.
``run_on_remote_kernels`` is what the sweep's local executor calls for them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..kernel.gateway import GatewayKernel, GatewaySource, _in_thread, _kernel_record
from ..kernel.source import Kernel, KernelSource

if TYPE_CHECKING:
    from ..kernel.gateway_client import GatewayKernelClient

logger = logging.getLogger("paramill")


class GatewayPool(KernelSource):
    """Gateway kernels started ahead of the runs that take them (like the local pool): up to
    ``size`` starting or ready at once, ``limit`` in all. Each is handed out once and deleted
    by the run that took it; ``close`` deletes those never handed out."""

    def __init__(
        self,
        source: GatewaySource,
        kernel_name: str | None,
        env: Mapping[str, str] | None,
        size: int,
        limit: int,
    ) -> None:
        import collections
        import concurrent.futures
        import threading

        self.source = source
        self.key = (kernel_name, dict(env or {}))
        self.limit = limit
        self._lock = threading.Lock()
        self._queue: collections.deque = collections.deque()
        self._started = 0
        self._closed = False
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max(1, size), thread_name_prefix="paramill-gateway"
        )
        self._handed: list[GatewayKernel] = []  # for kill_all
        if kernel_name:
            for _ in range(min(size, limit)):
                self._start_one()

    def _start_one(self) -> None:
        # called with the lock held, or before other threads see the pool
        if self._closed or self._started >= self.limit:
            return
        self._started += 1
        name, env = self.key
        self._queue.append(self._threads.submit(self.source.start, name, env))

    def _take(self, kernel_name: str, env: Mapping[str, str] | None) -> Any:
        with self._lock:
            if (kernel_name, dict(env or {})) != self.key or not self._queue:
                return None
            future = self._queue.popleft()
            self._start_one()
            return future

    async def starter(
        self,
        kernel_name: str,
        *,
        cwd: Any = None,
        startup_timeout: float = 60,
        env: Mapping[str, str] | None = None,
    ) -> tuple[GatewayKernel, GatewayKernelClient]:
        future = self._take(kernel_name, env)
        if future is None:
            km, kc = await self.source.starter(
                kernel_name, cwd=cwd, startup_timeout=startup_timeout, env=env
            )
        else:
            try:
                km = await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                future.add_done_callback(_delete_started)
                raise
            try:
                kc = await km.connect(startup_timeout)
            except BaseException:
                await _in_thread(km.delete)
                raise
        with self._lock:
            self._handed = [k for k in self._handed if not k.deleted] + [km]
        return km, kc

    async def acquire(self, request: Any) -> Kernel:
        km, kc = await self.starter(
            request.kernel_name,
            startup_timeout=request.startup_timeout,
            env=dict(request.env or {}),
        )
        return _kernel_record(km, kc, self, request)

    async def release(self, kernel: Kernel, *, grace: float = 3.0) -> None:
        await self.source.release(kernel, grace=grace)

    def kill(self, kernel: Kernel) -> None:
        self.source.kill(kernel)

    def is_running(self, kernel: Kernel) -> bool:
        return self.source.is_running(kernel)

    def kill_all(self) -> None:
        """Delete every kernel handed out and still there (Ctrl-C): their runs end at once
        (the gateway closes their channels)."""
        with self._lock:
            handed, self._handed = self._handed, []
        for km in handed:
            km.delete()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            left, self._queue = list(self._queue), type(self._queue)()
        for future in left:
            future.add_done_callback(_delete_started)
        self._threads.shutdown(wait=True)

    def __enter__(self) -> GatewayPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _delete_started(future: Any) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().delete()


class RemoteSweepKernels:
    """What a sweep's local executor uses for kernels elsewhere: on a gateway, each run gets
    its own kernel from a ``GatewayPool`` (``workers`` at a time, started ahead unless
    ``warm`` is off); on an existing kernel (``connection_info``) runs go one at a time, since
    they share it."""

    def __init__(
        self, specs: list[Any], run_options: dict[str, Any], workers: int, warm: bool
    ) -> None:
        from ..secrets import kernel_env

        options = dict(run_options)
        gateway = options.pop("gateway", None)
        self.pool: GatewayPool | None = None
        self.workers = workers
        if gateway is None:
            from ..kernel.network import ConnectionSource

            self.starter = ConnectionSource(options.pop("connection_info"))
            if workers > 1:
                logger.info("One existing kernel: the runs go one at a time")
            self.workers = 1
        else:
            from . import first_notebook, kernel_for

            source = gateway if isinstance(gateway, GatewaySource) else GatewaySource(gateway)
            name = kernel_for(first_notebook(specs, options), options) if warm else None
            env = {
                **(options.get("kernel_env") or {}),
                **kernel_env(options.get("secrets") or {}),
            }
            self.pool = GatewayPool(
                source, name, env, size=min(2 * workers, len(specs)), limit=len(specs)
            )
            self.starter = self.pool
        self.run_options = options

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def kill_all(self) -> None:
        if self.pool is not None:
            self.pool.kill_all()


def run_on_remote_kernels(job: Any, workers: int) -> None:
    """A sweep's local executor for kernels elsewhere (``job.run_options`` has ``gateway`` or
    ``connection_info``): worker threads, each run's kernel from ``RemoteSweepKernels``."""
    from concurrent.futures import ThreadPoolExecutor

    from .executors import _wait_all

    remote = RemoteSweepKernels(job.specs, job.run_options, workers, job.warm)
    threads = ThreadPoolExecutor(remote.workers, thread_name_prefix="paramill-sweep")
    futures: list[Any] = []
    try:
        futures = [threads.submit(job.run_one, spec, remote.starter) for spec in job.specs]
        _wait_all(futures)
    except BaseException:  # Ctrl-C / SIGTERM: start nothing new, end what runs
        job.tracker.stop()
        remote.kill_all()
        for future in futures:
            future.cancel()
        raise
    finally:
        threads.shutdown(wait=True)
        remote.close()
