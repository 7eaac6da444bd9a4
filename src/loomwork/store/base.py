"""The store: SQLAlchemy Core over SQLite or PostgreSQL, with driver errors translated at this edge.

Every operation is a function of a :class:`Tx` (one transaction). The engine batches many such operations into
one transaction (group commit, see ``engine/database.py``); the API runs them one at a time. Nothing above this
package sees a ``Connection``, a ``Row`` or SQL.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import event, exc

from ..errors import StoreError, StoreUnavailable
from .migrations import apply_migrations

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Notification topics. ``queued``: a run can be claimed. ``outcome``: an outcome arrived for a run that may be
#: executing. ``cancel``: a run was cancelled. ``timer``: a timer was set. ``finished``: a run ended.
Notification = tuple[str, str]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_loads(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


@dataclass(slots=True)
class Tx:
    """One open transaction, plus the notifications to publish once it commits."""

    conn: sa.Connection
    dialect: str
    notifications: list[Notification] = field(default_factory=list)

    def notify(self, topic: str, payload: str = "") -> None:
        self.notifications.append((topic, payload))

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"


Listener = Callable[[list[Notification]], None]


class Store:
    """A database holding Loomwork's state. Thread-safe: each call takes its own connection."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 5) -> None:
        self.url = _normalise_url(url)
        self.dialect = sa.make_url(self.url).get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"unsupported database {self.dialect!r}: use sqlite:/// or postgresql://")
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()
        kwargs: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": _json_loads}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            kwargs["pool_size"] = pool_size
            kwargs["poolclass"] = sa.QueuePool
        else:
            kwargs["pool_size"] = pool_size
            kwargs["pool_pre_ping"] = True
        self.engine = sa.create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine, sqlite_synchronous.upper())

    # -- lifecycle ----------------------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        with translate_errors("migrate"):
            return [f"{m.version:04d}_{m.name}" for m in apply_migrations(self.engine)]

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions -------------------------------------------------------------------------------------
    def write(self, op: Callable[..., T], *args: Any) -> T:
        """Run one operation in its own write transaction and publish its notifications."""
        result: T = self.write_batch([(op, args)])[0]
        return result

    def write_batch(
        self, ops: list[tuple[Callable[..., Any], tuple[Any, ...]]], conn: sa.Connection | None = None
    ) -> list[Any]:
        """Run several operations in one transaction (one commit, one fsync). All or nothing.

        ``conn`` lets a dedicated writer keep its connection instead of checking one out per batch.
        """
        results, notifications = self.commit_batch(ops, conn)
        self.publish(notifications)
        return results

    def commit_batch(
        self, ops: list[tuple[Callable[..., Any], tuple[Any, ...]]], conn: sa.Connection | None = None
    ) -> tuple[list[Any], list[Notification]]:
        """``write_batch`` without publishing: the caller publishes the notifications it gets back."""
        with translate_errors("write"), contextlib.ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(self.engine.connect()).execution_options(loomwork_write=True)
            tx = Tx(conn, self.dialect)
            with conn.begin():
                results = [op(tx, *args) for op, args in ops]
                if tx.is_postgres and tx.notifications:
                    _pg_notify(tx)
        return results, tx.notifications

    def writer_connection(self) -> sa.Connection:
        """A connection for a long-lived writer thread; the caller closes it."""
        with translate_errors("connect"):
            return self.engine.connect().execution_options(loomwork_write=True)

    def read(self, op: Callable[..., T], *args: Any) -> T:
        with translate_errors("read"), self.engine.connect() as conn, conn.begin():
            return op(Tx(conn, self.dialect), *args)

    # -- notifications ------------------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Called after each commit of this process with that commit's notifications (any thread)."""
        with self._listeners_lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._listeners_lock, contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def publish(self, notifications: list[Notification], *, exclude: Listener | None = None) -> None:
        """Hand a commit's notifications to this process's listeners (but ``exclude``)."""
        if not notifications:
            return
        with self._listeners_lock:
            listeners = [listener for listener in self._listeners if listener != exclude]
        for listener in listeners:
            listener(notifications)

    def ping(self) -> None:
        with translate_errors("ping"), self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")


def _pg_notify(tx: Tx) -> None:
    payload = ";".join(f"{topic}:{value}" for topic, value in dict.fromkeys(tx.notifications))
    # A NOTIFY payload is limited to 8000 bytes; past that each topic collapses to "*" (anything changed).
    if len(payload) > 7000:
        payload = ";".join(f"{topic}:*" for topic in dict.fromkeys(t for t, _ in tx.notifications))
    tx.conn.execute(sa.text("SELECT pg_notify('loomwork', :payload)"), {"payload": payload})


def parse_notify_payload(payload: str) -> list[Notification]:
    out: list[Notification] = []
    for part in payload.split(";"):
        topic, _, value = part.partition(":")
        if topic:
            out.append((topic, value))
    return out


def _normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _configure_sqlite(engine: sa.Engine, synchronous: str) -> None:
    if synchronous not in ("FULL", "NORMAL", "OFF", "EXTRA"):
        raise StoreError(f"sqlite synchronous must be FULL, NORMAL, EXTRA or OFF, not {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so that writers can ask for BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that upgrades later can deadlock.
        immediate = conn.get_execution_options().get("loomwork_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    try:
        yield
    except exc.OperationalError as e:
        raise StoreUnavailable(f"database unavailable during {what}: {e.orig}") from e
    except exc.DBAPIError as e:
        raise StoreError(f"database error during {what}: {e.orig}") from e
    except exc.SQLAlchemyError as e:
        raise StoreError(f"database error during {what}: {e}") from e
