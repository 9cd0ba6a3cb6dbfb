"""A kernel process's own stdout and stderr: pipes read on the loop that launched it, each line
scrubbed of secrets and logged as ``paramill.kernel``."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import contextvars
import functools
import logging
import os
import weakref
from typing import Any

from ..secrets import StreamScrubber

kernel_logger = logging.getLogger("paramill.kernel")

# each launched kernel's output pipes, until the kernel is stopped
outputs: weakref.WeakKeyDictionary[Any, KernelOutput] = weakref.WeakKeyDictionary()


class KernelOutput:
    """A kernel process's own stdout and stderr (its file descriptors 1 and 2: C libraries,
    child processes, ipykernel's echo of what they write) through pipes read on the loop that
    launched the kernel. Each line is scrubbed of the secret values in the kernel's environment
    and logged (``paramill.kernel``: stdout at INFO, stderr at WARNING, like ``--log-output``
    logs cell streams) in ``context``, the run holding the kernel, so a sweep names the run.
    Never on paramill's stdout (``paramill in.ipynb -`` writes the notebook there), never in
    the middle of another log line. The read ends close at the kernel's EOF or at ``close``."""

    def __init__(self, secrets: list[str]) -> None:
        self._loop = asyncio.get_running_loop()
        self.context = contextvars.copy_context()  # a pool sets the run's when it hands out
        self._pipes: dict[int, tuple[int, Any, StreamScrubber]] = {}  # read fd: level, ...
        self.write_fds: list[int] = []
        for level in (logging.INFO, logging.WARNING):
            read_fd, write_fd = os.pipe()
            os.set_blocking(read_fd, False)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            self._pipes[read_fd] = (level, decoder, StreamScrubber(secrets, lines=True))
            self.write_fds.append(write_fd)
            self._loop.add_reader(read_fd, self._read, read_fd)

    def launched(self) -> None:
        """The kernel holds the write ends now (or never will): ours go."""
        for fd in self.write_fds:
            os.close(fd)
        self.write_fds = []

    def _read(self, fd: int) -> None:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._feed(fd, data)
        else:  # every holder of the write end (the kernel, its children) is gone
            self._close_pipe(fd)

    def _feed(self, fd: int, data: bytes, final: bool = False) -> None:
        level, decoder, scrubber = self._pipes[fd]
        text = scrubber.feed(decoder.decode(data, final))
        if final:
            text += scrubber.close()
        if text:
            for line in text.removesuffix("\n").split("\n"):
                emit = functools.partial(kernel_logger.log, level, "%s", line.rstrip("\r"))
                self.context.run(emit)

    def _close_pipe(self, fd: int) -> None:
        with contextlib.suppress(OSError):  # what is left: up to EOF, EAGAIN or 1 MB
            for _ in range(16):
                data = os.read(fd, 1 << 16)
                if not data:
                    break
                self._feed(fd, data)
        self._feed(fd, b"", final=True)
        if not self._loop.is_closed():
            self._loop.remove_reader(fd)
        os.close(fd)
        del self._pipes[fd]

    def close(self) -> None:
        """Log what is left and close the pipes; from any thread (the reading loop does it)."""
        self.launched()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self._loop and self._loop.is_running():
            with contextlib.suppress(RuntimeError):  # closed meanwhile: nothing left to read
                self._loop.call_soon_threadsafe(self.close)
            return
        for fd in list(self._pipes):
            self._close_pipe(fd)
