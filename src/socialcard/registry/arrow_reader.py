"""Whole-registry reads straight into Arrow over ADBC: several statements at once, each on its
own connection; on SQLite in a child process that imports nothing but this module.

Why a child on SQLite: the ADBC driver links its own copy of SQLite, and two copies in one
process break SQLite's POSIX locks (closing the driver's file drops the application's locks
and can delete the WAL under its connections: "locking protocol", "disk I/O error", commits
other processes never see). The child hands the tables back as Arrow IPC files in shared
memory, mapped without a copy. It imports only PyArrow and the driver (about 0.3 s), not the
application (over 2 s), because every whole-registry read pays its start.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.ipc as ipc
from sqlalchemy.engine import make_url

# As long as the application's own connections wait for a lock (core/db.py).
SQLITE_BUSY_MS = 30_000
# ADBC's SQLite driver infers a column's type from the first batch: a batch of NULLs reads
# as int64 and a later text fails the read, so one batch holds a whole statement's rows.
_SQLITE_BATCH_ROWS = 1 << 24


def is_sqlite(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "sqlite"


def connect(database_url: str) -> Any:
    """An ADBC connection (read-only on SQLite) to the application's database."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        import adbc_driver_sqlite.dbapi

        if not url.database or url.database == ":memory:":
            return adbc_driver_sqlite.dbapi.connect(":memory:")
        # Read-only: a read-write connection of the driver's own SQLite that closes last (in
        # its library's view) checkpoints and deletes the WAL under the app's connections.
        path = quote(str(Path(url.database).resolve()))
        connection = adbc_driver_sqlite.dbapi.connect(f"file:{path}?mode=ro")
        # Wait for locks as the application's connections do. The first connection to open a
        # WAL database nobody has open rebuilds its index from the WAL; without a busy handler
        # the other readers failed at once with "database is locked" meanwhile.
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            cursor.fetchall()
        return connection
    import adbc_driver_postgresql.dbapi

    uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return adbc_driver_postgresql.dbapi.connect(uri)


def fetch(database_url: str, sql: str) -> pa.Table:
    """One statement's rows as an Arrow table (committed data, as the database types them)."""
    with connect(database_url) as connection, connection.cursor() as cursor:
        if is_sqlite(database_url):
            cursor.adbc_statement.set_options(
                **{"adbc.sqlite.query.batch_rows": str(_SQLITE_BATCH_ROWS)}
            )
        cursor.execute(sql)
        return cursor.fetch_arrow_table()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with `schema`'s columns and types (SQLite hands dates back as text, and types
    an all-NULL column as int64)."""
    columns = []
    for field in schema:
        column = table.column(field.name)
        if column.type != field.type:
            if column.null_count == len(column):
                column = pa.chunked_array([pa.nulls(len(column), field.type)])
            elif pa.types.is_date32(field.type) and pa.types.is_string(column.type):
                column = column.cast(pa.timestamp("s")).cast(pa.date32())
            else:
                column = column.cast(field.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def fetch_all(database_url: str, statements: Sequence[tuple[str, pa.Schema]]) -> list[pa.Table]:
    """Each statement's rows with its schema, the statements run at once on connections of
    their own (on SQLite in a child process, see the module's docstring)."""
    if is_sqlite(database_url) and make_url(database_url).database not in (None, "", ":memory:"):
        return _fetch_in_child(database_url, statements)
    return _fetch_here(database_url, statements)


def _fetch_here(database_url: str, statements: Sequence[tuple[str, pa.Schema]]) -> list[pa.Table]:
    def one(statement: tuple[str, pa.Schema]) -> pa.Table:
        # Casting is PyArrow's work without the GIL: each statement's thread casts its own.
        return conform(fetch(database_url, statement[0]), statement[1])

    if len(statements) == 1:
        return [one(statements[0])]
    with ThreadPoolExecutor(len(statements)) as pool:
        return list(pool.map(one, statements))


def _fetch_in_child(
    database_url: str, statements: Sequence[tuple[str, pa.Schema]]
) -> list[pa.Table]:
    # In shared memory where there is one: the files are written once and mapped, not read.
    # (TemporaryDirectory makes a private, randomly named folder there.)
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108
    with tempfile.TemporaryDirectory(prefix="socialcard-read-", dir=shm) as folder:
        paths = [str(Path(folder) / f"{i}.arrow") for i in range(len(statements))]
        # The statements go through stdin (a whole-registry statement can be long), each with
        # its schema in Arrow's own serialization.
        schemas = [base64.b64encode(s.serialize().to_pybytes()).decode() for _, s in statements]
        request = "\0".join([database_url, *paths, *(sql for sql, _ in statements), *schemas])
        completed = subprocess.run(  # noqa: S603 (this interpreter, this module)
            [sys.executable, "-m", __name__, str(len(statements))],
            input=request,
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"reading the registry failed: {completed.stderr.strip()[-2000:]}")
        return [_read_ipc(path) for path in paths]


def _read_ipc(path: str) -> pa.Table:
    with pa.memory_map(path) as source:
        return ipc.open_file(source).read_all()


def _write_ipc(table: pa.Table, path: str) -> None:
    with pa.OSFile(path, "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _main(argv: list[str]) -> int:
    """The child of `_fetch_in_child`: argv is the number of statements; stdin holds the URL,
    the output files, the statements and their schemas, separated by NUL characters."""
    count = int(argv[0])
    parts = sys.stdin.read().split("\0")
    if len(parts) != 1 + 3 * count:
        raise SystemExit("expected a URL, then files, statements and schemas, as many of each")
    database_url, paths = parts[0], parts[1 : 1 + count]
    sqls, encoded = parts[1 + count : 1 + 2 * count], parts[1 + 2 * count :]
    schemas = [ipc.read_schema(pa.py_buffer(base64.b64decode(text))) for text in encoded]
    tables = _fetch_here(database_url, list(zip(sqls, schemas, strict=True)))
    for table, path in zip(tables, paths, strict=True):
        _write_ipc(table, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
