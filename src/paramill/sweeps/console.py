"""The sweep console: progress and the runs' log lines on one stream, never mixed."""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from typing import IO

from .executors import SweepEvents
from .plan import RunSpec
from .run_one import SweepRun, current_run


class SweepConsole(logging.Handler, SweepEvents):
    """Progress (done/failed/running, ETA) and the runs' log lines on one stream, never mixed.

    On a terminal the progress is one status line redrawn in place, cleared before each log
    line; otherwise a line is printed as each run finishes. Log lines are prefixed with their
    run (``[date=2019-11-01] ...``).
    """

    def __init__(self, total: int, stream: IO[str] | None = None, live: bool | None = None):
        super().__init__()
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.total = total
        self.done = self.failed = self.running = 0
        self.began = time.monotonic()
        self._shown = False
        self.setFormatter(logging.Formatter("%(message)s"))

    def status(self) -> str:
        finished = self.done + self.failed
        text = (
            f"sweep: {finished}/{self.total}  done {self.done}  failed {self.failed}  "
            f"running {self.running}"
        )
        if finished:
            eta = (time.monotonic() - self.began) / finished * (self.total - finished)
            text += f"  ETA {int(eta // 60)}:{int(eta % 60):02d}"
        return text

    def _clear(self) -> None:
        if self.live and self._shown:
            self.stream.write("\r\x1b[K")
            self._shown = False

    def _draw(self) -> None:
        if self.live:
            self.stream.write("\r\x1b[K" + self.status())
            self._shown = True
        self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.write_lines(text)

    def write_lines(self, text: str) -> None:
        """Write lines named by the run of the calling thread or task (``[sweep]`` outside)."""
        label = current_run.get() or "sweep"
        text = "\n".join(f"[{label}] {line}" for line in text.splitlines() or [""])
        with self.lock:
            self._clear()
            self.stream.write(text + "\n")
            self._draw()

    def install(self, level: int | str) -> None:
        """Take over this process's log output and ``sys.stderr`` until ``finish``: paramill's
        logs at ``level``, other libraries' warnings, Python warnings and thread tracebacks all
        come out as named lines instead of cutting through the progress."""
        paramill, root = logging.getLogger("paramill"), logging.getLogger()
        paramill.handlers[:] = [self]
        paramill.propagate = False
        paramill.setLevel(level)
        root.handlers[:] = [self]
        logging.captureWarnings(True)
        self._stderr = sys.stderr
        sys.stderr = _ConsoleStream(self, self._stderr)  # type: ignore[assignment]

    def started(self, spec: RunSpec) -> None:
        with self.lock:
            self.running += 1
            self._clear()
            self._draw()

    def finished(self, run: SweepRun) -> None:
        with self.lock:
            self.running -= 1
            if run.ok:
                self.done += 1
            else:
                self.failed += 1
            self._clear()
            if not self.live:
                what = run.status
                if run.error is not None:
                    what += f": {run.error.message}"
                took = f"{run.duration or 0:.2f}s"
                self.stream.write(f"[{run.label}] {what} ({took}) — {self.status()}\n")
            self._draw()

    def finish(self) -> None:
        with self.lock:
            if isinstance(sys.stderr, _ConsoleStream) and sys.stderr.console is self:
                sys.stderr.close()
                sys.stderr = self._stderr
            self._clear()
            self.stream.flush()


class _ConsoleStream(io.TextIOBase):
    """``sys.stderr`` during a sweep: whole lines go through the console, each thread's
    partial line waits for its newline. Writes to the file descriptor itself bypass it."""

    def __init__(self, console: SweepConsole, real: IO[str]):
        self.console, self.real = console, real
        self._partial: dict[int, str] = {}

    def write(self, text: str) -> int:
        thread = threading.get_ident()
        lines, newline, rest = (self._partial.pop(thread, "") + text).rpartition("\n")
        if rest:
            self._partial[thread] = rest
        if newline:
            self.console.write_lines(lines)
        return len(text)

    def close(self) -> None:
        for rest in self._partial.values():
            self.console.write_lines(rest)
        self._partial.clear()
        super().close()

    def fileno(self) -> int:
        return self.real.fileno()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.real.encoding
