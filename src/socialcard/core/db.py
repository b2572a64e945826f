"""Engine, sessions and the declarative base shared by every domain."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from socialcard.core.config import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base; one MetaData with an explicit constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _adapt_datetime(value: datetime) -> str:
    # Raw bulk paths hand datetimes straight to sqlite3; store them as SQLAlchemy does
    # (naive UTC, space-separated) so the ORM reads them back identically.
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ")


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


sqlite3.register_adapter(datetime, _adapt_datetime)
sqlite3.register_adapter(date, date.isoformat)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLite's lower() folds ASCII only; names here are Cyrillic and Kazakh.
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # NORMAL is durable across application crashes in WAL mode; only an OS crash can lose
    # the last transactions, which is the trade-off SQLite documents for WAL.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA cache_size=-131072")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def build_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for SQLite (file under ./var, WAL, foreign keys on) or PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        else:  # an in-memory store has one connection, not a pool to size
            for knob in ("pool_size", "max_overflow", "pool_timeout"):
                kwargs.pop(knob, None)
        connect_args = {"check_same_thread": False, "timeout": 30}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg"))
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process-wide engine for the configured store, its pool bounded (`db.*` settings).

    A checkout that waits longer than `db.pool_timeout` raises sqlalchemy's TimeoutError,
    which the API answers as 503 with Retry-After (core/http.py), never a 30 s queue.
    """
    settings = get_settings()
    return build_engine(
        settings.database_url,
        pool_size=settings.db.pool_size,
        max_overflow=settings.db.max_overflow,
        pool_timeout=settings.db.pool_timeout,
    )


@lru_cache(maxsize=1)
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def new_session() -> Session:
    """A new session bound to the configured engine."""
    return _session_factory()()


def add_before_commit(session: Session, key: str, hook: Callable[[Session], None]) -> None:
    """Run `hook` once, just before this session's unit of work commits (keyed, so idempotent).

    Writes that every request makes (the audit log) are deferred to the commit so that the
    store's write lock is taken and released in one step: on SQLite, a write lock held while a
    request waits for a worker thread would stall every other request.
    """
    session.info.setdefault("before_commit", {})[key] = hook


def run_before_commit(session: Session) -> None:
    """Run and clear the hooks registered with add_before_commit."""
    hooks = session.info.pop("before_commit", {})
    for hook in hooks.values():
        hook(session)


@contextmanager
def session_scope(session: Session | None = None) -> Iterator[Session]:
    """Commit on success, roll back on any exception. Services never commit; jobs use this."""
    own = session is None
    current = new_session() if session is None else session
    try:
        yield current
        run_before_commit(current)
        current.commit()
    except BaseException:
        current.rollback()
        raise
    finally:
        if own:
            current.close()


def reset_engine_cache() -> None:
    """Forget the cached engine and session factory (tests and CLI --database switch)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    _session_factory.cache_clear()


def is_sqlite(session_or_engine: Session | Engine) -> bool:
    """True when the bound store is SQLite."""
    bind = (
        session_or_engine.get_bind()
        if isinstance(session_or_engine, Session)
        else session_or_engine
    )
    return bind.dialect.name == "sqlite"
