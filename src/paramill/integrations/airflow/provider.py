"""What Airflow's providers manager reads (entry point group ``apache_airflow_provider``).

Kept free of imports so that listing providers never loads paramill's runtime or Airflow.
"""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    from paramill import __version__

    return {
        "package-name": "paramill",
        "name": "paramill",
        "description": "Run parameterized Jupyter notebooks as Airflow tasks "
        "(papermill-compatible).",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "paramill",
                "external-doc-url": "https://pypi.org/project/paramill/",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "paramill",
                "python-modules": ["paramill.integrations.airflow.operator"],
            }
        ],
        "hooks": [
            {
                "integration-name": "paramill",
                "python-modules": ["paramill.integrations.airflow.hooks"],
            }
        ],
        # the papermill provider's `jupyter_kernel` type (same fields), and gateways
        "connection-types": [
            {
                "hook-class-name": "paramill.integrations.airflow.hooks.JupyterKernelHook",
                "connection-type": "jupyter_kernel",
            },
            {
                "hook-class-name": "paramill.integrations.airflow.hooks.JupyterGatewayHook",
                "connection-type": "jupyter_gateway",
            },
        ],
        "task-decorators": [
            {
                "name": "notebook",
                "class-name": "paramill.integrations.airflow.decorator.notebook_task",
            }
        ],
    }
