"""Executing a notebook on a kernel: the only module that talks to a kernel client.

Runs on nbclient's cell execution. Around it: papermill's per-cell metadata (status, timings),
coalesced saves, log streaming, and one stop mechanism for everything that ends a run early
(per-cell timeout, whole-run timeout, kernel death or hang, SIGINT/SIGTERM), each of which
marks the cell failed, shuts the kernel down and is reported as its own error class.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from .errors import (
    CellTimeoutError,
    ExecutionError,
    KernelDiedError,
    OutputError,
    ParamillError,
    RunCancelledError,
    RunTimeoutError,
)

if TYPE_CHECKING:
    from nbformat import NotebookNode

logger = logging.getLogger("paramill")


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


# SIGINT/SIGTERM that arrived while hold_signals was active and no engine handled them
_held_signals: list[int] = []
_hold_depth = 0


@contextlib.contextmanager
def hold_signals(enabled: bool = True) -> Iterator[list[int]]:
    """Hold SIGINT/SIGTERM (record them, do not die) for the whole of a run in the main thread.

    While cells run the engine's handlers take over; around that (getting ready, shutting the
    kernel down, the final save) a signal would otherwise kill the process before the kernel is
    stopped and the output written. Yields the signals held; the caller decides what to do.
    Nested holds share the outermost one's list and handlers.
    """
    global _held_signals, _hold_depth
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield []
        return
    if _hold_depth:
        _hold_depth += 1
        try:
            yield _held_signals
        finally:
            _hold_depth -= 1
        return
    held: list[int] = []
    _held_signals = held
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, lambda s, _frame: held.append(signal.Signals(s)))
        except (ValueError, OSError):
            pass
    _hold_depth = 1
    try:
        yield held
    finally:
        _hold_depth = 0
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _held_signals = []


def _drain_loop() -> None:
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


class Autosaver:
    """Coalesces save requests: at most one write per ``interval`` seconds, never stale longer.

    ``request`` marks the notebook dirty and, if a write is not allowed yet, schedules one on the
    event loop for when it is; ``flush`` writes now. Writes run on the loop thread, so the
    notebook is never serialized while nbclient is changing it.
    """

    def __init__(self, write: Callable[[NotebookNode], None] | None, interval: float) -> None:
        self._write = write
        self.interval = interval
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.on_error: Callable[[ParamillError], None] | None = None

    def request(self, nb: NotebookNode) -> None:
        if self._write is None or self._timer is not None:
            return
        wait = self._last + self.interval - time.monotonic()
        if wait <= 0:
            self.flush(nb)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(wait, self.flush, nb)

    def flush(self, nb: NotebookNode) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._write is None:
            return
        try:
            self._write(nb)
        except ParamillError as exc:  # reported through on_error: the run is stopped
            self._write = None
            if self.on_error:
                self.on_error(exc)
        finally:
            self._last = time.monotonic()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Stop:
    """Why a run is being stopped early, and the task to interrupt."""

    def __init__(self, task: asyncio.Task) -> None:
        self.task = task
        self.error_class: type[ExecutionError] | None = None
        self.reason = ""
        self.signal_number = 0
        self.closing = False  # the run is over: only cleanup remains, nothing to interrupt

    def __call__(self, error_class: type[ExecutionError], reason: str, **kw: Any) -> None:
        if self.error_class is not None or self.closing:
            return  # the first reason wins
        self.error_class = error_class
        self.reason = reason
        self.signal_number = kw.get("signal_number", 0)
        self.task.cancel()

    def error_for(self, cell: Any, index: int) -> ExecutionError:
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


def _error_output(ename: str, evalue: str) -> Any:
    import nbformat

    return nbformat.v4.new_output(
        "error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
    )


# Kernels known to send a cell's output after reporting "idle" (Apache Toree does, for streams,
# values and errors alike): seconds of quiet to wait for after idle before the cell counts as done.
# fnmatch patterns on the kernelspec name, first match wins. PARAMILL_LATE_OUTPUT_GRACE (seconds)
# or the engine option ``late_output_grace`` overrides the table for every kernel.
LATE_OUTPUT_GRACE: list[tuple[str, float]] = [("*toree*", 2.0)]


def late_output_grace_for(kernel_name: str, option: float | None = None) -> float:
    """Seconds to wait for late output from ``kernel_name`` (0: none)."""
    import fnmatch
    import os

    if option is not None:
        return max(0.0, float(option))
    env = os.environ.get("PARAMILL_LATE_OUTPUT_GRACE")
    if env:
        try:
            return max(0.0, float(env))
        except ValueError:
            logger.warning("PARAMILL_LATE_OUTPUT_GRACE=%r is not a number; ignored", env)
    for pattern, seconds in LATE_OUTPUT_GRACE:
        if fnmatch.fnmatch((kernel_name or "").lower(), pattern):
            return seconds
    return 0.0


def _make_client_class() -> type:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionComplete, CellExecutionError

    class Client(NotebookClient):
        """nbclient's client with output streaming (log, stdout/stderr files) and autosave."""

        def __init__(
            self, nb: NotebookNode, *, on_output: Callable, late_grace: float = 0.0, **kw: Any
        ) -> None:
            super().__init__(nb, **kw)
            self._on_output = on_output
            self._late_grace = late_grace
            self._parent_msg_id: str | None = None

        async def _async_poll_output_msg(self, parent_msg_id: str, *args: Any) -> None:
            self._parent_msg_id = parent_msg_id
            await super()._async_poll_output_msg(parent_msg_id, *args)

        async def async_execute_cell(self, cell: NotebookNode, cell_index: int, **kw: Any) -> Any:
            """nbclient's, then (for kernels that send output after "idle") the cell's late
            output, until ``late_grace`` seconds pass without any; also when the cell failed,
            so its error output is there."""
            self._parent_msg_id = None
            try:
                result = await super().async_execute_cell(cell, cell_index, **kw)
            except CellExecutionError:
                await self._collect_late_output(cell, cell_index)
                raise
            await self._collect_late_output(cell, cell_index)
            return result

        async def _collect_late_output(self, cell: NotebookNode, cell_index: int) -> None:
            from queue import Empty

            from jupyter_core.utils import ensure_async

            parent, self._parent_msg_id = self._parent_msg_id, None
            if not self._late_grace or parent is None:
                return
            grace = self._late_grace
            give_up = time.monotonic() + 10 * grace  # a kernel that never goes quiet
            while time.monotonic() < give_up:
                try:
                    msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=grace))
                except Empty:
                    return  # quiet for the whole grace: the cell is complete
                if msg["parent_header"].get("msg_id") == parent:
                    with contextlib.suppress(CellExecutionComplete):
                        self.process_message(msg, cell, cell_index)

        def process_message(self, msg: dict, cell: NotebookNode, cell_index: int) -> Any:
            output = super().process_message(msg, cell, cell_index)
            if output is not None:
                self._on_output(output)
            return output

        def output(self, outs: list, msg: dict, display_id: Any, cell_index: int) -> Any:
            """Consecutive stream pieces of one name become one output, as a notebook shows
            them (and so a secret printed in pieces is whole when it is scrubbed)."""
            out = super().output(outs, msg, display_id, cell_index)
            if (
                out is not None
                and out.get("output_type") == "stream"
                and len(outs) >= 2
                and outs[-1] is out
                and outs[-2].get("output_type") == "stream"
                and outs[-2].get("name") == out.get("name")
            ):
                outs.pop()
                outs[-1]["text"] += out["text"]
            return out

    return Client


