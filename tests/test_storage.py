"""Notebooks and parameter files on real stores: SeaweedFS (S3), fake-gcs-server, Azurite, HTTP.

Servers come from tests/storage_support.py (session-scoped, 127.0.0.1, stopped by PID). Every
run uses a real ipykernel and a fresh bucket.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from paramill import storage
from paramill.api import execute_notebook, run
from paramill.errors import OutputError, StorageError
from paramill.nbio import write_notebook
from paramill.storage.locations import normalize_url
from tests.conftest import make_notebook
from tests.storage_support import (
    S3_KEY,
    S3_SECRET,
    Server,
    azure_connection_string,
    azure_fs,
    azurite,
    fake_gcs,
    gcs_fs,
    http_server,
    s3_fs,
    s3_options,
    seaweedfs,
    unique,
)

pytestmark = pytest.mark.storage

PARAM_CELLS = [
    ("code", "x = 1\nname = 'world'", "parameters"),
    "print(f'hello {name}: {x * 2}')",
]
STORE_ENV = ("AWS_", "BOTO3_", "AZURE_", "GOOGLE_", "GCSFS_", "STORAGE_EMULATOR_HOST", "FSSPEC_")


def _server_fixture(make: Callable[[Path], Server], folder: str) -> Any:
    """A session fixture: the server started on first use, stopped (by PID) at the end."""

    @pytest.fixture(scope="session")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
        server = make(tmp_path_factory.mktemp(folder)).start()
        yield server
        server.stop()

    return fixture


s3_server = _server_fixture(seaweedfs, "seaweedfs")
azure_server = _server_fixture(azurite, "azurite")
gcs_server = _server_fixture(fake_gcs, "fake-gcs")
web_server = _server_fixture(http_server, "http")


@pytest.fixture(autouse=True)
def clean_store_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No store configuration leaks in from the machine: each test sets what it uses."""
    for key in list(os.environ):
        if key.startswith(STORE_ENV):
            monkeypatch.delenv(key)


def nb_bytes(cells: list[Any] = PARAM_CELLS) -> bytes:
    return nbformat.writes(make_notebook(cells)).encode()


def stdout_of(nb: Any) -> str:
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )


def read_remote_nb(fs: Any, path: str) -> Any:
    return nbformat.reads(fs.cat_file(path).decode(), as_version=4)


def new_bucket(fs: Any, prefix: str = "b") -> str:
    bucket = unique(prefix)
    fs.mkdir(bucket)
    return bucket


def store_free_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(STORE_ENV)}
    return {**env, **extra}


def cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = 120) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "paramill", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


# -- notebook from one store to another ------------------------------------------------------


def test_s3_to_s3_configured_by_environment(s3_server: Server, monkeypatch) -> None:
    fs = s3_fs(s3_server)
    bucket = new_bucket(fs)
    fs.pipe_file(f"{bucket}/in.ipynb", nb_bytes())
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)

    nb = execute_notebook(
        f"s3://{bucket}/in.ipynb",
        f"s3://{bucket}/out/{{name}}.ipynb",  # templated, into a "folder" that does not exist
        {"x": 21, "name": "s3"},
        progress_bar=False,
    )

    assert "hello s3: 42" in stdout_of(nb)
    saved = read_remote_nb(fs, f"{bucket}/out/s3.ipynb")
    assert "hello s3: 42" in stdout_of(saved)
    assert saved.metadata.papermill.parameters == {"x": 21, "name": "s3"}
    assert saved.metadata.papermill.output_path == f"s3://{bucket}/out/s3.ipynb"


def test_gcs_to_local_through_the_cli(gcs_server: Server, tmp_path: Path) -> None:
    fs = gcs_fs(gcs_server)
    bucket = new_bucket(fs)
    fs.pipe_file(f"{bucket}/nb/in.ipynb", nb_bytes())
    # STORAGE_EMULATOR_HOST alone: no token, and no GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT (paramill
    # must not hang on the emulator without it); gcs:// is gs://'s other spelling
    env = store_free_env(STORAGE_EMULATOR_HOST=gcs_server.url)

    done = cli(  # its timeout fails the test if paramill hangs
        f"gcs://{bucket}/nb/in.ipynb",
        "out/run.ipynb",
        "-p",
        "name",
        "gcs",
        env=env,
        cwd=tmp_path,
        timeout=180,
    )

    assert done.returncode == 0, done.stderr
    saved = nbformat.read(tmp_path / "out" / "run.ipynb", as_version=4)
    assert "hello gcs: 2" in stdout_of(saved)


