"""Run history: one table, in SQLite (default) or PostgreSQL, through SQLAlchemy 2.

Several server processes may share one PostgreSQL database: a worker claims a queued run with
``SELECT ... FOR UPDATE SKIP LOCKED`` and marks it running in the same transaction, so no run
is taken twice. SQLite has one writer at a time; there the claim is a conditional UPDATE
(``... WHERE status = 'queued'``) whose row count says who won.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    Integer,
    String,
    Text,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

STATUSES = ("queued", "running", "completed", "failed", "cancelled")
FINAL = ("completed", "failed", "cancelled")


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "paramill_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)  # submission order (µs clock)
    notebook: Mapped[str] = mapped_column(String(1024), index=True)
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    error: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    records: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created: Mapped[float] = mapped_column(Float)
    started: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished: Mapped[float | None] = mapped_column(Float, nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    who: Mapped[str] = mapped_column(String(256), default="")
    server: Mapped[str | None] = mapped_column(String(256), nullable=True)  # who ran it
    cancel_requested: Mapped[int] = mapped_column(Integer, default=0)
    output: Mapped[str | None] = mapped_column(Text, nullable=True)  # output notebook URL
    cells_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cells_done: Mapped[int | None] = mapped_column(Integer, nullable=True)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def as_json(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "notebook": run.notebook,
        "parameters": run.parameters or {},
        "status": run.status,
        "error": run.error,
        "records": run.records or {},
        "created": iso(run.created),
        "started": iso(run.started),
        "finished": iso(run.finished),
        "duration": run.duration,
        "who": run.who,
        "cells_done": run.cells_done,
        "cells_total": run.cells_total,
    }


def database_url(db: str | None, root: str) -> str:
    """``--db``: a SQLAlchemy URL or a SQLite file; default ``ROOT/.paramill/serve.db``."""
    if db is None:
        folder = os.path.join(root, ".paramill")
        os.makedirs(folder, exist_ok=True)
        return "sqlite:///" + os.path.join(folder, "serve.db")
    if db.startswith("postgresql://"):  # psycopg 3 is what [postgres] installs
        return "postgresql+psycopg://" + db[len("postgresql://") :]
    if "://" in db:
        return db
    return "sqlite:///" + os.path.abspath(db)


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine = create_engine(url, **kwargs)
        if self.sqlite:

            @event.listens_for(self.engine, "connect")
            def _pragmas(conn: Any, _record: Any) -> None:
                cur = conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

        Base.metadata.create_all(self.engine)
        self.session = sessionmaker(self.engine, expire_on_commit=False)
        self.server_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def close(self) -> None:
        self.engine.dispose()

    # -- writes ------------------------------------------------------------------------------
    def submit(self, notebook: str, parameters: dict, who: str, run_id: str | None = None) -> Run:
        now = time.time()
        run = Run(
            id=run_id or uuid.uuid4().hex,
            seq=time.time_ns() // 1000,
            notebook=notebook,
            parameters=json.loads(json.dumps(parameters, default=str)),
            status="queued",
            created=now,
            who=who,
            cancel_requested=0,
        )
        with self.session() as s, s.begin():
            s.add(run)
        return run

    def claim(self, output: Callable[[str], str] | None = None) -> Run | None:
        """The oldest queued run, now marked running by this server (with ``output(id)`` as its
        output location); None when none is queued."""
        with self.session() as s, s.begin():
            query = select(Run).where(Run.status == "queued").order_by(Run.seq).limit(1)
            if not self.sqlite:
                query = query.with_for_update(skip_locked=True)
            run = s.scalars(query).first()
            if run is None:
                return None
            if self.sqlite:
                won = s.execute(
                    update(Run)
                    .where(Run.id == run.id, Run.status == "queued")
                    .values(status="running", started=time.time(), server=self.server_id,
                            output=output(run.id) if output else None)
                ).rowcount
                if not won:
                    return None
                s.refresh(run)
            else:
                run.status, run.started, run.server = "running", time.time(), self.server_id
                run.output = output(run.id) if output else None
            return run

    def queued_count(self) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).where(Run.status == "queued")) or 0

    def update(self, run_id: str, **values: Any) -> None:
        with self.session() as s, s.begin():
            s.execute(update(Run).where(Run.id == run_id).values(**values))

    def finish(self, run_id: str, status: str, **values: Any) -> Run | None:
        now = time.time()
        with self.session() as s, s.begin():
            run = s.get(Run, run_id)
            if run is None:
                return None
            run.status, run.finished = status, now
            run.duration = round(now - run.started, 6) if run.started else None
            for key, value in values.items():
                setattr(run, key, value)
        return run

    def cancel(self, run_id: str) -> str | None:
        """Cancel a queued run now; ask a running one to stop. The run's status after, or None."""
        now = time.time()
        with self.session() as s, s.begin():
            won = s.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == "queued")
                .values(status="cancelled", finished=now, cancel_requested=1,
                        error={"cell_index": None, "ename": "RunCancelledError",
                               "evalue": "cancelled before it started"})
            ).rowcount
            if not won:
                s.execute(
                    update(Run)
                    .where(Run.id == run_id, Run.status == "running")
                    .values(cancel_requested=1)
                )
            run = s.get(Run, run_id)
            return run.status if run else None

    def cancel_requested(self, run_ids: list[str]) -> list[str]:
        if not run_ids:
            return []
        with self.session() as s:
            return list(
                s.scalars(select(Run.id).where(Run.id.in_(run_ids), Run.cancel_requested == 1))
            )

    def mark_stale(self) -> int:
        """At start: runs left running by a server that stopped become failed "server stopped".

        Another server process may share the database and be running them: only runs of
        servers on this host whose process is gone are marked (a server on another host marks
        its own at its next start).
        """
        now = time.time()
        error = {"cell_index": None, "ename": "ServerStopped", "evalue": "server stopped"}
        with self.session() as s, s.begin():
            runs = list(s.scalars(select(Run).where(Run.status == "running")))
            count = 0
            for run in runs:
                if not _server_gone(run.server):
                    continue
                run.status, run.finished, run.error = "failed", now, error
                run.duration = round(now - run.started, 6) if run.started else None
                count += 1
            return count

    # -- reads -------------------------------------------------------------------------------
    def get(self, run_id: str) -> Run | None:
        with self.session() as s:
            return s.get(Run, run_id)

    def list(
        self,
        notebook: str | None = None,
        status: str | None = None,
        limit: int = 100,
        ids: list[str] | None = None,
    ) -> list[Run]:
        query = select(Run).order_by(Run.seq.desc()).limit(max(1, min(limit, 1000)))
        if notebook:
            query = query.where(Run.notebook == notebook)
        if status:
            query = query.where(Run.status == status)
        if ids:
            query = query.where(Run.id.in_(ids))
        with self.session() as s:
            return list(s.scalars(query))


def _server_gone(server: str | None) -> bool:
    if not server:
        return True
    host, _, rest = server.partition(":")
    if host != socket.gethostname():
        return False  # another machine's server: it marks its own at its next start
    pid = int(rest.split(":")[0] or 0)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