class NBClientEngine:
    """The default engine (papermill's ``nbclient`` engine)."""

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
        kernel_starter: Callable[..., Any] | None = None,
        late_output_grace: float | None = None,
        **nbclient_kwargs: Any,
    ) -> None:
        self.kernel_name = kernel_name
        self.saver = saver
        self.cwd = cwd
        self.start_timeout = start_timeout
        self.execution_timeout = execution_timeout or None
        self.run_timeout = run_timeout or None
        self.kernel_liveness_timeout = kernel_liveness_timeout
        self.log_output = log_output
        self.stdout_file = stdout_file
        self.stderr_file = stderr_file
        self.progress_bar = progress_bar
        self.handle_signals = handle_signals
        self.kernel_env = kernel_env
        self.autosave_outputs = autosave_outputs
        # kernels that report failure without an error reply (Octave prints "error: ...")
        self.failure_check = failure_check
        # run silently before the first cell (the Bash ERR trap that failure_check relies on)
        self.setup_code = setup_code
        # async (kernel_name, cwd=, startup_timeout=, env=) -> (km, kc); a warm pool plugs in here
        self.kernel_starter = kernel_starter
        self.late_output_grace = late_output_grace_for(kernel_name, late_output_grace)
        self.nbclient_kwargs = nbclient_kwargs
        self.kernel_pid: int | None = None
        self._km: Any = None
        self._log_scrubbers: dict[str, Any] = {}  # stream name: what --log-output holds back

    def execute(self, nb: NotebookNode) -> ExecutionError | None:
        """Run every cell of ``nb`` in place; return the error that ended the run early, if any.

        Cell exceptions are left in the notebook for the caller's scan (they are not returned).
        """
        from jupyter_core.utils import run_sync

        try:
            return run_sync(self._execute)(nb)
        except BaseException:
            # an exception from outside (a scheduler's SIGTERM handler raising in this thread)
            # broke the event loop before the engine could clean up: no orphan kernel, and no
            # half-run tasks left in this thread's loop to wake up in (and cancel) the next run
            self._kill_kernel_now()
            _drain_loop()
            raise

    def _kill_kernel_now(self) -> None:
        import os

        from .kernels import outputs

        km = self._km
        if km is None or self.kernel_pid is None:
            return
        try:
            os.killpg(os.getpgid(self.kernel_pid), signal.SIGKILL)
        except OSError:
            pass
        if km in outputs:
            outputs.pop(km).close()
        for cleanup in ("cleanup_connection_file", "cleanup_ipc_files"):
            try:
                getattr(km, cleanup)()
            except Exception:
                pass

    # -- bookkeeping ---------------------------------------------------------------------------
    @staticmethod
    def _reset(nb: NotebookNode) -> None:
        meta = nb.metadata.setdefault("papermill", {})
        meta.update(start_time=now_iso(), end_time=None, duration=None, exception=None)
        for cell in nb.cells:
            cell.metadata["papermill"] = {
                "exception": None,
                "start_time": None,
                "end_time": None,
                "duration": None,
                "status": "pending",
            }
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None

    @staticmethod
    def _finish_cell(cell: NotebookNode) -> None:
        meta = cell.metadata.papermill
        meta["end_time"] = now_iso()
        if meta.get("start_time"):
            start = datetime.datetime.fromisoformat(meta["start_time"])
            end = datetime.datetime.fromisoformat(meta["end_time"])
            meta["duration"] = (end - start).total_seconds()
        if meta["status"] != "failed":
            meta["status"] = "completed"

    @staticmethod
    def _fail_cell(nb: NotebookNode, cell: NotebookNode) -> None:
        cell.metadata.papermill.update(exception=True, status="failed")
        nb.metadata.papermill["exception"] = True

    def _on_output(self, output: NotebookNode, nb: NotebookNode) -> None:
        kind = output.get("output_type")
        if kind == "stream":
            text = output.get("text", "")
            target = self.stdout_file if output.get("name") == "stdout" else self.stderr_file
            if target is not None:
                target.write(text)
                target.flush()
            if self.log_output:
                self._log_stream(output.get("name"), text)
        elif self.log_output and kind in ("execute_result", "display_data"):
            plain = output.get("data", {}).get("text/plain")
            if plain:
                logger.info(plain)
        if self.autosave_outputs:
            self.saver.request(nb)

    def _log_stream(self, name: Any, text: str, end: bool = False) -> None:
        """``--log-output`` of a stream piece. With secrets in the kernel's environment, whole
        lines only (held across pieces and cells until the line ends, or the run does), so a
        value printed in pieces is scrubbed whole."""
        from .secrets import StreamScrubber, values_in

        values = values_in(self.kernel_env)
        if values:
            if name not in self._log_scrubbers:
                self._log_scrubbers[name] = StreamScrubber(values, lines=True)
            scrubber = self._log_scrubbers[name]
            text = scrubber.feed(text) + (scrubber.close() if end else "")
            if not text:
                return
        level = logging.INFO if name == "stdout" else logging.WARNING
        logger.log(level, text.rstrip("\n"))

    # -- the run -------------------------------------------------------------------------------
    async def _execute(self, nb: NotebookNode) -> ExecutionError | None:
        from nbclient.exceptions import CellExecutionError, DeadKernelError
        from nbclient.exceptions import CellTimeoutError as NBCellTimeout

        from .kernels import kernel_pid, start_kernel, stop_kernel

        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        tasks_before = asyncio.all_tasks()
        stop = _Stop(task)
        self.saver.on_error = lambda exc: stop(
            OutputError, f"the output could not be saved: {exc.message}"
        )
        self._reset(nb)
        started = time.monotonic()
        self.saver.flush(nb)

        restore = self._install_signal_handlers(loop, stop)
        timer = None
        if self.run_timeout:
            timer = loop.call_later(
                self.run_timeout,
                lambda: stop(
                    RunTimeoutError, f"the run exceeded {self.run_timeout:g} s (--timeout)"
                ),
            )
        bar = self._progress(nb)
        km = kc = watchdog = None
        error: ExecutionError | None = None
        current: tuple[int, Any] | None = None
        try:
            km, kc = await (self.kernel_starter or start_kernel)(
                self.kernel_name,
                cwd=self.cwd,
                startup_timeout=self.start_timeout,
                env=self.kernel_env,
            )
            self.kernel_pid, self._km = kernel_pid(km), km
            logger.info("Executing notebook with kernel: %s", self.kernel_name)
            client = _make_client_class()(
                nb,
                km=km,
                on_output=lambda out: self._on_output(out, nb),
                late_grace=self.late_output_grace,
                timeout=self.execution_timeout,
                startup_timeout=self.start_timeout,
                kernel_name=self.kernel_name,
                raise_on_iopub_timeout=True,
                **self.nbclient_kwargs,
            )
            client.kc = kc
            watchdog = asyncio.ensure_future(self._watch_heartbeat(kc, stop))
            if self.setup_code:
                await self._run_setup(kc)
            for index, cell in enumerate(nb.cells):
                current = (index, cell)
                cell.metadata.papermill.update(
                    start_time=now_iso(), status="running", exception=False
                )
                if self.log_output:
                    logger.info(f"Executing Cell {index + 1:-<40}")
                self.saver.request(nb)
                try:
                    await client.async_execute_cell(cell, index)
                    failure = self.failure_check(cell) if self.failure_check else None
                    if failure and cell.cell_type == "code":
                        self._fail_cell(nb, cell)
                        cell.outputs.append(_error_output(*failure))
                        break
                except CellExecutionError as exc:
                    if exc.ename == "SystemExit" and exc.evalue in ("", "0"):
                        break  # a clean sys.exit(): stop here, not a failure
                    self._fail_cell(nb, cell)
                    if exc.ename and not any(o.output_type == "error" for o in cell.outputs):
                        # the reply names the error but no output does (IPython's UsageError)
                        cell.outputs.append(_error_output(exc.ename, exc.evalue or ""))
                    break
                except NBCellTimeout as exc:
                    self._fail_cell(nb, cell)
                    error = CellTimeoutError(
                        cell_index=index,
                        exec_count=cell.get("execution_count"),
                        source=cell.source,
                        ename="CellTimeoutError",
                        evalue=str(exc).strip().splitlines()[0]
                        if str(exc).strip()
                        else f"exceeded {self.execution_timeout} s",
                        traceback=[],
                    )
                    break
                except (DeadKernelError, asyncio.CancelledError):
                    self._fail_cell(nb, cell)
                    error = stop.error_for(cell, index)
                    break
                finally:
                    self._finish_cell(cell)
                    if self.log_output:
                        logger.info(f"Ending Cell {index + 1:-<43}")
                    if bar is not None and cell.cell_type == "code":
                        bar.update(1)
                    if stop.error_class is None:
                        self.saver.request(nb)
                current = None
            if error is None and stop.error_class is None:
                await self._refresh_language_info(nb, kc)
                client.set_widgets_metadata()
        except asyncio.CancelledError:
            # stopped while the kernel was starting or between cells
            index, cell = current if current else (None, {})
            if current:
                self._fail_cell(nb, cell)
                self._finish_cell(cell)
            error = stop.error_for(cell, index) if current else stop.error_for({}, None)
        finally:
            stop.closing = True
            if timer is not None:
                timer.cancel()
            if watchdog is not None:
                watchdog.cancel()
            restore()
            for name in list(self._log_scrubbers):  # a last line without its newline
                self._log_stream(name, "", end=True)
            self._log_scrubbers.clear()
            if bar is not None:
                bar.render_finish()
            if km is not None:
                await stop_kernel(km, kc, grace=0 if error is not None else 3.0)
                self._km = None
            for leftover in asyncio.all_tasks() - tasks_before - {task}:
                leftover.cancel()
            self._finish_notebook(nb, started)
            self.saver.cancel()
        if error is not None:
            self._add_error_output(nb, error)
        return error

    async def _run_setup(self, kc: Any) -> None:
        try:
            reply = await kc.execute_interactive(
                self.setup_code,
                silent=True,
                store_history=False,
                timeout=self.start_timeout,
                output_hook=lambda msg: None,  # not jupyter_client's default: print to stdout
            )
            if reply["content"].get("status") != "ok":
                logger.warning("The kernel setup code failed: %s", reply["content"])
        except TimeoutError:
            logger.warning("The kernel setup code did not finish in %g s", self.start_timeout)

    @staticmethod
    def _add_error_output(nb: NotebookNode, error: ExecutionError) -> None:
        # also when no cell ran (stopped while the kernel started): the run did fail
        nb.metadata.papermill["exception"] = True
        if error.cell_index is None:
            return
        cell = nb.cells[error.cell_index]
        if cell.cell_type == "code":
            cell.outputs.append(_error_output(error.ename, error.evalue))

    def _finish_notebook(self, nb: NotebookNode, started: float) -> None:
        # cells after a stop stay "pending": they did not run
        meta = nb.metadata.papermill
        meta["end_time"] = now_iso()
        meta["duration"] = round(time.monotonic() - started, 6)

    async def _refresh_language_info(self, nb: NotebookNode, kc: Any) -> None:
        try:
            msg_id = kc.kernel_info()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                reply = await kc.get_shell_msg(timeout=max(0.01, deadline - time.monotonic()))
                if reply["parent_header"].get("msg_id") == msg_id:
                    info = reply["content"].get("language_info")
                    if info:
                        nb.metadata["language_info"] = info
                    return
        except Exception:
            logger.debug("kernel_info after the run failed", exc_info=True)

    async def _watch_heartbeat(self, kc: Any, stop: _Stop) -> None:
        """Stop the run when the kernel stops answering heartbeats and its process is stopped
        (SIGSTOP), a zombie or gone; a silent process that still runs is busy, not dead.

        Pings from this loop on a socket of the client's context, not from jupyter_client's
        heartbeat thread (one thread less per run, and that thread's socket re-creation races
        the client's teardown and prints ZMQError tracebacks)."""
        import zmq

        from .kernels import stopped_or_gone

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
            if time.monotonic() - answered >= self.kernel_liveness_timeout and stopped_or_gone(
                self.kernel_pid
            ):
                stop(
                    KernelDiedError,
                    f"the kernel stopped responding (no heartbeat for "
                    f"{self.kernel_liveness_timeout:g} s)",
                )
                return

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop, stop: _Stop) -> Callable:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return lambda: None
        names = {signal.SIGINT: "interrupted (SIGINT)", signal.SIGTERM: "terminated (SIGTERM)"}
        previous = {}
        for sig, text in names.items():
            try:
                previous[sig] = signal.getsignal(sig)
                loop.add_signal_handler(
                    sig, lambda s=sig, t=text: stop(RunCancelledError, t, signal_number=int(s))
                )
            except (ValueError, RuntimeError, NotImplementedError):
                previous.pop(sig, None)
        if _held_signals:  # arrived while the run was getting ready: cancel it now
            sig = _held_signals[0]
            stop(RunCancelledError, names[sig], signal_number=int(sig))

        def restore() -> None:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, handler)

        return restore

    def _progress(self, nb: NotebookNode) -> Any:
        if not self.progress_bar:
            return None
        import click

        total = sum(1 for c in nb.cells if c.cell_type == "code")
        options = {"label": "Executing", "file": sys.stderr, "show_pos": True}
        if isinstance(self.progress_bar, dict):
            options.update({k: v for k, v in self.progress_bar.items() if k in ("label",)})
        bar = click.progressbar(length=total, **options)
        bar.render_progress()
        return bar
