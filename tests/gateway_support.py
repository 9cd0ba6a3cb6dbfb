"""Real Jupyter gateways and an independently started kernel for the gateway tests.

``jupyter kernelgateway`` and ``jupyter server`` (both from PyPI, in the test extra) run on
127.0.0.1 with a random token on a free port, each in its own temp folder, stopped by PID.
``independent_kernel`` starts ``python -m ipykernel_launcher -f kernel.json`` as its own
process (not through paramill), for ``--connection-file`` and Airflow's ``kernel_conn_id``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Ready = any HTTP answer (401/404 included; over TLS, whatever the certificate)."""
    import ssl

    unverified = ssl._create_unverified_context() if url.startswith("https") else None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited rc={proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2, context=unverified)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class JupyterGateway:
    kind: str
    url: str
    token: str
    proc: subprocess.Popen
    log: Path

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        import ssl

        context = ssl._create_unverified_context() if self.url.startswith("https") else None
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"token {token or self.token}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30, context=context) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def kernels(self) -> list[dict]:
        return self.api("GET", "/api/kernels")

    def wait_no_kernels(self, timeout: float = 30) -> list[dict]:
        """The kernel list once empty (a DELETE may land just after the client exits)."""
        end = time.monotonic() + timeout
        while (left := self.kernels()) and time.monotonic() < end:
            time.sleep(0.1)
        return left

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop(self.proc, sig)


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), made with openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def start_gateway(
    folder: Path, kind: str, extra: list[str] | None = None, tls: bool = False
) -> JupyterGateway:
    """kind: "kernelgateway" or "server"; ``tls``: https with a self-signed certificate
    (``folder/cert.pem``)."""
    port, token = free_port(), secrets.token_hex(16)
    folder.mkdir(parents=True, exist_ok=True)
    if tls:
        cert, key = self_signed_cert(folder)
        app = "KernelGatewayApp" if kind == "kernelgateway" else "ServerApp"
        extra = [*(extra or []), f"--{app}.certfile={cert}", f"--{app}.keyfile={key}"]
    scheme = "https" if tls else "http"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "root").mkdir(exist_ok=True)
    args = {
        "kernelgateway": [
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={port}",
            "--KernelGatewayApp.port_retries=0",
            f"--KernelGatewayApp.auth_token={token}",
            "--JupyterWebsocketPersonality.list_kernels=True",
        ],
        "server": [
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={folder / 'root'}",
        ],
    }[kind]
    log = folder / f"{kind}.log"
    proc = subprocess.Popen(
        [str(BIN / "jupyter"), kind, *args, *(extra or [])],
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(folder / "rt")},
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"{scheme}://127.0.0.1:{port}/api", proc)
    except BaseException:
        stop(proc)
        raise
    return JupyterGateway(kind, f"{scheme}://127.0.0.1:{port}", token, proc, log)


@dataclass
class IndependentKernel:
    proc: subprocess.Popen
    connection_file: Path
    info: dict

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_independent_kernel(folder: Path, key: str = "", ports: list[int] | None = None):
    """An ipykernel started on its own from a connection file we write (tcp, 127.0.0.1)."""
    folder.mkdir(parents=True, exist_ok=True)
    shell, iopub, stdin, control, hb = ports or free_ports(5)
    info = {
        "transport": "tcp",
        "ip": "127.0.0.1",
        "shell_port": shell,
        "iopub_port": iopub,
        "stdin_port": stdin,
        "control_port": control,
        "hb_port": hb,
        "key": key,
        "signature_scheme": "hmac-sha256",
        "kernel_name": "python3",
    }
    path = folder / "kernel.json"
    path.write_text(json.dumps(info))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ipykernel_launcher", "-f", str(path)],
        stdout=open(folder / "kernel.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(folder / "rt")},
    )
    # ready: the heartbeat port accepts a connection
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError((folder / "kernel.log").read_text())
        try:
            socket.create_connection(("127.0.0.1", hb), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return IndependentKernel(proc, path, info)
