"""Writing a run's output: every write (autosave, final, partial after an interruption, HTML
report) goes through ``OutputWriter``, which scrubs secret values and, for deterministic output,
drops timings."""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import IO, TYPE_CHECKING, Any

from .. import notebook as nbops
from .. import secrets as secrets_mod
from .. import storage
from ..engine import Autosaver
from ..errors import OutputError, StorageError
from ..nbio import write_notebook
from ..report import write_html
from .result import interrupted_error

if TYPE_CHECKING:
    from nbformat import NotebookNode

logger = logging.getLogger("paramill")


class OutputWriter:
    """Where and how a run's notebook is written."""

    def __init__(
        self,
        output_path: Any,
        *,
        html_output: Any = None,
        storage_options: dict[str, Any] | None = None,
        hidden_values: list[str] | None = None,
        deterministic: bool = False,
        report_mode: bool = False,
    ) -> None:
        self.output_path = output_path
        self.html_output = html_output
        self.storage_options = storage_options
        self.hidden_values = hidden_values or []
        self.deterministic = deterministic
        self.report_mode = report_mode
        self._writers: list[Any] = []  # scrubbing stdout/stderr files, closed at the end

    def for_storage(self, nb: NotebookNode) -> NotebookNode:
        """What is written of ``nb``: secret values scrubbed, timings dropped if asked. Outputs
        are scrubbed in place; sources only in the written copy (cells yet to run need theirs).
        """
        if self.hidden_values:
            secrets_mod.scrub_notebook(nb, self.hidden_values, sources=False)
            nb = secrets_mod.scrub_notebook(copy.deepcopy(nb), self.hidden_values)
        return nbops.without_volatile(nb) if self.deterministic else nb

    def write(self, nb: NotebookNode) -> None:
        write_notebook(self.for_storage(nb), self.output_path, self.storage_options)

    def save_final(self, nb: NotebookNode, *, html: bool = True) -> None:
        """The output notebook (and the HTML report); OutputError if it cannot be written."""
        try:
            if self.output_path is not None:
                self.write(nb)
            if self.html_output is not None and html:
                write_html(
                    self.for_storage(nb),
                    self.html_output,
                    report_mode=self.report_mode,
                    storage_options=self.storage_options,
                )
        except StorageError as exc:
            raise OutputError(ename="OutputError", evalue=exc.message) from exc

    def autosaver(self, enabled: bool, every: float) -> Autosaver:
        """Saves while the run goes: every second to a local file, at most every ``every``
        seconds (at least 1) to remote storage."""
        path = self.output_path
        remote = path is not None and not storage.is_local(path)
        interval = max(1.0, float(every or 0)) if remote else 1.0
        can_save = enabled and path not in (None, "-")
        return Autosaver(self.write if can_save else None, interval)

    def save_interrupted(self, nb: NotebookNode, exc: BaseException) -> None:
        """Something outside paramill stopped the run: keep the partial output, marked
        cancelled, before the exception goes on."""
        try:
            self.save_final(nbops.add_error_markers(nb, interrupted_error(nb, exc)))
        except Exception:
            logger.exception("The partial output could not be saved")

    def stream(self, file: IO[str] | None) -> IO[str] | None:
        """``file`` (stdout/stderr of the cells), scrubbed of secret values if there are any."""
        if file is None or not self.hidden_values:
            return file
        writer = secrets_mod.ScrubbingWriter(file, self.hidden_values)
        self._writers.append(writer)
        return writer

    def close(self) -> None:
        """What scrubbing writers hold back goes out now."""
        for writer in self._writers:
            with contextlib.suppress(OSError, ValueError):  # a closed file: nothing to add
                writer.close()
        self._writers.clear()
