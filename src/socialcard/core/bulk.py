"""Fast bulk writes on both stores: COPY on PostgreSQL, executemany on SQLite.

They run on the caller's connection and inside its transaction, so a bulk load commits or
rolls back with the rest of the unit of work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session


def dbapi_connection(session_or_connection: Session | Connection) -> Any:
    """The DB-API connection under a session or connection (same transaction)."""
    connection = (
        session_or_connection.connection()
        if isinstance(session_or_connection, Session)
        else session_or_connection
    )
    return connection.connection.driver_connection


def copy_rows(
    session_or_connection: Session | Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """Insert rows into a table: COPY FROM STDIN on PostgreSQL, executemany on SQLite."""
    raw = dbapi_connection(session_or_connection)
    column_list = ", ".join(columns)
    if _is_postgres(raw):
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    placeholders = ", ".join("?" for _ in columns)
    cursor = raw.cursor()
    try:
        cursor.executemany(f"INSERT INTO {table} ({column_list}) VALUES ({placeholders})", rows)
    finally:
        cursor.close()


def _is_postgres(raw: Any) -> bool:
    return type(raw).__module__.startswith("psycopg")
