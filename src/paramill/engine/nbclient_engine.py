"""The default engine (papermill's ``nbclient`` engine): runs a notebook's cells on a kernel it
gets from a kernel source, with papermill's per-cell metadata, coalesced saves, output
streaming and one stop mechanism for everything that ends a run early."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from ..errors import (
    CellTimeoutError,
    ExecutionError,
    OutputError,
    RunCancelledError,
    RunTimeoutError,
)
from ..kernel.lifecycle import run_silently, shell_reply
from ..kernel.local import LocalKernelSource
from ..kernel.source import Kernel, KernelRequest, KernelSource
from ..signals import NAMES, SignalGuard
from . import cells
from .autosave import Autosaver
from .client import error_output, late_output_grace_for, make_client_class
from .stop import Stop, drain_loop, watch_heartbeat
from .streams import OutputRouter, notify, progress_bar

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from .._run.cancel import CancelToken

logger = logging.getLogger("paramill")


class NBClientEngine:
    """Runs every cell of a notebook in place (``execute``)."""

    def __init__(
        self,
        *,
        kernel_name: str,
        saver: Autosaver,
        cwd: str | None = None,
        start_timeout: float = 60,
        execution_timeout: float | None = None,
        run_timeout: float | None = None,
        kernel_liveness_timeout: float = 10.0,
        log_output: bool = False,
        stdout_file: IO[str] | None = None,
        stderr_file: IO[str] | None = None,
        progress_bar: bool | dict = False,
        handle_signals: bool = True,
        kernel_env: dict[str, str] | None = None,
        autosave_outputs: bool = True,
        failure_check: Callable[[NotebookNode], tuple[str, str] | None] | None = None,
        setup_code: str | None = None,
        kernel_source: KernelSource | None = None,
        signals: SignalGuard | None = None,
        events: Any = None,
        cancel: CancelToken | None = None,
        late_output_grace: float | None = None,
        **nbclient_kwargs: Any,
    ) -> None:
        self.request = KernelRequest(
            kernel_name, cwd=cwd, env=dict(kernel_env or {}), startup_timeout=start_timeout
        )
        self.saver = saver
        self.execution_timeout = execution_timeout or None
        self.run_timeout = run_timeout or None
        self.kernel_liveness_timeout = kernel_liveness_timeout
        self.log_output = log_output
        self.progress_bar = progress_bar
        self.outputs = OutputRouter(
            saver=saver,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
            log_output=log_output,
            kernel_env=kernel_env,
            autosave_outputs=autosave_outputs,
            events=events,
        )
        # kernels that report failure without an error reply (Octave prints "error: ...")
        self.failure_check = failure_check
        # run silently before the first cell (the Bash ERR trap that failure_check relies on)
        self.setup_code = setup_code
        self.kernel_source = kernel_source or LocalKernelSource()
        self.signals = signals or SignalGuard(handle_signals)
        self.events = events
        self.cancel = cancel
        self.late_output_grace = late_output_grace_for(kernel_name, late_output_grace)
        self.nbclient_kwargs = nbclient_kwargs
        self.kernel_pid: int | None = None
        self._kernel: Kernel | None = None
        self._current: tuple[int, Any] | None = None  # the cell running now

    @property
    def kernel_name(self) -> str:
        return self.request.kernel_name

    def execute(self, nb: NotebookNode) -> ExecutionError | None:
        """Run every cell of ``nb`` in place; return the error that ended the run early, if any.

        Cell exceptions are left in the notebook for the caller's scan (they are not returned).
        """
        from jupyter_core.utils import run_sync

        try:
            with self.signals:
                return run_sync(self._execute)(nb)
        except BaseException:
            # an exception from outside (a scheduler's SIGTERM handler raising in this thread)
            # broke the event loop before the engine could clean up: no orphan kernel, and no
            # half-run tasks left in this thread's loop to wake up in (and cancel) the next run
            if self._kernel is not None:
                self.kernel_source.kill(self._kernel)
            drain_loop()
            raise

    async def _execute(self, nb: NotebookNode) -> ExecutionError | None:
        task = asyncio.current_task()
        assert task is not None
        tasks_before = asyncio.all_tasks()
        stop = Stop(task)
        self.saver.on_error = lambda exc: stop(
            OutputError, f"the output could not be saved: {exc.message}"
        )
        cells.reset(nb)
        started = time.monotonic()
        self.saver.flush(nb)
        disarm = self._arm(asyncio.get_running_loop(), stop)
        bar = progress_bar(nb, self.progress_bar)
        error: ExecutionError | None = None
        try:
            error = await self._run(nb, stop, bar)
        except asyncio.CancelledError:  # stopped while the kernel was starting or between cells
            index, cell = self._current if self._current else (None, {})
            if self._current:
                cells.fail_cell(nb, cell)
                cells.finish_cell(cell)
            error = stop.error_for(cell, index)
        finally:
            stop.closing = True
            disarm()
            self.outputs.close()
            if bar is not None:
                bar.render_finish()
            if self._kernel is not None:
                await self.kernel_source.release(self._kernel, grace=0 if error else 3.0)
                self._kernel = None
            for leftover in asyncio.all_tasks() - tasks_before - {task}:
                leftover.cancel()
            cells.finish_notebook(nb, started)
            self.saver.cancel()
        if error is not None:
            cells.add_error_output(nb, error)
        return error

    def _arm(self, loop: asyncio.AbstractEventLoop, stop: Stop) -> Callable[[], None]:
        """What may stop the run from outside: a signal, the run timeout, the cancel token.
        Returns the function that disarms them."""
        undo = [
            self.signals.on_loop(
                loop, lambda sig: stop(RunCancelledError, NAMES[sig], signal_number=int(sig))
            )
        ]
        if self.run_timeout:
            late = f"the run exceeded {self.run_timeout:g} s (--timeout)"
            timer = loop.call_later(self.run_timeout, lambda: stop(RunTimeoutError, late))
            undo.append(timer.cancel)
        cancelled = "cancelled (CancelToken)"
        if self.cancel is not None and self.cancel.cancelled:
            stop.preempt(RunCancelledError, cancelled)
        elif self.cancel is not None:
            undo.append(
                self.cancel.subscribe(
                    lambda: loop.call_soon_threadsafe(stop, RunCancelledError, cancelled)
                )
            )

        def disarm() -> None:
            for step in reversed(undo):
                step()

        return disarm

    async def _run(self, nb: NotebookNode, stop: Stop, bar: Any) -> ExecutionError | None:
        if stop.preempted:  # cancelled before it started: no kernel (the task is not cancelled)
            raise asyncio.CancelledError
        self._kernel = kernel = await self.kernel_source.acquire(self.request)
        self.kernel_pid = kernel.pid
        logger.info("Executing notebook with kernel: %s", self.kernel_name)
        client = make_client_class()(
            nb,
            km=kernel.manager,
            on_output=lambda out: self.outputs(out, nb),
            late_grace=self.late_output_grace,
            timeout=self.execution_timeout,
            startup_timeout=self.request.startup_timeout,
            kernel_name=self.kernel_name,
            raise_on_iopub_timeout=True,
            **self.nbclient_kwargs,
        )
        client.kc = kernel.client
        watchdog = asyncio.ensure_future(
            watch_heartbeat(kernel.client, kernel.pid, self.kernel_liveness_timeout, stop)
        )
        try:
            if self.setup_code:
                await self._run_setup(kernel.client)
            error = None
            for index, cell in enumerate(nb.cells):
                error, done = await self._run_cell(client, nb, index, cell, stop, bar)
                if done:
                    break
            if error is None and not stop.requested:
                await self._refresh_language_info(nb, kernel.client)
                client.set_widgets_metadata()
            return error
        finally:
            watchdog.cancel()

    async def _run_cell(
        self, client: Any, nb: NotebookNode, index: int, cell: Any, stop: Stop, bar: Any
    ) -> tuple[ExecutionError | None, bool]:
        """Run one cell; returns the error that ends the run, and whether the run ends here."""
        from nbclient.exceptions import CellExecutionError, DeadKernelError
        from nbclient.exceptions import CellTimeoutError as NBCellTimeout

        self._current = index, cell
        self.outputs.cell_index = index
        cells.start_cell(cell)
        notify(self.events, "cell_started", index, cell)
        if self.log_output:
            logger.info(f"Executing Cell {index + 1:-<40}")
        self.saver.request(nb)
        error, done = None, False
        try:
            await client.async_execute_cell(cell, index)
            failure = self.failure_check(cell) if self.failure_check else None
            if failure and cell.cell_type == "code":
                cells.fail_cell(nb, cell)
                cell.outputs.append(error_output(*failure))
                done = True
        except CellExecutionError as exc:
            done = True
            if not (exc.ename == "SystemExit" and exc.evalue in ("", "0")):
                cells.fail_cell(nb, cell)  # else a clean sys.exit(): stop here, not a failure
                if exc.ename and not any(o.output_type == "error" for o in cell.outputs):
                    # the reply names the error but no output does (IPython's UsageError)
                    cell.outputs.append(error_output(exc.ename, exc.evalue or ""))
        except NBCellTimeout as exc:
            cells.fail_cell(nb, cell)
            error, done = self._timeout_error(cell, index, exc), True
        except (DeadKernelError, asyncio.CancelledError):
            cells.fail_cell(nb, cell)
            error, done = stop.error_for(cell, index), True
        finally:
            cells.finish_cell(cell)
            if self.log_output:
                logger.info(f"Ending Cell {index + 1:-<43}")
            if bar is not None and cell.cell_type == "code":
                bar.update(1)
            notify(self.events, "cell_finished", index, cell)
            if not stop.requested:
                self.saver.request(nb)
        self._current = None
        return error, done

    def _timeout_error(self, cell: Any, index: int, exc: Exception) -> CellTimeoutError:
        text = str(exc).strip()
        return CellTimeoutError(
            cell_index=index,
            exec_count=cell.get("execution_count"),
            source=cell.source,
            ename="CellTimeoutError",
            evalue=text.splitlines()[0] if text else f"exceeded {self.execution_timeout} s",
            traceback=[],
        )

    async def _run_setup(self, kc: Any) -> None:
        timeout = self.request.startup_timeout
        reply = await run_silently(kc, self.setup_code or "", timeout)
        if reply is None:
            logger.warning("The kernel setup code did not finish in %g s", timeout)
        elif reply.get("status") != "ok":
            logger.warning("The kernel setup code failed: %s", reply)

    @staticmethod
    async def _refresh_language_info(nb: NotebookNode, kc: Any) -> None:
        try:
            reply = await shell_reply(kc, kc.kernel_info(), 5)
            info = reply["content"].get("language_info") if reply else None
            if info:
                nb.metadata["language_info"] = info
        except Exception:
            logger.debug("kernel_info after the run failed", exc_info=True)
