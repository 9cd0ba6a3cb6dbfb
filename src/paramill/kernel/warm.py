"""Kernels forked from the user's warm server (``paramill --warm``; see ``paramill.warm``)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from .local import LocalKernelSource


class WarmSource(LocalKernelSource):
    """Fresh python kernels forked from the user's warm kernel server, with ``preload`` (the
    notebook's imports) loaded there; the first run (no server yet) and kernels other than
    ipykernel start the usual way. The server outlives the source: it exits when idle
    (``paramill warm stop`` stops it)."""

    def __init__(self, preload: Iterable[str] = ()) -> None:
        from ..warm import provisioner_stanza

        super().__init__(provisioner=provisioner_stanza(list(preload)))

    @classmethod
    def for_notebook(cls, text: str | None) -> WarmSource:
        """A source preloading what the notebook (its JSON text, if read ahead) imports."""
        from ..warm import notebook_imports

        try:
            preload = notebook_imports(json.loads(text)) if text is not None else []
        except (ValueError, TypeError, AttributeError):
            preload = []
        return cls(preload)
