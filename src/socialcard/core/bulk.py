"""Fast bulk writes on both stores: COPY on PostgreSQL, executemany on SQLite.

They run on the caller's connection and inside its transaction, so a bulk load commits or
rolls back with the rest of the unit of work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert, text
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


def insert_returning_ids(
    session: Session, table: Table, rows: Sequence[dict[str, Any]]
) -> list[int]:
    """Insert rows (each with the same keys) into a table with an `id` serial key; their ids in
    row order. PostgreSQL: the ids are drawn from the table's sequence in one query and the rows
    sent by COPY; SQLite: one executemany of a multi-row INSERT ... RETURNING."""
    if not rows:
        return []
    if session.get_bind().dialect.name != "postgresql":
        stmt = _RETURNING_IDS.get(table.name)
        if stmt is None:
            stmt = _RETURNING_IDS[table.name] = insert(table).returning(
                table.c.id, sort_by_parameter_order=True
            )
        return list(session.execute(stmt, list(rows)).scalars())
    ids = list(
        session.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table.name, "n": len(rows)},
        ).scalars()
    )
    columns = list(rows[0])
    copy_rows(
        session,
        table.name,
        ["id", *columns],
        ([row_id, *(row[c] for c in columns)] for row_id, row in zip(ids, rows, strict=True)),
    )
    return ids


_RETURNING_IDS: dict[str, Any] = {}  # statements built once per table


def _is_postgres(raw: Any) -> bool:
    return type(raw).__module__.startswith("psycopg")
