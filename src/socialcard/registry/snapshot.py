"""Columnar snapshots of the registry (Arrow tables) for the rules engine and analytics.

Two shapes, as the rules engine's input contract: `person` (one row per person with their
family and role as of a period) and `fact` (live, non-superseded facts that began by the
period's end). Every read is as of a period: a person's family in a period is their latest
membership overlapping it, and the deceased stay members of their last family
(`repository.snapshot_person_sql` says why). The whole-registry path reads over ADBC straight
into Arrow; the one-family path reads through the caller's session, so it sees the caller's
transaction. A run of several periods reads the span once (`registry_history`) and takes each
period's persons from it (`RegistryHistory.as_of`).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from socialcard.registry import repository
from socialcard.rules.engine import synthetic as engine_input

# The rules engine owns its input contract; the registry produces exactly that shape.
PERSON_SCHEMA = engine_input.PERSON_SCHEMA
FACT_SCHEMA = engine_input.FACT_SCHEMA
LINK_SCHEMA = engine_input.LINK_SCHEMA
# The persons of a span: the contract's columns for each membership overlapping it (a person
# without one: once, with nulls), and the membership's id, start and end (null: open).
HISTORY_SCHEMA = pa.schema(
    [
        *PERSON_SCHEMA,
        ("member_id", pa.int64()),
        ("from_on", pa.date32()),
        ("until_on", pa.date32()),
    ]
)


class Span(Protocol):
    """What a read is as of: a period (rules' `Period`) or any first and last day."""

    @property
    def start(self) -> date: ...

    @property
    def end(self) -> date: ...


@dataclass(frozen=True)
class Days:
    """A span of days, first and last included."""

    start: date
    end: date


def _day_numbers(column: Any, missing: int) -> np.ndarray[Any, Any]:
    values = pc.fill_null(column.cast(pa.date32()).cast(pa.int32()), missing)
    return np.asarray(values.to_numpy(), dtype=np.int64)


def persons_as_of(history: pa.Table, period: Span) -> pa.Table:
    """Each person born by the period's end once, with the family and role of their latest
    membership that overlaps the period (none: no family, a household of one to the rules)."""
    epoch = date(1970, 1, 1)
    first, last = (period.start - epoch).days, (period.end - epoch).days
    # Not born yet: not in the registry of the period (not a household of their own either).
    history = history.filter(pc.less_equal(history.column("birth_on"), pa.scalar(period.end)))
    if history.num_rows == 0:
        return history.select(PERSON_SCHEMA.names).cast(PERSON_SCHEMA)
    pid = np.asarray(history.column("person_id").to_numpy(), dtype=np.int64)
    if pid.size > 1 and not bool(np.all(pid[1:] >= pid[:-1])):
        order = np.argsort(pid, kind="stable")
        history, pid = history.take(order), pid[order]
    has = history.column("member_id").is_valid().to_numpy(zero_copy_only=False)
    open_end = int(np.iinfo(np.int32).max)
    from_on = _day_numbers(history.column("from_on"), open_end)
    until_on = _day_numbers(history.column("until_on"), open_end)
    holds = has & (from_on <= last) & (until_on >= first)
    keep = np.ones(pid.size, dtype=bool)
    same = pid[1:] == pid[:-1]
    if bool(same.any()):
        # Several memberships of one person: the latest that holds in the period wins.
        several = np.zeros(pid.size, dtype=bool)
        several[1:] |= same
        several[:-1] |= same
        rows = np.flatnonzero(several)
        member = pc.fill_null(history.column("member_id"), 0).to_numpy()
        order = rows[
            np.lexsort((member[rows], np.where(holds, from_on, 0)[rows], holds[rows], pid[rows]))
        ]
        last_of_person = np.ones(order.size, dtype=bool)
        last_of_person[:-1] = pid[order][1:] != pid[order][:-1]
        keep[rows] = False
        keep[order[last_of_person]] = True
    chosen = history.filter(pa.array(keep))
    holds_kept = pa.array(holds[keep])
    columns = []
    for field in PERSON_SCHEMA:
        column = chosen.column(field.name)
        if field.name in ("family_id", "role"):
            column = pc.if_else(holds_kept, column, pa.nulls(chosen.num_rows, field.type))
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=PERSON_SCHEMA)


