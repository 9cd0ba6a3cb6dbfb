"""Command line: papermill's form (``paramill IN [OUT] -p name value``) plus subcommands.

A thin shell: parse options (``options.py``), call the library (``run.py``, ``sweep.py``,
``records.py``), turn errors into one line and an exit code (``exits.py``). The group itself is
in ``cli.py``; heavy modules are imported only once a command runs, so ``--help`` and
``--version`` are fast.
"""

from .cli import main

__all__ = ["main"]
