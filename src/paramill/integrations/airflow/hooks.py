"""Airflow hooks for kernels that are not started by the task: an existing kernel (the papermill
provider's ``jupyter_kernel`` connection type, same fields and defaults) and a Jupyter gateway
(``jupyter_gateway``: the URL in host, the token as password).

``jupyter_kernel``: host is the kernel's ip; the extras hold ``shell_port``, ``iopub_port``,
``stdin_port``, ``control_port``, ``hb_port`` (defaults 60316-60320) and ``session_key``
(default empty).

``jupyter_gateway``: host is the gateway's URL (``http://host:8888``; or host + port + schema
``https``), password the token; extras may hold ``headers`` (a dict), ``validate_cert``
(default true), ``ca_bundle`` (a file) and ``liveness_timeout`` (seconds).
"""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import BaseHook

JUPYTER_KERNEL_SHELL_PORT = 60316
JUPYTER_KERNEL_IOPUB_PORT = 60317
JUPYTER_KERNEL_STDIN_PORT = 60318
JUPYTER_KERNEL_CONTROL_PORT = 60319
JUPYTER_KERNEL_HB_PORT = 60320


class KernelConnection:
    """The papermill provider's connection object (same attribute names)."""

    ip: str
    shell_port: int
    iopub_port: int
    stdin_port: int
    control_port: int
    hb_port: int
    session_key: str

    def connection_info(self) -> dict[str, Any]:
        """As a Jupyter connection file has it."""
        return {
            "transport": "tcp",
            "ip": self.ip,
            "shell_port": int(self.shell_port),
            "iopub_port": int(self.iopub_port),
            "stdin_port": int(self.stdin_port),
            "control_port": int(self.control_port),
            "hb_port": int(self.hb_port),
            "key": self.session_key or "",
            "signature_scheme": "hmac-sha256",
        }


def _extras(conn: Any) -> dict[str, Any]:
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else json.loads(conn.extra or "{}")
    return dict(extra or {})


class JupyterKernelHook(BaseHook):
    """An existing Jupyter kernel, from a ``jupyter_kernel`` connection."""

    conn_name_attr = "kernel_conn_id"
    default_conn_name = "jupyter_kernel_default"
    conn_type = "jupyter_kernel"
    hook_name = "Jupyter Kernel"

    def __init__(self, kernel_conn_id: str = default_conn_name, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kernel_conn_id = kernel_conn_id
        self.kernel_conn = self.get_connection(kernel_conn_id)

    def get_conn(self) -> KernelConnection:
        extra = _extras(self.kernel_conn)
        conn = KernelConnection()
        conn.ip = self.kernel_conn.host or "127.0.0.1"
        conn.shell_port = extra.get("shell_port", JUPYTER_KERNEL_SHELL_PORT)
        conn.iopub_port = extra.get("iopub_port", JUPYTER_KERNEL_IOPUB_PORT)
        conn.stdin_port = extra.get("stdin_port", JUPYTER_KERNEL_STDIN_PORT)
        conn.control_port = extra.get("control_port", JUPYTER_KERNEL_CONTROL_PORT)
        conn.hb_port = extra.get("hb_port", JUPYTER_KERNEL_HB_PORT)
        conn.session_key = extra.get("session_key", "")
        return conn

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "login", "password", "port"],
            "relabeling": {"host": "Kernel IP"},
            "placeholders": {
                "extra": json.dumps(
                    {"shell_port": 60316, "iopub_port": 60317, "stdin_port": 60318,
                     "control_port": 60319, "hb_port": 60320, "session_key": ""}
                )
            },
        }


class JupyterGatewayHook(BaseHook):
    """A Jupyter gateway (Kernel Gateway, Jupyter Server, Enterprise Gateway), from a
    ``jupyter_gateway`` connection."""

    conn_name_attr = "gateway_conn_id"
    default_conn_name = "jupyter_gateway_default"
    conn_type = "jupyter_gateway"
    hook_name = "Jupyter Gateway"

    def __init__(
        self, gateway_conn_id: str = default_conn_name, *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.gateway_conn_id = gateway_conn_id
        self.gateway_conn = self.get_connection(gateway_conn_id)

    def get_conn(self) -> Any:
        """A ``paramill.kernel.gateway.Gateway``."""
        from paramill.kernel.gateway import Gateway

        conn = self.gateway_conn
        extra = _extras(conn)
        host = conn.host or ""
        if "://" in host:
            url = host
        else:
            scheme = conn.schema if conn.schema in ("http", "https") else "http"
            url = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        validate = extra.get("validate_cert", True)
        if isinstance(validate, str):
            validate = validate.lower() not in ("0", "false", "no")
        return Gateway(
            url=url,
            token=conn.password or None,
            headers=dict(extra.get("headers") or {}),
            validate_cert=bool(validate),
            ca_bundle=extra.get("ca_bundle"),
            liveness_timeout=extra.get("liveness_timeout"),
        )

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["login"],
            "relabeling": {"host": "Gateway URL", "password": "Token"},
            "placeholders": {
                "host": "http://gateway:8888",
                "extra": json.dumps({"headers": {}, "validate_cert": True}),
            },
        }
