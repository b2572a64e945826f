"""Columnar snapshots of the registry (Arrow tables) for the rules engine and analytics.

Two shapes, as the rules engine's input contract: `person` (one row per person with their
current family and role) and `fact` (live, non-superseded facts). The whole-registry path reads
over ADBC straight into Arrow; the one-family path reads through the caller's session, so it sees
the caller's transaction.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.ipc as ipc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from socialcard.registry import repository
from socialcard.rules.engine import synthetic as engine_input

# The rules engine owns its input contract; the registry produces exactly that shape.
PERSON_SCHEMA = engine_input.PERSON_SCHEMA
FACT_SCHEMA = engine_input.FACT_SCHEMA
LINK_SCHEMA = engine_input.LINK_SCHEMA


def _conform(table: Any, schema: pa.Schema) -> pa.Table:
    """Cast to the contract's schema (SQLite hands dates back as text)."""
    columns = []
    for field in schema:
        column = table.column(field.name)
        if column.type != field.type:
            if column.null_count == len(column):
                # SQLite types an all-NULL column as int64 (e.g. nobody has died yet).
                column = pa.chunked_array([pa.nulls(len(column), field.type)])
            elif pa.types.is_date32(field.type) and pa.types.is_string(column.type):
                column = column.cast(pa.timestamp("s")).cast(pa.date32())
            else:
                column = column.cast(field.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _adbc_connect(database_url: str) -> Any:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        import adbc_driver_sqlite.dbapi

        if not url.database or url.database == ":memory:":
            return adbc_driver_sqlite.dbapi.connect(":memory:")
        # Read-only: the driver links its own SQLite, and a read-write connection that closes
        # last (in its library's view) checkpoints and deletes the WAL under the app's own
        # connections, which then write to an unlinked file and corrupt the database.
        path = quote(str(Path(url.database).resolve()))
        return adbc_driver_sqlite.dbapi.connect(f"file:{path}?mode=ro")
    import adbc_driver_postgresql.dbapi

    uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return adbc_driver_postgresql.dbapi.connect(uri)


def registry_snapshot(database_url: str) -> tuple[pa.Table, pa.Table]:
    """The whole registry as (person, fact) Arrow tables, read over ADBC (committed data).

    On SQLite the read runs in a child process: the ADBC driver links its own copy of SQLite,
    and two copies in one process break SQLite's POSIX locks (closing the driver's file drops
    the application's locks and can delete the WAL under its connections: "locking protocol",
    "disk I/O error", commits other processes never see). The child hands the tables back as
    Arrow IPC files, memory-mapped without a copy.
    """
    if make_url(database_url).get_backend_name() == "sqlite":
        return _read_in_child(database_url)
    return _read_adbc(database_url)


# The fact table is read in this many id ranges, in parallel with the persons (the read is
# SQLite's or PostgreSQL's own work per connection: three connections use both cores).
FACT_PARTS = 2
# ADBC's SQLite driver infers a column's type from the first batch: a batch of NULLs reads
# as int64 and a later text fails the read, so one batch holds a whole part.
_SQLITE_BATCH_ROWS = 1 << 24


def _fetch(database_url: str, sql: str) -> pa.Table:
    with _adbc_connect(database_url) as connection, connection.cursor() as cursor:
        if make_url(database_url).get_backend_name() == "sqlite":
            cursor.adbc_statement.set_options(
                **{"adbc.sqlite.query.batch_rows": str(_SQLITE_BATCH_ROWS)}
            )
        cursor.execute(sql)
        return cursor.fetch_arrow_table()


def _read_adbc(database_url: str) -> tuple[pa.Table, pa.Table]:
    bounds = _fetch(database_url, "SELECT min(id) AS lo, max(id) AS hi FROM registry_fact")
    low, high = (bounds.column(name)[0].as_py() for name in ("lo", "hi"))
    queries = [repository.SNAPSHOT_PERSON_SQL]
    if low is None:
        queries.append(repository.SNAPSHOT_FACT_SQL)
    else:
        step = (int(high) - int(low)) // FACT_PARTS + 1
        queries += [
            f"{repository.SNAPSHOT_FACT_SQL} AND id >= {int(low) + i * step}"
            f" AND id < {int(low) + (i + 1) * step}"
            for i in range(FACT_PARTS)
        ]
    with ThreadPoolExecutor(len(queries)) as pool:
        tables = list(pool.map(lambda sql: _fetch(database_url, sql), queries))
    persons = _conform(tables[0], PERSON_SCHEMA)
    facts = pa.concat_tables([_conform(t, FACT_SCHEMA) for t in tables[1:]])
    return persons, facts


def _read_in_child(database_url: str) -> tuple[pa.Table, pa.Table]:
    # In shared memory where there is one: the files are written once and mapped, not read.
    # (TemporaryDirectory makes a private, randomly named folder there.)
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108
    with tempfile.TemporaryDirectory(prefix="socialcard-snapshot-", dir=shm) as folder:
        paths = [str(Path(folder) / "person.arrow"), str(Path(folder) / "fact.arrow")]
        completed = subprocess.run(  # noqa: S603 (this interpreter, this module)
            [sys.executable, "-m", __name__, database_url, *paths],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"reading the registry failed: {completed.stderr.strip()[-2000:]}")
        return _read_ipc(paths[0]), _read_ipc(paths[1])


def _read_ipc(path: str) -> pa.Table:
    with pa.memory_map(path) as source:
        return ipc.open_file(source).read_all()


def _write_ipc(table: pa.Table, path: str) -> None:
    with pa.OSFile(path, "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def family_snapshot(session: Session, family_id: int) -> tuple[pa.Table, pa.Table]:
    """One family's current members and their live facts as (person, fact) Arrow tables."""
    person_table, fact_table, _ = family_snapshot_with_languages(session, family_id)
    return person_table, fact_table


def family_snapshot_with_languages(
    session: Session, family_id: int
) -> tuple[pa.Table, pa.Table, dict[int, str]]:
    """`family_snapshot` and each member's language, read in the same statements (the online
    eligibility check needs the head's language; one round trip fewer per request)."""
    persons, facts = repository.snapshot_rows_for_family(session, family_id)
    width = len(PERSON_SCHEMA.names)
    person_table = pa.Table.from_pylist(
        [dict(zip(PERSON_SCHEMA.names, row[:width], strict=True)) for row in persons],
        schema=PERSON_SCHEMA,
    )
    fact_table = pa.Table.from_pylist(
        [dict(zip(FACT_SCHEMA.names, row, strict=True)) for row in facts], schema=FACT_SCHEMA
    )
    languages = {int(row[0]): str(row[width]) for row in persons}  # type: ignore[call-overload]
    return person_table, fact_table, languages


def registry_snapshot_in_session(session: Session) -> tuple[pa.Table, pa.Table]:
    """The whole registry through the session (sees its transaction; for small stores)."""
    connection = session.connection()
    persons = connection.exec_driver_sql(repository.SNAPSHOT_PERSON_SQL).all()
    facts = connection.exec_driver_sql(repository.SNAPSHOT_FACT_SQL).all()
    return _table(persons, PERSON_SCHEMA), _table(facts, FACT_SCHEMA)


def _table(rows: Sequence[Sequence[object]], schema: pa.Schema) -> pa.Table:
    dates = [i for i, f in enumerate(schema) if pa.types.is_date32(f.type)]
    records = []
    for row in rows:
        values = list(row)
        for i in dates:  # SQLite hands dates back as text through the raw driver
            value = values[i]
            if isinstance(value, str):
                values[i] = date.fromisoformat(value[:10])
        records.append(dict(zip(schema.names, values, strict=True)))
    return pa.Table.from_pylist(records, schema=schema)


# --- parent-child links (the engine's `link` input) ------------------------------------------


def registry_links(database_url: str) -> pa.Table:
    """Every live parent-child link with the child's life dates, read over ADBC (committed
    data); on SQLite in a child process, as `registry_snapshot`."""
    if make_url(database_url).get_backend_name() != "sqlite":
        return _conform(_fetch(database_url, repository.SNAPSHOT_LINK_SQL), LINK_SCHEMA)
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108
    with tempfile.TemporaryDirectory(prefix="socialcard-links-", dir=shm) as folder:
        path = str(Path(folder) / "link.arrow")
        completed = subprocess.run(  # noqa: S603 (this interpreter, this module)
            [sys.executable, "-m", __name__, "--links", database_url, path],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"reading the links failed: {completed.stderr.strip()[-2000:]}")
        return _read_ipc(path)


def registry_links_in_session(session: Session) -> pa.Table:
    """Every live parent-child link through the session (sees its transaction)."""
    rows = session.connection().exec_driver_sql(repository.SNAPSHOT_LINK_SQL).all()
    return _table(rows, LINK_SCHEMA)


def family_links(session: Session, family_id: int) -> pa.Table:
    """The links one family's evaluation needs: its current members' as child or parent, and
    every link of their parents (a mother's children wherever they live)."""
    members = repository.member_ids_of(session, [family_id]).get(family_id, [])
    return _table(repository.snapshot_links_for_persons(session, members), LINK_SCHEMA)


def _main(argv: list[str]) -> int:
    """The child of `_read_in_child` (URL, person file, fact file) or of `registry_links`
    (`--links`, URL, link file)."""
    if argv[0] == "--links":
        _, database_url, link_path = argv
        _write_ipc(
            _conform(_fetch(database_url, repository.SNAPSHOT_LINK_SQL), LINK_SCHEMA), link_path
        )
        return 0
    database_url, person_path, fact_path = argv
    persons, facts = _read_adbc(database_url)
    _write_ipc(persons, person_path)
    _write_ipc(facts, fact_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