def test_azure_to_s3_with_per_protocol_options(azure_server: Server, s3_server: Server) -> None:
    az = azure_fs(azure_server)
    container = new_bucket(az, "c")
    az.pipe_file(f"{container}/in.ipynb", nb_bytes())
    s3 = s3_fs(s3_server)
    bucket = new_bucket(s3)
    # one run, two stores: each protocol gets its own options, nothing from the environment
    options = {
        "az": {"connection_string": azure_connection_string(azure_server)},
        "s3": s3_options(s3_server),
    }

    s3.pipe_file(f"{bucket}/params.yaml", b"name: yaml-on-s3\n")

    result = run(
        f"az://{container}/in.ipynb",
        f"s3://{bucket}/out.ipynb",
        {"x": 5},
        parameters_file=f"s3://{bucket}/params.yaml",
        storage_options=options,
    )

    assert result.ok, result.error
    saved = read_remote_nb(s3, f"{bucket}/out.ipynb")
    assert "hello yaml-on-s3: 10" in stdout_of(saved)
    assert saved.metadata.papermill.input_path == f"az://{container}/in.ipynb"


@pytest.mark.parametrize(
    "spelling", ["abfs://{c}/in.ipynb", "abs://{a}.blob.core.windows.net/{c}/in.ipynb"]
)
def test_azure_spellings_read(azure_server: Server, monkeypatch, spelling: str) -> None:
    az = azure_fs(azure_server)
    container = new_bucket(az, "c")
    az.pipe_file(f"{container}/in.ipynb", nb_bytes())
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_connection_string(azure_server))

    nb = execute_notebook(
        spelling.format(c=container, a="devstoreaccount1"), None, {"x": 3}, progress_bar=False
    )

    assert "hello world: 6" in stdout_of(nb)


def test_http_to_azure(web_server: Server, azure_server: Server, monkeypatch) -> None:
    name = unique("nb") + ".ipynb"
    (web_server.data_dir / name).write_bytes(nb_bytes())
    az = azure_fs(azure_server)
    container = new_bucket(az, "c")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_connection_string(azure_server))

    execute_notebook(
        f"{web_server.url}/{name}",
        f"az://{container}/runs/out.ipynb",
        {"name": "http"},
        progress_bar=False,
    )

    saved = read_remote_nb(az, f"{container}/runs/out.ipynb")
    assert "hello http: 2" in stdout_of(saved)


