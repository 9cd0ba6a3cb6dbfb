"""Executing a notebook on a kernel: the only package that talks to a kernel client.

``nbclient_engine`` (the default engine), ``client`` (nbclient's client with paramill's output
handling), ``cells`` (papermill's run metadata), ``streams`` (where outputs go besides the
notebook), ``autosave`` (coalesced saves), ``stop`` (everything that ends a run early).
"""

from __future__ import annotations

from .autosave import Autosaver
from .cells import now_iso
from .client import late_output_grace_for
from .nbclient_engine import NBClientEngine

__all__ = ["Autosaver", "NBClientEngine", "late_output_grace_for", "now_iso"]
