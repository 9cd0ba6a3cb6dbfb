"""``CancelToken``: stop a run from another thread (a server's request, a UI button)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class CancelToken:
    """Pass one to ``paramill.run(..., cancel=token)``; ``token.cancel()`` from any thread
    stops the run: the kernel is stopped, the partial output saved and marked cancelled, and
    the run's status is ``cancelled``. A token cancelled before the run starts cancels it
    before a kernel is started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._callbacks: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` on cancel (at once if cancelled already); returns the function
        that unsubscribes it."""
        with self._lock:
            if not self._cancelled:
                self._callbacks.append(callback)
                return lambda: self._unsubscribe(callback)
        callback()
        return lambda: None

    def _unsubscribe(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)
