"""SIGINT/SIGTERM during a run: one guard object, used by the CLI, the API and the engine.

While a run holds a kernel, a signal must not kill the process before the kernel is stopped and
the output written. A ``SignalGuard`` records such signals (it does not die); while cells run,
the engine's event loop takes them (``on_loop``) and stops the run; afterwards the caller
decides (``deliver`` re-raises one that arrived after the run ended). Guards nest: an inner
guard shares the outermost one's record and handlers. Only the main thread can hold signals;
elsewhere a guard does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

SIGNALS = (signal.SIGINT, signal.SIGTERM)
NAMES = {signal.SIGINT: "interrupted (SIGINT)", signal.SIGTERM: "terminated (SIGTERM)"}


class SignalGuard:
    """Hold SIGINT/SIGTERM while entered (``with SignalGuard(): ...``); ``held`` lists them."""

    _outermost: ClassVar[SignalGuard | None] = None

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.held: list[signal.Signals] = []
        self._previous: dict[int, Any] = {}
        self._owner = False
        self._depth = 0  # re-entered (the run, then the engine, hold the same guard)

    @property
    def active(self) -> bool:
        return self.enabled and threading.current_thread() is threading.main_thread()

    def __enter__(self) -> SignalGuard:
        if not self.active:
            return self
        if self._owner:
            self._depth += 1
            return self
        outer = SignalGuard._outermost
        if outer is not None:  # nested: one record, one set of handlers
            self.held = outer.held
            return self
        for sig in SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._hold)
            except (ValueError, OSError):
                pass
        self._owner = True
        SignalGuard._outermost = self
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._owner:
            return
        if self._depth:
            self._depth -= 1
            return
        self._owner = False
        SignalGuard._outermost = None
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _hold(self, signum: int, _frame: Any) -> None:
        self.held.append(signal.Signals(signum))

    def on_loop(
        self, loop: asyncio.AbstractEventLoop, stop: Callable[[signal.Signals], None]
    ) -> Callable[[], None]:
        """While a run's loop runs: a signal calls ``stop`` on the loop (one already held
        calls it at once). Returns the function that gives the signals back to the guard."""
        if not self.active:
            return lambda: None
        previous = {}
        for sig in SIGNALS:
            try:
                previous[sig] = signal.getsignal(sig)
                loop.add_signal_handler(sig, stop, sig)
            except (ValueError, RuntimeError, NotImplementedError):
                previous.pop(sig, None)
        if self.held:  # arrived while the run was getting ready: stop it now
            stop(self.held[0])

        def restore() -> None:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, handler)

        return restore

    def deliver(self) -> None:
        """Raise the first held signal again (call after the guard has exited)."""
        if self.held:
            signal.raise_signal(self.held[0])


def ignore_signals() -> None:
    """Ignore SIGINT/SIGTERM from now on (a process that is only exiting: a repeated Ctrl-C
    must not change its exit code or interrupt its cleanup)."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def interrupt_once() -> Iterator[list[int]]:
    """The first SIGINT/SIGTERM raises KeyboardInterrupt(signum) (explicit handlers: a shell
    starts background jobs with SIGINT ignored); later ones are ignored, so they cannot break
    the cleanup of the first. Yields the signals received."""
    received: list[int] = []

    def stop(signum: int, _frame: Any) -> None:
        if not received:
            received.append(signum)
            raise KeyboardInterrupt(signum)

    previous = {sig: signal.signal(sig, stop) for sig in SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
