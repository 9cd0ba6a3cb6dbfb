"""One stop mechanism for everything that ends a run early: per-cell timeout, whole-run timeout,
kernel death or hang, a signal, a cancel token, an unwritable output."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import ExecutionError, KernelDiedError, RunCancelledError
from ..kernel.lifecycle import stopped_or_gone


class Stop:
    """Why a run is being stopped early, and the task to interrupt. The first reason wins."""

    def __init__(self, task: asyncio.Task) -> None:
        self.task = task
        self.error_class: type[ExecutionError] | None = None
        self.reason = ""
        self.signal_number = 0
        self.closing = False  # the run is over: only cleanup remains, nothing to interrupt
        self.preempted = False  # stopped before it started, without cancelling the task

    def __call__(self, error_class: type[ExecutionError], reason: str, **kw: Any) -> None:
        if self.error_class is not None or self.closing:
            return
        self.error_class = error_class
        self.reason = reason
        self.signal_number = kw.get("signal_number", 0)
        self.task.cancel()

    def preempt(self, error_class: type[ExecutionError], reason: str) -> None:
        """Stopped before it started: the run checks ``requested`` before it gets a kernel."""
        if self.error_class is None:
            self.error_class, self.reason = error_class, reason
            self.preempted = True

    @property
    def requested(self) -> bool:
        return self.error_class is not None

    def error_for(self, cell: Any, index: int | None) -> ExecutionError:
        cls = self.error_class or KernelDiedError
        reason = self.reason or "the kernel process died"
        kwargs: dict[str, Any] = {}
        if cls is RunCancelledError:
            kwargs["signal_number"] = self.signal_number
        return cls(
            cell_index=index,
            exec_count=cell.get("execution_count"),
            source=cell.get("source", ""),
            ename=cls.__name__,
            evalue=reason,
            traceback=[],
            **kwargs,
        )


async def watch_heartbeat(kc: Any, pid: int | None, liveness_timeout: float, stop: Stop) -> None:
    """Stop the run when the kernel stops answering heartbeats and its process is stopped
    (SIGSTOP), a zombie or gone; a silent process that still runs is busy, not dead.

    Pings from this loop on a socket of the client's context, not from jupyter_client's
    heartbeat thread (one thread less per run, and that thread's socket re-creation races
    the client's teardown and prints ZMQError tracebacks)."""
    import zmq

    url = kc._make_url("hb")
    answered = time.monotonic()
    while True:
        socket = kc.context.socket(zmq.REQ)
        socket.linger = 0
        socket.connect(url)
        try:
            while True:
                await socket.send(b"ping")
                # no echo within 1 s: a REQ socket cannot ask again, so it is replaced
                if not await socket.poll(1000):
                    break
                await socket.recv()
                answered = time.monotonic()
                await asyncio.sleep(0.5)
        finally:
            socket.close(linger=0)
        if time.monotonic() - answered >= liveness_timeout and stopped_or_gone(pid):
            stop(
                KernelDiedError,
                f"the kernel stopped responding (no heartbeat for {liveness_timeout:g} s)",
            )
            return


def drain_loop() -> None:
    """Cancel what an interrupted run left in this thread's event loop and let it finish."""
    from jupyter_core.utils import ensure_event_loop

    try:
        loop = ensure_event_loop()
        if loop.is_running():
            return
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=5))
    except BaseException:  # a second interruption: give up on tidiness, not on raising
        pass
