"""Warm kernels: a pool that starts kernels before runs ask for them.

Every run still gets a fresh kernel process (each pooled kernel is handed out once and the run
shuts it down), so nothing leaks between runs; only the start-up wait goes away.

Design: the pool owns one thread running its own asyncio loop, where kernels are started,
checked and (optionally) pre-import modules. A run's engine runs on another loop (each worker
thread has its own, through jupyter_core's ``run_sync``), so ``acquire`` crosses loops with a
concurrent future and gives the caller only the kernel *manager*; the client (zmq.asyncio
sockets, which belong to the loop that uses them) is created fresh on the caller's loop. The
manager itself holds no loop-bound state the engine uses: its process is a ``Popen`` and its
``ready`` future is recreated by each call that needs one.

Kernels are keyed by (kernel name, cwd, env): a kernel's working directory and environment are
fixed when its process starts, so each distinct key has its own queue.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import KernelError
from . import forkserver
from .lifecycle import (
    connect_client,
    is_running,
    kernel_pid,
    kill_process_group,
    run_silently,
    start_kernel,
    stop_kernel,
    wait_exit,
)
from .output import outputs
from .source import Kernel, KernelRequest, KernelSource

if TYPE_CHECKING:
    from jupyter_client import AsyncKernelClient, AsyncKernelManager

logger = logging.getLogger("paramill")

Key = tuple[str, str | None, tuple[tuple[str, str], ...]]

# Runs in the user's namespace but keeps it untouched: exec gets a throwaway globals dict, and
# silent/store_history=False leave no history, no execution count and no Out/_ entries.
_PRELOAD = """exec('''
import importlib
for __m in {modules!r}:
    try:
        importlib.import_module(__m)
    except BaseException:
        pass
''', {{}})"""


def preload_code(modules: Iterable[str]) -> str:
    return _PRELOAD.format(modules=sorted(set(modules)))


class KernelPool(KernelSource):
    """Kernels started ahead of demand, each handed out once.

    ``size``: kernels kept starting or ready per key beyond those handed out.
    ``preload``: modules imported in each kernel before it is handed out.
    ``limit``: the most kernels the pool starts ahead of demand (a sweep of N runs needs N);
    a run that finds the pool empty after that still gets a kernel, started on demand.

    A ``KernelSource``: ``paramill.run(..., kernel_source=pool)`` runs on a warm kernel. Use the
    pool as a context manager (or call ``close``): kernels not handed out are stopped, none is
    orphaned.
    """

    def __init__(
        self,
        size: int = 2,
        *,
        preload: Iterable[str] = (),
        limit: int | None = None,
        start_timeout: float = 60,
        fork_server: bool | None = None,
    ) -> None:
        self.size = max(0, int(size))
        # python kernels forked from a pre-imported server (paramill.forkserver); None: the
        # PARAMILL_FORK_SERVER environment variable decides
        self.fork_server = forkserver.enabled(fork_server)
        self._holds_servers = False
        self.preload = tuple(preload)
        self.limit = limit
        self.start_timeout = start_timeout
        self.started = 0  # kernels this pool started
        self.started_pids: list[int] = []
        self.handed_out = 0
        self.handout_seconds: deque[float] = deque(maxlen=1000)
        self._queues: dict[Key, deque[asyncio.Task]] = {}
        self._given: weakref.WeakSet = weakref.WeakSet()  # handed out, for kill_all
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._aborted = False  # kill_all was called: kernels still arriving are stopped
        self._stopping: set[asyncio.Task] = set()  # released kernels being stopped

    # -- lifecycle ------------------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise KernelError("the kernel pool is closed")
            if self._loop is None:
                # imported here, once: two threads importing jupyter_client at the same time
                # can see it half-initialized
                import jupyter_client  # noqa: F401

                if self.fork_server:
                    forkserver.hold()
                    self._holds_servers = True
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="paramill-kernel-pool", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
                atexit.register(_close_at_exit, weakref.ref(self))
            return self._loop

    def close(self, timeout: float = 30) -> None:
        """Stop every kernel not handed out and the pool's thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._drain(), loop)
        try:
            future.result(timeout)
        except (concurrent.futures.TimeoutError, Exception):
            logger.debug("closing the kernel pool", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
        if self._holds_servers:  # after the drain: the pool's kernels are stopped already
            forkserver.let_go()

    def kill_all(self) -> None:
        """Kill every kernel this pool handed out that is still running (aborting a sweep).

        Their runs end as "kernel died"; the runs' own cleanup then removes their files.
        """
        self._aborted = True
        for km in list(self._given):
            if is_running(km):
                kill_process_group(kernel_pid(km))

    async def _drain(self) -> None:
        if self._stopping:  # released kernels finish stopping first
            await asyncio.wait(set(self._stopping))
        tasks = [task for queue in self._queues.values() for task in queue]
        self._queues.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                km = await task
            except BaseException:  # cancelled or failed: start_kernel cleaned up already
                continue
            await stop_kernel(km, None, grace=0)

    # -- filling --------------------------------------------------------------------------------
    @staticmethod
    def key(kernel_name: str, cwd: Any = None, env: Mapping[str, str] | None = None) -> Key:
        return KernelRequest(kernel_name, cwd=cwd, env=dict(env or {})).key

    def warm(
        self, kernel_name: str, *, cwd: Any = None, env: Mapping[str, str] | None = None
    ) -> None:
        """Start filling the pool for this kernel now, before the first ``acquire``."""
        loop = self._ensure_loop()
        loop.call_soon_threadsafe(self._top_up, self.key(kernel_name, cwd, env))

    def _top_up(self, key: Key) -> None:
        queue = self._queues.setdefault(key, deque())
        while len(queue) < self.size and (self.limit is None or self.started < self.limit):
            queue.append(self._spawn(key))

    def _spawn(self, key: Key) -> asyncio.Task:
        assert self._loop is not None
        self.started += 1
        return self._loop.create_task(self._start(key))

    async def _start(self, key: Key) -> AsyncKernelManager:
        kernel_name, cwd, env = key
        provisioner = None
        if self.fork_server:
            # the server imports them, once
            provisioner = forkserver.provisioner_stanza(self.preload)
        # its output pipes are read on this loop (output.KernelOutput)
        km, kc = await start_kernel(
            kernel_name,
            cwd=cwd,
            startup_timeout=self.start_timeout,
            env=dict(env) or None,
            provisioner=provisioner,
        )
        pid = kernel_pid(km)
        if pid:
            self.started_pids.append(pid)
        try:
            if self.preload:  # for a forked kernel, only what the fork server did not import
                await self._preload(kc)
        except BaseException:
            await stop_kernel(km, kc, grace=0)
            raise
        finally:
            kc.stop_channels()
        return km

    async def _preload(self, kc: AsyncKernelClient) -> None:
        reply = await run_silently(kc, preload_code(self.preload), self.start_timeout)
        if reply is None:
            logger.warning(
                "preloading %s took over %g s", ", ".join(self.preload), self.start_timeout
            )
        elif reply.get("status") != "ok":
            logger.debug("preload failed: %s", reply)

    # -- handing out ----------------------------------------------------------------------------
    async def acquire(self, request: KernelRequest) -> Kernel:
        """A started kernel (client on the caller's loop); ``release`` stops it."""
        began = time.monotonic()
        loop = self._ensure_loop()
        handoff: concurrent.futures.Future = concurrent.futures.Future()
        key = request.key
        loop.call_soon_threadsafe(lambda: loop.create_task(self._serve(key, handoff)))
        try:
            # shielded: a run cancelled while waiting must not cancel the pool's own work; a
            # kernel that arrives after that is stopped by _unclaimed instead of orphaned
            km = await asyncio.shield(asyncio.wrap_future(handoff))
        except asyncio.CancelledError:
            handoff.add_done_callback(self._unclaimed)
            raise
        self._given.add(km)
        if km in outputs:  # what its process writes is logged as this run's from now on
            outputs[km].context = contextvars.copy_context()
        try:
            if self._aborted:
                raise KernelError("the kernel pool was stopped (the sweep is being cancelled)")
            kc = await connect_client(km, request.startup_timeout)
        except BaseException:
            await stop_kernel(km, None, grace=0)
            raise
        self.handed_out += 1
        self.handout_seconds.append(time.monotonic() - began)
        return self._kernel(km, kc, request)

    async def release(self, kernel: Kernel, *, grace: float = 3.0) -> None:
        """Ask the kernel to shut down and let the pool's thread wait for it (and kill what is
        left) in the background: the run is done at once."""
        km, kc = kernel.manager, kernel.client
        with contextlib.suppress(Exception):
            if grace > 0 and is_running(km):
                kc.shutdown()
            kc.stop_channels()
        loop = self._loop
        try:
            if loop is None or self._closed:
                raise RuntimeError("the pool's loop is gone")
            loop.call_soon_threadsafe(self._stop_later, km, grace)
        except RuntimeError:  # closed meanwhile: stop it here
            await stop_kernel(km, None, grace=0)

    def _stop_later(self, km: AsyncKernelManager, grace: float) -> None:
        async def stop() -> None:
            await wait_exit(km, grace)
            await stop_kernel(km, None, grace=0)

        task = asyncio.ensure_future(stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _unclaimed(self, handoff: concurrent.futures.Future) -> None:
        if handoff.cancelled() or handoff.exception() is not None or self._loop is None:
            return
        km = handoff.result()
        with contextlib.suppress(RuntimeError):  # loop closed: the kernel was killed at close
            asyncio.run_coroutine_threadsafe(stop_kernel(km, None, grace=0), self._loop)

    async def _serve(self, key: Key, handoff: concurrent.futures.Future) -> None:
        try:
            while True:
                queue = self._queues.setdefault(key, deque())
                task = queue.popleft() if queue else self._spawn(key)
                self._top_up(key)
                km = await task
                if is_running(km):
                    handoff.set_result(km)
                    return
                await stop_kernel(km, None, grace=0)  # died while waiting: take another
        except BaseException as exc:
            if not handoff.done():
                handoff.set_exception(exc)
            if not isinstance(exc, Exception):
                raise


def _close_at_exit(ref: weakref.ref) -> None:
    pool = ref()
    if pool is not None:
        pool.close(timeout=10)