def test_options_reach_input_output_and_parameter_file(s3_server: Server, tmp_path: Path) -> None:
    fs = s3_fs(s3_server)
    bucket = new_bucket(fs)
    fs.pipe_file(f"{bucket}/in.ipynb", nb_bytes())
    fs.pipe_file(f"{bucket}/params.yaml", b"x: 50\nname: from-s3\n")
    env = store_free_env()  # only the command line says where S3 is and who we are
    flags = [
        "--storage-option", f"s3.endpoint_url={s3_server.url}",
        "--storage-option", f"s3.key={S3_KEY}",
        "--storage-option", f"s3.secret={S3_SECRET}",
    ]  # fmt: skip

    done = cli(
        f"s3://{bucket}/in.ipynb",
        f"s3://{bucket}/out.ipynb",
        "-f",
        f"s3://{bucket}/params.yaml",
        *flags,
        env=env,
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stderr
    saved = read_remote_nb(fs, f"{bucket}/out.ipynb")
    assert "hello from-s3: 100" in stdout_of(saved)

    done = cli(f"s3://{bucket}/in.ipynb", "--help-notebook", *flags, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "x: Unknown type (default 1)" in done.stdout
    assert "name: Unknown type (default 'world')" in done.stdout

    # without the options the same command cannot reach the store, and says which file
    done = cli(
        f"s3://{bucket}/in.ipynb",
        "out.ipynb",
        env={**env, "PARAMILL_STORAGE_TIMEOUT": "2"},
        cwd=tmp_path,
    )
    assert done.returncode == 6
    assert f"s3://{bucket}/in.ipynb" in done.stderr


# -- autosave to a remote store --------------------------------------------------------------


def counting_s3_class() -> type:
    """S3FileSystem under the protocol ``counts3``, recording every upload (time, bytes); a real
    SeaweedFS is behind it. Also proves a protocol paramill has never heard of works."""
    import fsspec
    import s3fs

    class CountingS3(s3fs.S3FileSystem):
        protocol = ("counts3",)
        uploads: list[tuple[float, bytes]] = []

        async def _pipe_file(self, path: str, data: bytes, **kwargs: Any) -> Any:
            CountingS3.uploads.append((time.monotonic(), data))
            return await super()._pipe_file(path, data, **kwargs)

    fsspec.register_implementation("counts3", CountingS3, clobber=True)
    return CountingS3


@pytest.mark.parametrize("fails", [False, True], ids=["completes", "fails"])
def test_remote_autosave_is_throttled_complete_and_final(s3_server: Server, fails: bool) -> None:
    counting = counting_s3_class()
    fs = s3_fs(s3_server)
    bucket = new_bucket(fs)
    cells = [
        "import time",
        *[f"time.sleep(0.1); print({i}, 'x' * 20_000)" for i in range(30)],
        "raise ValueError('boom')" if fails else "print('done')",
    ]
    torn: list[str] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:  # a concurrent reader only ever sees whole notebooks
        nonlocal reads
        while not stop.is_set():
            try:
                data = fs.cat_file(f"{bucket}/out.ipynb")
            except FileNotFoundError:
                continue
            reads += 1
            try:
                json.loads(data)
            except ValueError:
                torn.append(data[-80:].decode(errors="replace"))
            time.sleep(0.02)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        result = run(
            make_notebook(cells),
            f"counts3://{bucket}/out.ipynb",
            autosave_cell_every=1,
            storage_options={"counts3": s3_options(s3_server)},
        )
    finally:
        stop.set()
        thread.join()

    assert result.status == ("failed" if fails else "completed")
    writes = counting.uploads
    run_seconds = result.duration or 0
    assert run_seconds > 3  # 30 cells of 0.1 s: enough for several intervals
    # one at the start, at most one per second while running, the final one
    assert 3 <= len(writes) <= run_seconds + 3, (len(writes), run_seconds)
    gaps = [b[0] - a[0] for a, b in zip(writes[1:-1], writes[2:-1], strict=False)]
    assert all(gap > 0.9 for gap in gaps), gaps
    final = fs.cat_file(f"{bucket}/out.ipynb")
    assert final == writes[-1][1]  # the last upload is what the store holds
    saved = nbformat.reads(final.decode(), as_version=4)
    markers = [c for c in saved.cells if "papermill-error-cell-tag" in c.metadata.get("tags", [])]
    assert len(saved.cells) - len(markers) == len(cells)
    if fails:
        assert saved.metadata.papermill.exception is True
        assert markers and "An Exception was encountered" in saved.cells[0].source
    else:
        assert "done" in stdout_of(saved) and not markers
    assert reads > 0 and not torn


def test_server_stopped_mid_run(tmp_path: Path, monkeypatch) -> None:
    server = seaweedfs(tmp_path / "s3").start()
    try:
        fs = s3_fs(server)
        bucket = new_bucket(fs)
        url = f"s3://{bucket}/out.ipynb"
        monkeypatch.setenv("PARAMILL_STORAGE_TIMEOUT", "3")
        cells = [
            ("code", "pid = 0\nport = 0", "parameters"),
            "import time; print('saved before the stop'); time.sleep(1.2)",
            # the notebook itself stops the store, then waits until its port is closed
            "import os, signal, socket\n"
            "os.killpg(pid, signal.SIGTERM)\n"
            "for _ in range(200):\n"
            "    try:\n"
            "        socket.create_connection(('127.0.0.1', port), 0.1).close()\n"
            "    except OSError:\n"
            "        break\n"
            "    time.sleep(0.05)",
            "time.sleep(1.5); print('after the stop')",
            "print('never reached')",
        ]
        result = run(
            make_notebook(cells),
            url,
            {"pid": server.proc.pid, "port": server.port},
            autosave_cell_every=1,
            storage_options={"s3": s3_options(server)},
        )

        assert result.status == "output-error"
        assert isinstance(result.error, OutputError)
        assert url in result.error.evalue and "gave up" in result.error.evalue
        # the save gave up within its 3 s budget (timed by paramill from the save's start)
        gave_up = re.search(r"gave up after \d+ attempts? in ([\d.]+) s", result.error.evalue)
        assert gave_up, result.error.evalue
        took = float(gave_up[1])
        assert took < 3 + 5
        assert "never reached" not in stdout_of(result.notebook)

        # back up on the same data: the object is the last whole autosave, not a fragment
        server.stop()
        server = seaweedfs(tmp_path / "s3", server.ports).start()
        saved = read_remote_nb(s3_fs(server), f"{bucket}/out.ipynb")
        assert "saved before the stop" in stdout_of(saved)
    finally:
        server.stop()


# -- failures named as such ------------------------------------------------------------------


def test_missing_bucket(s3_server: Server, tmp_path: Path, caplog) -> None:
    options = {"s3": s3_options(s3_server)}
    missing = unique("missing")
    src = tmp_path / "in.ipynb"
    src.write_bytes(nb_bytes())

    with pytest.raises(StorageError, match=rf"s3://{missing}/in.ipynb: not found"):
        run(f"s3://{missing}/in.ipynb", None, storage_options=options)

    result = run(src, f"s3://{missing}/out.ipynb", storage_options=options)
    assert result.status == "output-error"
    assert f"s3://{missing}/out.ipynb" in result.error.evalue
    assert "bucket or container does not exist" in result.error.evalue
    assert not retried(caplog)  # a missing bucket is final


def test_bad_credentials(s3_server: Server, azure_server: Server, caplog) -> None:
    fs = s3_fs(s3_server)
    bucket = new_bucket(fs)
    fs.pipe_file(f"{bucket}/in.ipynb", nb_bytes())
    bad_s3 = {"s3": s3_options(s3_server, secret="not-the-secret")}
    bad_az = {
        "az": {
            "connection_string": azure_connection_string(azure_server).replace(
                "AccountKey=Eby8", "AccountKey=AAAA"
            )
        }
    }
    with pytest.raises(StorageError, match=r"access denied \(HTTP 403") as s3_error:
        storage.read_text(f"s3://{bucket}/in.ipynb", bad_s3)
    with pytest.raises(StorageError, match=r"access denied \(HTTP 403") as az_error:
        storage.write_text(f"az://{unique('c')}/out.ipynb", "{}\n", bad_az)

    assert f"s3://{bucket}/in.ipynb" in str(s3_error.value)
    assert "az://" in str(az_error.value)
    assert not retried(caplog)  # a refusal is final: no retries
    assert "gave up" not in str(s3_error.value) + str(az_error.value)


def retried(caplog) -> list[str]:
    """paramill's "<url>: <reason>; retrying in N s" warnings."""
    return [r.getMessage() for r in caplog.records if "; retrying in " in r.getMessage()]


@pytest.mark.parametrize(
    "path, expected",
    [
        ("{name}", "not found (HTTP 404 Not Found)"),
        ("status/403/{name}", "access denied (HTTP 403 Forbidden)"),
        ("status/400/{name}", "HTTP 400 Bad Request"),
    ],
)
def test_http_errors_are_reported_as_such(
    web_server: Server, tmp_path: Path, path: str, expected: str
) -> None:
    url = f"{web_server.url}/{path.format(name=unique('nb'))}.ipynb"
    done = cli(url, "out.ipynb", env=store_free_env(), cwd=tmp_path)
    assert done.returncode == 6, done.stderr
    assert f"{url}: {expected}" in done.stderr
    assert "JSON" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.ipynb").exists()


def test_http_output_is_put(web_server: Server) -> None:
    # papermill writes an http(s) output with PUT; so does paramill (one request, whole body)
    name = unique("put")
    nb = execute_notebook(
        make_notebook(PARAM_CELLS), f"{web_server.url}/{name}/out.ipynb", progress_bar=False
    )
    saved = (web_server.data_dir / name / "out.ipynb").read_text()
    assert saved == nbformat.writes(nb) + "\n"


def test_credentials_in_urls_are_never_shown(web_server: Server, tmp_path: Path) -> None:
    """user:password@ and a query token (a SAS signature) in a URL are used to read, and
    appear in no log line, output metadata, run record, error message (a 404 included) or
    sweep summary."""
    user, token = "PaSsWoRd17", "SeCrEtSiG42"
    host = web_server.url.removeprefix("http://")
    name = unique("nb") + ".ipynb"
    (web_server.data_dir / name).write_bytes(nb_bytes())
    (web_server.data_dir / "p.yaml").write_text("x: 5\n")

    def url(path: str) -> str:
        return f"http://reader:{user}@{host}/{path}?sv=2024-01-01&sig={token}"

    def shown(*texts: str) -> str:
        text = "\n".join(texts)
        assert user not in text and token not in text and "sv=2024" not in text, text
        return text

    env = store_free_env()
    record = tmp_path / "run.json"
    done = cli(
        url(name),
        "out.ipynb",
        "-f",
        url("p.yaml"),
        "--inject-paths",
        "--log-output",
        "--html",
        "report.html",
        "--run-record",
        record,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = (tmp_path / "out.ipynb").read_text()
    shown(done.stdout, done.stderr, out, record.read_text(), (tmp_path / "report.html").read_text())
    assert f"Input Notebook:  http://{host}/{name}\n" in done.stderr
    nb = nbformat.reads(out, as_version=4)
    assert nb.metadata.papermill.input_path == f"http://{host}/{name}"
    assert nb.metadata.papermill.parameters["x"] == 5  # the parameters file was read with them
    assert json.loads(record.read_text())["input_path"] == f"http://{host}/{name}"
    missing = url("missing-" + name)
    done = cli(missing, "out2.ipynb", "--run-record", record, env=env, cwd=tmp_path)
    assert done.returncode == 6
    assert shown(done.stderr).strip().splitlines()[-1] == (
        f"paramill: error: http://{host}/missing-{name}: not found (HTTP 404 Not Found)"
    )
    shown(record.read_text())
    done = cli(url(name), "out3.ipynb", "-f", url("missing.yaml"), env=env, cwd=tmp_path)
    assert done.returncode == 4 and f"http://{host}/missing.yaml: not found" in shown(done.stderr)
    summary = tmp_path / "summary.csv"
    done = cli(
        "sweep",
        missing,
        "o_{x}.ipynb",
        "--grid",
        "x=1,2",
        "--summary",
        summary,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 6 and "not found" in shown(done.stdout, done.stderr)
    assert "not found" in shown(summary.read_text())
    result = run(url(name), None, {"x": 1})
    assert result.ok and result.input_path == f"http://{host}/{name}"


def test_display_url_strips_credentials_and_keeps_the_location() -> None:
    blob, adls = (
        "abs://acct.blob.core.windows.net/c/nb.ipynb",
        "abfs://c@acct.dfs.core.windows.net/n",
    )
    cases = {
        f"{blob}?sv=2024-01-01&ss=b&sig=abc%3D": blob,
        "az://c/dir/nb.ipynb?sv=1&sig=abc": "az://c/dir/nb.ipynb",
        adls: adls,  # container@account, not user-info
        "https://u:p@h:8080/nb.ipynb?token=t#frag": "https://h:8080/nb.ipynb",
        "https://ghp_token@github.com/o/r/blob/main/nb.ipynb": "https://github.com/o/r/blob/main/nb.ipynb",
        "s3://key:secret@bucket/nb.ipynb": "s3://bucket/nb.ipynb",
        "simplecache::https://u:p@h/nb.ipynb?x=1": "simplecache::https://h/nb.ipynb",
        "out/odd?name.ipynb": "out/odd?name.ipynb",
        "-": "-",
    }
    for url, expected in cases.items():
        assert storage.display_url(url) == expected
    assert storage.display_url(None) is None
    text = "ClientResponseError: 404, url='https://u:p@h/nb.ipynb?sig=x' (see https://h/a?b)"
    assert storage.display_urls(text) == (
        "ClientResponseError: 404, url='https://h/nb.ipynb' (see https://h/a)"
    )


def hits(server: Server, name: str) -> int:
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/_hits/{name}") as r:
        return json.loads(r.read())


@pytest.mark.parametrize("kind", ["flaky", "flaky503"])
def test_rate_limited_store_is_retried(web_server: Server, kind: str, caplog) -> None:
    name = unique("nb") + ".ipynb"
    (web_server.data_dir / name).write_bytes(nb_bytes())

    nb = execute_notebook(f"{web_server.url}/{kind}/3/{name}", None, {"x": 4}, progress_bar=False)

    assert "hello world: 8" in stdout_of(nb)
    assert hits(web_server, name) == 4  # three refusals, then the notebook
    code = "429" if kind == "flaky" else "503"
    assert sum(f"HTTP {code}" in r.getMessage() for r in caplog.records) == 3


def test_retries_stop_within_the_time_budget(web_server: Server, monkeypatch) -> None:
    name = unique("nb") + ".ipynb"
    url = f"{web_server.url}/flaky/100000/{name}"
    monkeypatch.setenv("PARAMILL_STORAGE_TIMEOUT", "2")
    started = time.monotonic()

    with pytest.raises(StorageError) as error:
        storage.read_text(url)

    elapsed = time.monotonic() - started
    assert 1.8 < elapsed < 2 + 6  # kept retrying, and stopped at the budget (+ a loaded machine)
    attempts = hits(web_server, name)
    assert attempts >= 3
    assert str(error.value) == (
        f"{url}: gave up after {attempts} attempts in "
        f"{str(error.value).split(' in ')[1].split(' s:')[0]} s: HTTP 429 Too Many Requests"
    )


@pytest.mark.parametrize(
    "url, module, extra",
    [
        ("s3://bucket/in.ipynb", "s3fs", "s3"),
        ("gs://bucket/in.ipynb", "gcsfs", "gcs"),
        ("az://container/in.ipynb", "adlfs", "azure"),
        ("abs://acct.blob.core.windows.net/container/in.ipynb", "adlfs", "azure"),
        ("https://127.0.0.1:9/in.ipynb", "aiohttp", "http"),
    ],
)
def test_missing_extra_names_the_pip_command(
    tmp_path: Path, url: str, module: str, extra: str
) -> None:
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"  # as if the package were not installed
        "from paramill.cli import main\n"
        f"sys.argv = ['paramill', {url!r}, 'out.ipynb']\n"
        "main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env=store_free_env(),
    )
    assert done.returncode == 6, done.stderr
    assert f"pip install 'paramill[{extra}]'" in done.stderr
    assert url in done.stderr


def test_missing_backend_is_a_storage_error_and_a_missing_dependency(tmp_path: Path) -> None:
    # MissingDependencyError is raised for Dask, jupytext, nbconvert and pandas too, so it is no
    # StorageError itself; a missing storage backend is both (and exits 6 like either)
    code = (
        "import sys; sys.modules['s3fs'] = None\n"
        "from paramill import storage\n"
        "from paramill.errors import MissingBackendError, MissingDependencyError, StorageError\n"
        "assert not issubclass(MissingDependencyError, StorageError)\n"
        "try:\n"
        "    storage.read_text('s3://bucket/in.ipynb')\n"
        "except MissingDependencyError as exc:\n"
        "    print(type(exc).__name__, isinstance(exc, StorageError), exc.exit_code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env=store_free_env(),
    )
    assert done.stdout.split() == ["MissingBackendError", "True", "6"], done.stderr


# -- locations and options (no server) -------------------------------------------------------


def test_papermill_spellings() -> None:
    assert normalize_url("abs://acct.blob.core.windows.net/box/a/b.ipynb?sv=1&sig=x") == (
        "az://box/a/b.ipynb",
        {"account_name": "acct", "sas_token": "sv=1&sig=x"},
    )
    with pytest.raises(StorageError, match="abs://ACCOUNT.blob.core.windows.net/CONTAINER/PATH"):
        normalize_url("abs://box/b.ipynb")
    with pytest.raises(StorageError, match="Gen1.*az://CONTAINER/PATH"):
        storage.read_text("adl://store.azuredatalakestore.net/x.ipynb")
    assert normalize_url("https://github.com/org/repo/blob/v1.2/nb/a.ipynb") == (
        "https://raw.githubusercontent.com/org/repo/v1.2/nb/a.ipynb",
        {},
    )
    assert normalize_url("https://github.com/org/repo") == (
        "https://github.com/org/repo",
        {},
    )
    assert storage.protocol_of("simplecache::s3://b/k") == "simplecache"
    assert storage.protocol_of(r"C:\\nb.ipynb") is None
    assert storage.is_local("file:///tmp/x.ipynb") and not storage.is_local("-")


def test_options_scoped_by_protocol(monkeypatch) -> None:
    options = {
        "anon": False,
        "s3": {"endpoint_url": "http://s3.local", "anon": True},
        "gcs": {"project": "p"},
        "abs": {"account_name": "acct"},
    }
    assert storage.options_for("s3", options) == {"anon": True, "endpoint_url": "http://s3.local"}
    assert storage.options_for("s3a", options)["endpoint_url"] == "http://s3.local"
    assert storage.options_for("gs", options) == {"anon": False, "project": "p"}
    assert storage.options_for("az", options) == {"anon": False, "account_name": "acct"}
    assert storage.options_for("https", options) == {"anon": False}
    # from the environment, never over an explicit option
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://env.local")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://gcs.local")
    assert storage.options_for("s3", None) == {"endpoint_url": "http://env.local"}
    assert storage.options_for("s3", options)["endpoint_url"] == "http://s3.local"
    assert storage.options_for("gs", None) == {"token": "anon"}
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-only.local")
    assert storage.options_for("s3", {})["endpoint_url"] == "http://s3-only.local"
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("BOTO3_ENDPOINT_URL", "http://papermill.local")
    assert storage.options_for("s3a", {})["endpoint_url"] == "http://papermill.local"
    assert storage.options_for("s3", {"client_kwargs": {"endpoint_url": "x"}}) == {
        "client_kwargs": {"endpoint_url": "x"}
    }


def test_memory_protocol_round_trip() -> None:
    # any fsspec protocol works through the same path, with no code for it
    storage.write_text("memory://paramill/x.ipynb", '{"a": 1}\n')
    assert storage.read_text("memory://paramill/x.ipynb") == '{"a": 1}\n'
    with pytest.raises(StorageError, match="memory://paramill/none.ipynb: not found"):
        storage.read_text("memory://paramill/none.ipynb")
    import gzip

    storage.write_bytes("memory://paramill/p.yaml.gz", gzip.compress(b"a: 1\n"))
    assert storage.read_text("memory://paramill/p.yaml.gz") == "a: 1\n"
    with pytest.raises(StorageError, match="no storage backend for nosuchproto://"):
        storage.read_text("nosuchproto://x/y")


# -- local files -----------------------------------------------------------------------------


def test_local_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "nb.ipynb"
    versions = ["a" * 3_000_000 + "\n", "b" * 2_000_000 + "\n"]
    storage.write_text(target, versions[0])
    seen: set[int] = set()
    bad: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            text = target.read_text()
            if text in versions:
                seen.add(versions.index(text))
            else:
                bad.append(len(text))

    thread = threading.Thread(target=read)
    thread.start()
    try:
        # keep rewriting until the reader has overlapped with both versions (it may not get
        # scheduled during a fixed number of writes on a busy machine), within a time bound
        deadline = time.monotonic() + 20
        i = 0
        while (i < 40 or len(seen) < 2) and time.monotonic() < deadline:
            storage.write_text(target, versions[i % 2])
            i += 1
            time.sleep(0.001)
    finally:
        stop.set()
        thread.join()
    assert not bad
    assert seen == {0, 1}
    assert [p.name for p in tmp_path.iterdir()] == ["nb.ipynb"]  # no temp file left behind


def test_local_write_creates_parents_and_ends_with_newline(tmp_path: Path) -> None:
    target = tmp_path / "new" / "deep" / "out.ipynb"
    write_notebook(make_notebook(["1"]), f"file://{target}")
    text = target.read_text()
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert nbformat.reads(text, as_version=4).cells[0].source == "1"


def test_local_write_keeps_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.ipynb"
    storage.write_text(target, "one\n")
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # as open() would make it
    target.chmod(0o640)
    storage.write_text(target, "two\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_text() == "two\n"


def test_local_write_failure_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    (tmp_path / "out.ipynb").mkdir()  # cannot be replaced by a file
    with pytest.raises(StorageError, match="out.ipynb: cannot write"):
        storage.write_text(tmp_path / "out.ipynb", "x\n")
    assert [p.name for p in tmp_path.iterdir()] == ["out.ipynb"]
    with pytest.raises(StorageError, match="no such file"):
        storage.read_text(tmp_path / "missing.ipynb")
