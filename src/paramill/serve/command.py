"""``paramill serve FOLDER``: the click command. Imports nothing heavy until it runs, so
``paramill --help`` stays fast (fastapi, uvicorn and SQLAlchemy load only here)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import click


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("folder", default=".", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8686, show_default=True, type=int, help="Port (0: any free).")
@click.option("--token", envvar="PARAMILL_SERVE_TOKEN",
              help="Access token (env PARAMILL_SERVE_TOKEN); generated when not given.")
@click.option("--db", help="Run history: a SQLite file path or a database URL "
              "(postgresql+psycopg://...); default FOLDER/.paramill/serve.db.")
@click.option("--output-dir", help="Where output notebooks and reports go (any fsspec URL); "
              "default FOLDER/.paramill/runs.")
@click.option("--workers", default=2, show_default=True, type=int,
              help="Runs executed at a time by this server (on warm kernels).")
@click.option("--timeout", default=3600.0, show_default=True, type=float,
              help="Seconds a run may take (a notebook's metadata paramill.timeout overrides).")
@click.option("--queue-limit", default=1000, show_default=True, type=int,
              help="Queued runs beyond which POST /api/runs answers 429.")
@click.option("--stop-timeout", default=10.0, show_default=True, type=float,
              help="On SIGTERM, seconds running runs get to finish before they are cancelled.")
@click.option("--secret-env", multiple=True, metavar="NAME=ENVVAR",
              help="A secret from this process's environment, given only to notebooks whose "
              "parameters cell declares NAME; never shown or stored.")
@click.option("--storage-option", "storage_option", multiple=True, metavar="KEY=VALUE",
              help="fsspec storage option for --output-dir URLs (as in `paramill run`).")
@click.option("--fork-server/--no-fork-server", default=True, show_default=True,
              help="Fork python kernels from a pre-imported server (fast warm kernels).")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local",
              show_default=True, help="Where runs execute: this server's warm kernels, or a "
              "Dask cluster (--scheduler; a local cluster when not given).")
@click.option("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def serve(folder: str, host: str, port: int, token: str | None, db: str | None,
          output_dir: str | None, workers: int, timeout: float, queue_limit: int,
          stop_timeout: float, secret_env: tuple[str, ...], storage_option: tuple[str, ...],
          fork_server: bool, executor: str, scheduler: str | None, log_level: str) -> None:
    """Serve every notebook under FOLDER as a web form and a JSON API."""
    import secrets as pysecrets

    _setup_logging(log_level)
    uvicorn = _import_serve_deps()
    from .app import create_app
    from .notebooks import Catalog
    from .service import Service, default_output_dir

    root = os.path.realpath(folder)
    secrets, storage_options, store = _open(root, db, secret_env, storage_option)
    token = token or pysecrets.token_hex(24)
    out = output_dir or default_output_dir(root)
    if "://" not in out:
        os.makedirs(out, exist_ok=True)
    with _exit_on_error(f"--scheduler {scheduler}"):
        service = Service(
            Catalog(root, list(secrets)), store, workers=workers, output_dir=out,
            secrets=secrets, timeout=timeout, queue_limit=queue_limit,
            storage_options=storage_options, fork_server=fork_server,
            stop_timeout=stop_timeout, executor=executor, scheduler=scheduler,
        )
    config = uvicorn.Config(create_app(service, token), host=host, port=port,
                            log_level="warning", timeout_graceful_shutdown=3, access_log=False)
    service.start()
    try:
        _listen(uvicorn.Server(config), config, root, host, token)
    finally:
        service.stop()
        store.close()


def _setup_logging(log_level: str) -> None:
    import logging

    logging.basicConfig(level=log_level, format="%(asctime)s %(name)s %(message)s",
                        stream=sys.stderr)
    logging.getLogger("paramill").setLevel(log_level)


def _import_serve_deps() -> Any:
    """uvicorn, once fastapi and SQLAlchemy are known to be there too; exit 6 if not."""
    try:
        import fastapi  # noqa: F401
        import sqlalchemy  # noqa: F401
        import uvicorn
    except ImportError as exc:
        click.echo(f"paramill: error: serve needs {exc.name}: pip install 'paramill[serve]'",
                   err=True)
        sys.exit(6)
    return uvicorn


def _open(root: str, db: str | None, secret_env: tuple[str, ...],
          storage_option: tuple[str, ...]) -> tuple[dict[str, str], dict[str, Any] | None, Any]:
    """The secrets (their variables dropped from os.environ), storage options and run store."""
    from ..errors import ParamillError
    from ..secrets import from_environment, parse_secret_env
    from .store import Store, database_url

    try:
        pairs = parse_secret_env(secret_env)
        secrets = from_environment(pairs)
        for envvar in pairs.values():  # kernels inherit this environment: keep values out
            os.environ.pop(envvar, None)
        return secrets, _storage_options(storage_option), Store(database_url(db, root))
    except ParamillError as exc:
        click.echo(f"paramill: error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a database that cannot be reached or opened
        from ..storage import display_url

        click.echo(f"paramill: error: database {display_url(db or '')}: "
                   f"{str(exc).splitlines()[0]}", err=True)
        sys.exit(6)


@contextlib.contextmanager
def _exit_on_error(what: str) -> Iterator[None]:
    """A ParamillError exits with its code; an OSError (e.g. a Dask scheduler that cannot
    be reached) exits 6 naming ``what``."""
    from ..errors import ParamillError

    try:
        yield
    except ParamillError as exc:
        click.echo(f"paramill: error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        click.echo(f"paramill: error: {what}: {exc}", err=True)
        sys.exit(6)


def _listen(server: Any, config: Any, root: str, host: str, token: str) -> None:
    """Bind, print the URL with the token, and serve until SIGTERM/SIGINT."""
    import asyncio
    import signal
    import socket

    # uvicorn re-raises the SIGTERM/SIGINT it handled once it has shut down; with these
    # no-op handlers in place that returns here, so running runs are stopped and marked
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    config.load()
    sockets = [config.bind_socket()]
    # accepted connections inherit it: without it a keep-alive client waits ~40 ms per
    # response (the response's second write held by Nagle until the client's delayed ACK)
    sockets[0].setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    real_port = sockets[0].getsockname()[1]
    click.echo(f"paramill serve: {root}", err=True)
    click.echo(f"    http://{host}:{real_port}/?token={token}", err=True)
    asyncio.run(server.serve(sockets=sockets))


def _storage_options(items: tuple[str, ...]) -> dict[str, Any] | None:
    if not items:
        return None
    from ..cli.values import parse_storage_options

    return parse_storage_options(items)