@dataclass(frozen=True)
class RegistryHistory:
    """The registry over a span of periods: `as_of` gives each period's (person, fact)."""

    persons: pa.Table  # HISTORY_SCHEMA
    facts: pa.Table  # FACT_SCHEMA, the facts that began by the span's end
    span: Days

    def as_of(self, period: Span) -> tuple[pa.Table, pa.Table]:
        """The (person, fact) tables as of a period within the span."""
        if period.start < self.span.start or period.end > self.span.end:
            raise ValueError(
                f"{period.start}..{period.end} is outside the span read"
                f" ({self.span.start}..{self.span.end})"
            )
        return persons_as_of(self.persons, period), self.facts


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


# As long as the application's own connections wait for a lock (core/db.py).
_SQLITE_BUSY_MS = 30_000


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
        connection = adbc_driver_sqlite.dbapi.connect(f"file:{path}?mode=ro")
        # Wait for locks as the application's connections do (core/db.py). The first
        # connection to open a WAL database that nobody has open rebuilds its index from the
        # WAL (a writer that exits without closing its connections leaves one, megabytes
        # after a rules run); the reads run on several connections at once, and without a
        # busy handler the others failed at once with "database is locked" instead of
        # waiting for that recovery, so a second `rules run` in a row failed.
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
            cursor.fetchall()
        return connection
    import adbc_driver_postgresql.dbapi

    uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return adbc_driver_postgresql.dbapi.connect(uri)


def registry_snapshot(database_url: str, period: Span) -> tuple[pa.Table, pa.Table]:
    """The whole registry as of a period as (person, fact) Arrow tables, read over ADBC
    (committed data).

    On SQLite the read runs in a child process: the ADBC driver links its own copy of SQLite,
    and two copies in one process break SQLite's POSIX locks (closing the driver's file drops
    the application's locks and can delete the WAL under its connections: "locking protocol",
    "disk I/O error", commits other processes never see). The child hands the tables back as
    Arrow IPC files, memory-mapped without a copy.
    """
    span = Days(period.start, period.end)
    if make_url(database_url).get_backend_name() == "sqlite":
        persons, facts = _read_in_child(database_url, span, resolve=True)
        return persons, facts
    history, facts = _read_adbc(database_url, span)
    return persons_as_of(history, span), facts


def registry_history(database_url: str, first: Span, last: Span) -> RegistryHistory:
    """The whole registry over the periods from `first` to `last` (read once, over ADBC)."""
    span = Days(first.start, last.end)
    if make_url(database_url).get_backend_name() == "sqlite":
        persons, facts = _read_in_child(database_url, span, resolve=False)
    else:
        persons, facts = _read_adbc(database_url, span)
    return RegistryHistory(persons, facts, span)


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


def _read_adbc(database_url: str, span: Days) -> tuple[pa.Table, pa.Table]:
    """(history persons, facts) of the span."""
    fact_sql = repository.snapshot_fact_sql(span.end)
    bounds = _fetch(database_url, "SELECT min(id) AS lo, max(id) AS hi FROM registry_fact")
    low, high = (bounds.column(name)[0].as_py() for name in ("lo", "hi"))
    queries = [repository.snapshot_person_sql(span.start, span.end)]
    if low is None:
        queries.append(fact_sql)
    else:
        step = (int(high) - int(low)) // FACT_PARTS + 1
        queries += [
            f"{fact_sql} AND id >= {int(low) + i * step} AND id < {int(low) + (i + 1) * step}"
            for i in range(FACT_PARTS)
        ]
    with ThreadPoolExecutor(len(queries)) as pool:
        tables = list(pool.map(lambda sql: _fetch(database_url, sql), queries))
    persons = _conform(tables[0], HISTORY_SCHEMA)
    facts = pa.concat_tables([_conform(t, FACT_SCHEMA) for t in tables[1:]])
    return persons, facts


