"""Coalesced saves of the notebook while it runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ParamillError

if TYPE_CHECKING:
    from nbformat import NotebookNode


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
