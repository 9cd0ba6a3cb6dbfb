"""paramill for Apache Airflow 3: ``NotebookOperator`` (alias ``PapermillOperator``), the
``@task.notebook`` decorator and the provider registration.

Switching from the papermill provider is one import::

    from paramill.integrations.airflow import PapermillOperator

Airflow is imported only when one of these names is first used; ``get_provider_info`` (what
Airflow's providers manager calls through the ``apache_airflow_provider`` entry point) imports
nothing.
"""

from __future__ import annotations

from typing import Any

from .provider import get_provider_info

_LAZY = {
    "NotebookOperator": "operator",
    "PapermillOperator": "operator",
    "notebook_task": "decorator",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = ["NotebookOperator", "PapermillOperator", "get_provider_info", "notebook_task"]
