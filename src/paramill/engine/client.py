"""nbclient's notebook client, with paramill's output handling."""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import logging
import os
import time
from collections.abc import Callable
from queue import Empty
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbformat import NotebookNode

logger = logging.getLogger("paramill")

# Kernels known to send a cell's output after reporting "idle" (Apache Toree does, for streams,
# values and errors alike): seconds of quiet to wait for after idle before the cell counts as done.
# fnmatch patterns on the kernelspec name, first match wins. PARAMILL_LATE_OUTPUT_GRACE (seconds)
# or the engine option ``late_output_grace`` overrides the table for every kernel.
LATE_OUTPUT_GRACE: list[tuple[str, float]] = [("*toree*", 2.0)]


def late_output_grace_for(kernel_name: str, option: float | None = None) -> float:
    """Seconds to wait for late output from ``kernel_name`` (0: none)."""
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


def error_output(ename: str, evalue: str) -> Any:
    """An ``error`` output as paramill adds it to the cell a run stopped in."""
    import nbformat

    return nbformat.v4.new_output(
        "error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
    )


@functools.cache
def make_client_class() -> type:
    from jupyter_core.utils import ensure_async
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
