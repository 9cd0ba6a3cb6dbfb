"""A real ``paramill serve`` process on 127.0.0.1 (free port), driven over HTTP; stopped by PID.

Shared by tests/test_serve*.py. Notebooks used there are written by ``notebooks_folder``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import nbformat

from tests.conftest import make_notebook, processes_with_env

ROOT = Path(__file__).resolve().parent.parent
BIKESHARE = ROOT / "examples" / "bikeshare"

ADD = """# %% tags=["parameters"]
x: int = 1  # first number
y: float = 2.5  # second number
mode: Literal["fast", "slow"] = "fast"  # how to add
tags: list = ["a"]  # labels, as YAML
# %%
import paramill
paramill.record("sum", x + y)
paramill.record("mode", mode)
print("sum is", x + y)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def notebooks_folder(folder: Path, bikeshare: bool = False) -> Path:
    """add.py (typed parameters, records), slow.ipynb (prints 'started', sleeps ``hold``
    seconds, then three one-second cells), fail.ipynb (raises in cell 1), noparams.ipynb,
    secret.ipynb (declares api_key) and optionally bikeshare/ with trips data and a records
    cell."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "add.py").write_text("from typing import Literal\n" + ADD)
    slow = make_notebook(
        [("code", "hold = 600  # seconds the second cell sleeps", "parameters"),
         "import time\nprint('started', flush=True)",
         "time.sleep(hold)\nprint('held', flush=True)"]
        + [f"time.sleep(1)\nprint('step {i}', flush=True)" for i in range(3)]
    )
    nbformat.write(slow, folder / "slow.ipynb")
    nbformat.write(make_notebook([("code", "n = 1", "parameters"), "x = 1",
                                  "raise ValueError(f'bad n={n}')"]), folder / "fail.ipynb")
    nbformat.write(make_notebook(["print('no parameters here')"]), folder / "noparams.ipynb")
    # a per-notebook timeout in its metadata overrides --timeout
    nbformat.write(make_notebook(["import time\nprint('going', flush=True)\ntime.sleep(600)"],
                                 paramill={"timeout": 3}), folder / "hangs.ipynb")
    nbformat.write(make_notebook([
        ("code", "api_key = ''  # from the server\nlabel = 'x'", "parameters"),
        "import paramill\nparamill.record('key_length', len(api_key))\n"
        "paramill.record('key_echo', api_key[:3] + '...')\nprint(api_key)",
    ]), folder / "secret.ipynb")
    nbformat.write(make_notebook([
        ("code", "label = 'none'", "parameters"),
        "import os\nimport paramill\n"
        "paramill.record('env_has_secret', any('sekr' in v for v in os.environ.values()))",
    ]), folder / "nosecret_declared_elsewhere.ipynb")
    if bikeshare:
        dest = folder / "bikeshare"
        dest.mkdir()
        nb = nbformat.read(BIKESHARE / "report.ipynb", as_version=4)
        # the example records nothing: one cell more so the run page has records to show
        nb.cells.append(nbformat.v4.new_code_cell(
            "import paramill\nparamill.record('trips', int(len(trips)))\n"
            "paramill.record('stations', int(trips.start_station_id.nunique()))"))
        nbformat.write(nb, dest / "report.ipynb")
        subprocess.run([sys.executable, str(BIKESHARE / "make_data.py"), "--out",
                        str(dest / "data" / "trips.csv")], check=True, capture_output=True)
    return folder


class Server:
    def __init__(self, folder: Path, *args: str, env: dict[str, str] | None = None,
                 log: Path | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.token = uuid.uuid4().hex
        self.base = f"http://127.0.0.1:{self.port}"
        self.marker = f"paramill-serve-test-{uuid.uuid4().hex}"
        self.log = log or folder.parent / f"serve-{self.port}.log"
        self.args = args
        self.env = {**os.environ, **(env or {}), "PARAMILL_SERVE_TEST": self.marker}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "paramill", "serve", str(self.folder), "--port",
             str(self.port), "--token", self.token, *self.args],
            env=self.env, stdout=open(self.log, "a"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited rc={self.proc.returncode}: "
                                   f"{self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.base + "/api/notebooks", timeout=2)
            except urllib.error.HTTPError:
                return self  # 401: up
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(self.base)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode

    def leftover_processes(self, timeout: float = 15) -> set[int]:
        """Kernels (and servers) started by this server still alive after it stopped."""
        end = time.monotonic() + timeout
        while (left := processes_with_env(self.marker)) and time.monotonic() < end:
            time.sleep(0.1)
        return left

    def request(self, method: str, path: str, body: Any = None, *, token: bool = True,
                raw: bytes | None = None, headers: dict | None = None,
                timeout: float = 120) -> tuple[int, Any, dict]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        h = {"Content-Type": "application/json", **(headers or {})}
        if token:
            h["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, method=method, data=data, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, text, hdrs = r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            status, text, hdrs = e.code, e.read(), dict(e.headers)
        ctype = hdrs.get("content-type", "")
        if "json" in ctype and "ipynb" not in ctype:
            return status, json.loads(text), hdrs
        return status, text.decode(), hdrs

    def run(self, notebook: str, parameters: dict | None = None, wait: float = 120) -> dict:
        status, body, _ = self.request(
            "POST", f"/api/runs?wait={wait}",
            {"notebook": notebook, "parameters": parameters or {}},
        )
        assert status in (200, 202), body
        return body

    def wait_status(self, run_id: str, statuses: tuple[str, ...], timeout: float = 120) -> dict:
        """Poll until the run has one of ``statuses`` (generous bound, from now)."""
        end = time.monotonic() + timeout
        while True:
            _, run, _ = self.request("GET", f"/api/runs/{run_id}")
            if run["status"] in statuses or time.monotonic() > end:
                return run
            time.sleep(0.1)

    def events_until(self, run_id: str, predicate: Any, timeout: float = 120) -> list[dict]:
        """Read /events until predicate(event) is true; the events read."""
        req = urllib.request.Request(self.base + f"/api/runs/{run_id}/events",
                                     headers={"Authorization": f"Bearer {self.token}"})
        seen = []
        with urllib.request.urlopen(req, timeout=timeout) as r:
            for line in r:
                line = line.decode().strip()
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    seen.append(event)
                    if predicate(event):
                        return seen
        return seen


def copy_tree(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest)
