"""paramill for Apache Airflow 3: ``NotebookOperator`` (alias ``PapermillOperator``), the
``@task.notebook`` decorator and the provider registration.

Switching from the papermill provider is one import::

    from paramill.integrations.airflow import PapermillOperator

Airflow is imported only when one of these names is first used; ``get_provider_info`` (what
Airflow's providers manager calls through the ``apache_airflow_provider`` entry point) imports
nothing.
"""

from __future__ import annotations

from paramill import _lazy_attributes

from .provider import get_provider_info

_LAZY = {
    "NotebookOperator": "operator",
    "PapermillOperator": "operator",
    "NoteBook": "operator",
    "JupyterKernelHook": "hooks",
    "JupyterGatewayHook": "hooks",
    "notebook_task": "decorator",
}


__getattr__ = _lazy_attributes(__name__, _LAZY)


__all__ = [
    "JupyterGatewayHook",
    "JupyterKernelHook",
    "NoteBook",
    "NotebookOperator",
    "PapermillOperator",
    "get_provider_info",
    "notebook_task",
]
