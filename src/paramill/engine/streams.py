"""Where a running notebook's outputs go besides the notebook: stdout/stderr files,
``--log-output`` (whole lines when secrets could be split across pieces), run events, autosave."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from ..secrets import StreamScrubber, values_in
from .autosave import Autosaver

if TYPE_CHECKING:
    from nbformat import NotebookNode

logger = logging.getLogger("paramill")


def notify(events: Any, name: str, *args: Any) -> None:
    """Call ``events.<name>(*args)`` if the events object has it (run events: ``cell_started``,
    ``cell_finished``, ``output``); an error in a callback is logged, never ends the run."""
    callback = getattr(events, name, None) if events is not None else None
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:
        logger.exception("run event %s failed", name)


class OutputRouter:
    """Sends each new output of a running notebook where it is wanted."""

    def __init__(
        self,
        *,
        saver: Autosaver,
        stdout_file: IO[str] | None = None,
        stderr_file: IO[str] | None = None,
        log_output: bool = False,
        kernel_env: Mapping[str, str] | None = None,
        autosave_outputs: bool = True,
        events: Any = None,
    ) -> None:
        self.saver = saver
        self.stdout_file, self.stderr_file = stdout_file, stderr_file
        self.log_output = log_output
        self.secrets = values_in(kernel_env)
        self.autosave_outputs = autosave_outputs
        self.events = events
        self.cell_index: int | None = None  # the cell running now
        self._log_scrubbers: dict[str, StreamScrubber] = {}  # stream name: held back text

    def __call__(self, output: NotebookNode, nb: NotebookNode) -> None:
        kind = output.get("output_type")
        if kind == "stream":
            text = output.get("text", "")
            target = self.stdout_file if output.get("name") == "stdout" else self.stderr_file
            if target is not None:
                target.write(text)
                target.flush()
            if self.log_output:
                self.log_stream(output.get("name"), text)
        elif self.log_output and kind in ("execute_result", "display_data"):
            plain = output.get("data", {}).get("text/plain")
            if plain:
                logger.info(plain)
        notify(self.events, "output", self.cell_index, output)
        if self.autosave_outputs:
            self.saver.request(nb)

    def log_stream(self, name: Any, text: str, end: bool = False) -> None:
        """``--log-output`` of a stream piece. With secrets in the kernel's environment, whole
        lines only (held across pieces and cells until the line ends, or the run does), so a
        value printed in pieces is scrubbed whole."""
        if self.secrets:
            if name not in self._log_scrubbers:
                self._log_scrubbers[name] = StreamScrubber(self.secrets, lines=True)
            scrubber = self._log_scrubbers[name]
            text = scrubber.feed(text) + (scrubber.close() if end else "")
            if not text:
                return
        level = logging.INFO if name == "stdout" else logging.WARNING
        logger.log(level, text.rstrip("\n"))

    def close(self) -> None:
        """Log a last line that has no newline."""
        for name in list(self._log_scrubbers):
            self.log_stream(name, "", end=True)
        self._log_scrubbers.clear()


def progress_bar(nb: NotebookNode, option: bool | dict) -> Any:
    """A click progress bar over the code cells, or None."""
    if not option:
        return None
    import click

    total = sum(1 for c in nb.cells if c.cell_type == "code")
    options: dict[str, Any] = {"label": "Executing", "file": sys.stderr, "show_pos": True}
    if isinstance(option, dict):
        options.update({k: v for k, v in option.items() if k in ("label",)})
    bar = click.progressbar(length=total, **options)
    bar.render_progress()
    return bar