def _read_in_child(database_url: str, span: Days, *, resolve: bool) -> tuple[pa.Table, pa.Table]:
    # In shared memory where there is one: the files are written once and mapped, not read.
    # (TemporaryDirectory makes a private, randomly named folder there.)
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108
    with tempfile.TemporaryDirectory(prefix="socialcard-snapshot-", dir=shm) as folder:
        paths = [str(Path(folder) / "person.arrow"), str(Path(folder) / "fact.arrow")]
        args = [database_url, span.start.isoformat(), span.end.isoformat()]
        completed = subprocess.run(  # noqa: S603 (this interpreter, this module)
            [sys.executable, "-m", __name__, *args, "as_of" if resolve else "history", *paths],
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


def family_snapshot(session: Session, family_id: int, period: Span) -> tuple[pa.Table, pa.Table]:
    """One family's members as of a period and their facts as (person, fact) Arrow tables."""
    person_table, fact_table, _ = family_snapshot_with_languages(session, family_id, period)
    return person_table, fact_table


def family_snapshot_with_languages(
    session: Session, family_id: int, period: Span
) -> tuple[pa.Table, pa.Table, dict[int, str]]:
    """`family_snapshot` and each member's language, read in the same statements (the online
    eligibility check needs the head's language; one round trip fewer per request)."""
    persons, facts = repository.snapshot_rows_for_family(
        session, family_id, start=period.start, end=period.end
    )
    # The rows are the overlapping memberships of a few persons: `persons_as_of`'s choice in
    # plain Python (the latest membership; the unborn left out), at a fraction of its cost
    # for a handful of rows. A property test holds the two to the same answers.
    chosen = latest_memberships(persons, period)
    width = len(PERSON_SCHEMA.names)
    members = [row for row in chosen if row[1] == family_id]
    person_table = pa.Table.from_pylist(
        [dict(zip(PERSON_SCHEMA.names, row[:width], strict=True)) for row in members],
        schema=PERSON_SCHEMA,
    )
    ids = {row[0] for row in members}
    fact_table = pa.Table.from_pylist(
        [dict(zip(FACT_SCHEMA.names, row, strict=True)) for row in facts if row[0] in ids],
        schema=FACT_SCHEMA,
    )
    language = len(HISTORY_SCHEMA.names)
    languages = {int(row[0]): str(row[language]) for row in members}
    return person_table, fact_table, languages


def latest_memberships(rows: Sequence[Sequence[Any]], period: Span) -> list[Sequence[Any]]:
    """Rows shaped as HISTORY_SCHEMA (more columns may follow), all memberships overlapping
    the period, in person order: each person born by the period's end once, with their latest
    membership (`persons_as_of` for a handful of rows)."""
    member_at = HISTORY_SCHEMA.names.index("member_id")
    chosen: dict[int, Sequence[Any]] = {}
    for row in rows:
        if row[4] > period.end:  # birth_on
            continue
        best = chosen.get(row[0])
        if best is None or (row[member_at + 1], row[member_at]) > (
            best[member_at + 1],
            best[member_at],
        ):
            chosen[row[0]] = row
    return [chosen[pid] for pid in sorted(chosen)]


def registry_snapshot_in_session(session: Session, period: Span) -> tuple[pa.Table, pa.Table]:
    """The whole registry as of a period through the session (sees its transaction; for
    small stores)."""
    history = registry_history_in_session(session, period, period)
    return history.as_of(period)


def registry_history_in_session(session: Session, first: Span, last: Span) -> RegistryHistory:
    """`registry_history` through the session (sees its transaction; for small stores)."""
    span = Days(first.start, last.end)
    connection = session.connection()
    persons = connection.exec_driver_sql(repository.snapshot_person_sql(span.start, span.end))
    facts = connection.exec_driver_sql(repository.snapshot_fact_sql(span.end))
    return RegistryHistory(
        _table(persons.all(), HISTORY_SCHEMA), _table(facts.all(), FACT_SCHEMA), span
    )


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
    """The child of `_read_in_child` (URL, first day, last day, `as_of` for one period's persons
    or `history` for every membership of the span, person file, fact file) or of
    `registry_links` (`--links`, URL, link file)."""
    if argv[0] == "--links":
        _, database_url, link_path = argv
        _write_ipc(
            _conform(_fetch(database_url, repository.SNAPSHOT_LINK_SQL), LINK_SCHEMA), link_path
        )
        return 0
    database_url, start, end, shape, person_path, fact_path = argv
    span = Days(date.fromisoformat(start), date.fromisoformat(end))
    persons, facts = _read_adbc(database_url, span)
    if shape == "as_of":
        persons = persons_as_of(persons, span)
    _write_ipc(persons, person_path)
    _write_ipc(facts, fact_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
