"""nbclient's notebook client, with paramill's output handling."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbformat import NotebookNode


def error_output(ename: str, evalue: str) -> Any:
    """An ``error`` output as paramill adds it to the cell a run stopped in."""
    import nbformat

    return nbformat.v4.new_output(
        "error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
    )


@functools.cache
def make_client_class() -> type:
    from nbclient import NotebookClient

    class Client(NotebookClient):
        """nbclient's client with output streaming (log, stdout/stderr files) and autosave."""

        def __init__(self, nb: NotebookNode, *, on_output: Callable, **kw: Any) -> None:
            super().__init__(nb, **kw)
            self._on_output = on_output

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
