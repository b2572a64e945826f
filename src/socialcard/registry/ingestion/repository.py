"""Ingestion queries: batches, quarantine, and the set-based loads through staging tables.

The loads copy a chunk's valid rows into a temporary staging table (COPY on PostgreSQL,
executemany on SQLite) and merge it with one `INSERT ... SELECT ... ON CONFLICT` statement, so
a chunk costs a handful of statements whatever its size. The SQL is written once for both
stores; the few differences (null-safe comparison) are marked. Persons that are all new (a
first load) skip the staging on PostgreSQL: see upsert_persons.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Date, Integer, String, delete, func, select, text
from sqlalchemy.orm import Session

from socialcard.core.bulk import copy_rows, dbapi_connection
from socialcard.core.db import is_sqlite
from socialcard.registry.folding import FOLDED_COLUMNS, fold_table
from socialcard.registry.ingestion.sources import Reject
from socialcard.registry.models import (
    Batch,
    Family,
    FamilyMember,
    Person,
    PersonLink,
    QuarantinedRow,
)
from socialcard.registry.validation import FactRow, PersonRow

PERSON_STAGE = "ingest_person_stage"
FACT_STAGE = "ingest_fact_stage"
PERSON_COLUMNS = PersonRow._fields
# What a person load writes: the row's fields and the names folded for search (set from them
# by prepare_persons, so the binary COPY, the staging table and the upsert all carry them).
PERSON_WRITE_COLUMNS = (*PERSON_COLUMNS, *(folded for _, folded in FOLDED_COLUMNS))
QUARANTINE_COLUMNS = ("batch_id", "row_number", "field", "reason", "raw", "created_at")


def _in_chunk(session: Session) -> int:
    # SQLite's default limit of bound parameters is 999; PostgreSQL takes up to 65535.
    return 900 if is_sqlite(session) else 10_000


def _chunks(values: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _distinct_from(session: Session) -> str:
    # SQLite spells the null-safe "differs" as IS NOT (IS DISTINCT FROM only from 3.39).
    return "IS NOT" if is_sqlite(session) else "IS DISTINCT FROM"


def _not_distinct_from(session: Session) -> str:
    return "IS" if is_sqlite(session) else "IS NOT DISTINCT FROM"


# --- batches and quarantine -------------------------------------------------------------------


def batch_by_key(session: Session, *, source: str, agency: str, batch_key: str) -> Batch | None:
    return session.scalars(
        select(Batch).where(
            Batch.source == source, Batch.agency == agency, Batch.batch_key == batch_key
        )
    ).first()


def batch_by_id(session: Session, batch_id: int) -> Batch | None:
    return session.get(Batch, batch_id)


def add_batch(session: Session, batch: Batch) -> Batch:
    session.add(batch)
    session.flush()
    return batch


def delete_quarantine(session: Session, batch_id: int) -> None:
    session.execute(delete(QuarantinedRow).where(QuarantinedRow.batch_id == batch_id))


def insert_quarantine(
    session: Session, *, batch_id: int, rejects: Sequence[Reject], now: datetime
) -> None:
    if rejects:
        copy_rows(
            session,
            QuarantinedRow.__tablename__,
            QUARANTINE_COLUMNS,
            [(batch_id, r.row_number, r.field, r.reason, r.raw, now) for r in rejects],
        )


def quarantine_page(
    session: Session, *, batch_id: int, offset: int, limit: int
) -> tuple[Sequence[QuarantinedRow], int]:
    """Quarantined rows of a batch in row order, and how many there are."""
    total = session.scalar(
        select(func.count()).select_from(QuarantinedRow).where(QuarantinedRow.batch_id == batch_id)
    )
    rows = session.scalars(
        select(QuarantinedRow)
        .where(QuarantinedRow.batch_id == batch_id)
        .order_by(QuarantinedRow.row_number, QuarantinedRow.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return rows, total or 0


# --- staging ----------------------------------------------------------------------------------


def _ensure_stage(session: Session, name: str, columns: str) -> None:
    # A temporary table lives as long as the connection and is private to it; it is emptied
    # before each chunk, so a pooled connection never carries rows into another import.
    session.execute(text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({columns})"))
    if is_sqlite(session):
        session.execute(text(f"DELETE FROM {name}"))
    else:
        session.execute(text(f"TRUNCATE {name}"))


def _analyze(session: Session, name: str) -> None:
    # Fresh statistics let PostgreSQL probe the registry's indexes per staged row instead of
    # scanning a table of millions; SQLite always probes indexes for correlated subqueries.
    # A small sample is enough to know how many rows the stage holds.
    if not is_sqlite(session):
        session.execute(text("SET LOCAL default_statistics_target = 10"))
        session.execute(text(f"ANALYZE {name}"))


def _clear_stage(session: Session, name: str) -> None:
    session.execute(text(f"DELETE FROM {name}" if is_sqlite(session) else f"TRUNCATE {name}"))


# --- persons ----------------------------------------------------------------------------------


class PersonRef(NamedTuple):
    id: int
    birth_on: date
    death_on: date | None


def persons_by_national_ids(session: Session, national_ids: Iterable[str]) -> dict[str, PersonRef]:
    """Persons known under these national ids (chunked IN lists on the unique index)."""
    wanted = list(dict.fromkeys(national_ids))
    found: dict[str, PersonRef] = {}
    for chunk in _chunks(wanted, _in_chunk(session)):
        rows = session.execute(
            select(Person.national_id, Person.id, Person.birth_on, Person.death_on).where(
                Person.national_id.in_(chunk)
            )
        )
        for national_id, person_id, birth_on, death_on in rows:
            found[national_id] = PersonRef(person_id, birth_on, death_on)
    return found


_PERSON_STAGE_DDL = (
    "created_at TIMESTAMP WITH TIME ZONE, updated_at TIMESTAMP WITH TIME ZONE, "
    "national_id VARCHAR(20), country VARCHAR(2), last_name VARCHAR(100), "
    "first_name VARCHAR(100), patronymic VARCHAR(100), birth_on DATE, sex VARCHAR(1), "
    "phone VARCHAR(20), language VARCHAR(2), region_kato VARCHAR(9), address VARCHAR(300), "
    "death_on DATE, last_name_folded VARCHAR(100), first_name_folded VARCHAR(100)"
)
# A persons row is the civil registry's full record, so it overwrites the stored one, except
# where a missing optional value would erase something another source told us: a death date
# is never cleared by a persons row, and an absent phone or address keeps the stored one.
_KEEP_IF_MISSING = frozenset({"phone", "address", "death_on"})
# How many national ids of a chunk are looked up before trying it as all new.
_KNOWN_PROBE = 256
# The order of the columns in the binary COPY rows of prepare_persons.
_PERSON_COPY_COLUMNS = ("created_at", "updated_at", *PERSON_WRITE_COLUMNS)


class PersonLoad(NamedTuple):
    """A chunk of valid person rows made ready for the store (prepare_persons)."""

    rows: Any  # pyarrow table (PERSON_SCHEMA): one row per national id, in national id order
    now: datetime  # created_at / updated_at of the rows written
    binary_rows: memoryview | None  # PostgreSQL binary COPY rows (_PERSON_COPY_COLUMNS)


def prepare_persons(rows: Any, *, now: datetime, postgres: bool) -> PersonLoad:
    """Keep the later row of a national id seen twice and encode the rows for COPY.

    Pure computation on the columns (no database), so the importer does it while the store
    is still busy with the previous chunk. `rows` is a PERSON_SCHEMA table in row order.
    National id order keeps the unique index's inserts close together: measurably cheaper for
    PostgreSQL than file order. The names are folded for search here (PERSON_WRITE_COLUMNS).
    """
    rows = fold_table(_one_per_national_id(rows))
    return PersonLoad(rows, now, _binary_copy_rows(rows, now) if postgres else None)


def _one_per_national_id(rows: Any) -> Any:
    """The rows sorted by national id, with only the last (latest) row of a repeated one."""
    if rows.num_rows < 2:
        return rows
    order = pc.sort_indices(rows.column("national_id"))  # stable: equal ids keep row order
    ids = rows.column("national_id").take(order)
    repeated = pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1))
    if pc.any(repeated).as_py():
        last_of_run = np.append(~repeated.to_numpy(zero_copy_only=False), True)
        order = order.filter(pa.array(last_of_run))
    return rows.take(order)


_PG_EPOCH_DAYS = 10_957  # 2000-01-01, where PostgreSQL's binary dates and timestamps count from
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension
_BINARY_TRAILER = b"\xff\xff"
_BINARY_NULL = b"\xff\xff\xff\xff"  # a field of length -1
_JOIN_NULL_AS_EMPTY = pc.JoinOptions(null_handling="replace", null_replacement="")


def _fixed_binary(matrix: np.ndarray[Any, Any]) -> Any:
    """An (n, width) byte matrix as a pyarrow binary array of n values."""
    count, width = matrix.shape
    buffer = pa.py_buffer(np.ascontiguousarray(matrix))
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), count, [None, buffer])
    return fixed.cast(pa.binary())


def _binary_copy_rows(rows: Any, now: datetime) -> memoryview:
    """The rows in PostgreSQL's binary COPY format (without header and trailer), built
    column-wise: each field is its big-endian length (-1 for NULL) and its bytes, and pyarrow
    joins the fields of each row in one pass. Text is sent as is (UTF-8, the client encoding),
    dates as days and timestamps as microseconds since 2000-01-01.
    """
    count = rows.num_rows
    micros = (now - _PG_EPOCH) // timedelta(microseconds=1)
    stamp = pa.scalar(b"\x00\x00\x00\x08" + micros.to_bytes(8, "big", signed=True), pa.binary())
    fields: list[Any] = [
        pa.scalar(len(_PERSON_COPY_COLUMNS).to_bytes(2, "big"), pa.binary()),
        stamp,
        stamp,
    ]
    for name in PERSON_WRITE_COLUMNS:
        column = rows.column(name).combine_chunks()
        if pa.types.is_date(column.type):
            days = column.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False)
            field = np.empty((count, 2), dtype=">i4")
            field[:, 0] = 4
            field[:, 1] = days.astype(np.int64) - _PG_EPOCH_DAYS
            encoded = _fixed_binary(field.view(np.uint8))
            if column.null_count:
                encoded = pc.if_else(column.is_valid(), encoded, pa.scalar(_BINARY_NULL))
            fields.append(encoded)
        else:
            lengths = pc.binary_length(column).fill_null(-1).to_numpy(zero_copy_only=False)
            fields.append(_fixed_binary(lengths.astype(">i4").view(np.uint8).reshape(count, 4)))
            fields.append(column.cast(pa.binary()))  # a null joins as nothing
    joined = pc.binary_join_element_wise(
        *fields, pa.scalar(b"", pa.binary()), options=_JOIN_NULL_AS_EMPTY
    )
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32)
    start, end = int(offsets[joined.offset]), int(offsets[joined.offset + count])
    return memoryview(joined.buffers()[2])[start:end]


def _copy_binary(raw: Any, table: str, columns: Sequence[str], body: memoryview) -> None:
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT binary)") as copy,
    ):
        copy.write(_BINARY_HEADER)
        copy.write(body)
        copy.write(_BINARY_TRAILER)


def upsert_persons(session: Session, load: PersonLoad, *, insert_first: bool = False) -> bool:
    """Insert or update persons on national_id.

    With `insert_first` on PostgreSQL, a chunk whose sampled national ids are all unknown is
    first COPYed straight into the table under a savepoint (no staging, no conflict checks);
    if it meets a known national id after all, the savepoint is rolled back and the chunk takes
    the upsert. Returns True when that happened or the sample found known persons, so the
    caller can stop trying the insert-only path for the rest of the file.
    """
    rows = load.rows
    if not rows.num_rows:
        return False
    met_known = False
    raw = dbapi_connection(session)
    # The binary rows carry UTF-8 text, which PostgreSQL reads in the client encoding.
    binary = load.binary_rows if _is_utf8_postgres(session, raw) else None
    if binary is not None and insert_first:
        if _any_known(raw, rows.column("national_id")):
            met_known = True
        elif _insert_new_persons(raw, binary):
            return False
        else:
            met_known = True
    _ensure_stage(session, PERSON_STAGE, _PERSON_STAGE_DDL)
    if binary is not None:
        _copy_binary(raw, PERSON_STAGE, _PERSON_COPY_COLUMNS, binary)
    else:
        copy_rows(session, PERSON_STAGE, PERSON_WRITE_COLUMNS, _python_rows(rows))
    columns_sql = ", ".join(PERSON_WRITE_COLUMNS)
    updates = [
        f"{c} = COALESCE(excluded.{c}, p.{c})" if c in _KEEP_IF_MISSING else f"{c} = excluded.{c}"
        for c in PERSON_WRITE_COLUMNS
        if c != "national_id"
    ]
    differs = _distinct_from(session)
    changed = " OR ".join(
        f"p.{c} {differs} "
        + (f"COALESCE(excluded.{c}, p.{c})" if c in _KEEP_IF_MISSING else f"excluded.{c}")
        for c in PERSON_WRITE_COLUMNS
        if c != "national_id"
    )
    session.execute(
        text(
            f"INSERT INTO registry_person AS p ({columns_sql}, created_at, updated_at) "
            f"SELECT {columns_sql}, :now, :now FROM {PERSON_STAGE} WHERE true "
            f"ON CONFLICT (national_id) DO UPDATE SET {', '.join(updates)}, "
            f"updated_at = excluded.updated_at WHERE {changed}"
        ),
        {"now": load.now},
    )
    _clear_stage(session, PERSON_STAGE)
    return met_known


def _python_rows(rows: Any) -> list[tuple[Any, ...]]:
    """The rows as tuples for executemany or a text COPY, dates already as ISO text (what the
    sqlite3 date adapter writes; much cheaper than a date object per value)."""
    columns = []
    for name in PERSON_WRITE_COLUMNS:
        column = rows.column(name)
        if pa.types.is_date(column.type):
            column = column.cast(pa.string())
        columns.append(column.to_pylist())
    return list(zip(*columns, strict=True))


def _any_known(raw: Any, national_ids: Any) -> bool:
    """Whether a spread sample of these national ids holds a known person."""
    step = max(1, len(national_ids) // _KNOWN_PROBE)
    sample = national_ids.take(pa.array(range(0, len(national_ids), step))).to_pylist()
    with raw.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM registry_person WHERE national_id = ANY(%s))", (sample,)
        )
        found = cursor.fetchone()
    return bool(found and found[0])


def _is_utf8_postgres(session: Session, raw: Any) -> bool:
    return not is_sqlite(session) and raw.info.encoding == "utf-8"


def _insert_new_persons(raw: Any, body: memoryview) -> bool:
    """COPY rows straight into registry_person; False (and nothing written) on a known one."""
    with raw.cursor() as cursor:
        cursor.execute("SAVEPOINT ingest_new_persons")
        try:
            _copy_binary(raw, "registry_person", _PERSON_COPY_COLUMNS, body)
        except psycopg.errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT ingest_new_persons")
            cursor.execute("RELEASE SAVEPOINT ingest_new_persons")
            return False
        cursor.execute("RELEASE SAVEPOINT ingest_new_persons")
    return True


# --- facts ------------------------------------------------------------------------------------


_FACT_STAGE_DDL = (
    "row_number INTEGER, person_id BIGINT, detail VARCHAR(40), qualifier VARCHAR(40), "
    "amount_minor BIGINT, quantity INTEGER, valid_from DATE, valid_until DATE, "
    "live_id BIGINT, same_values INTEGER DEFAULT 0"
)
_FACT_STAGE_COLUMNS = (
    "row_number",
    "person_id",
    "detail",
    "qualifier",
    "amount_minor",
    "quantity",
    "valid_from",
    "valid_until",
)
_FACT_VALUES = ("qualifier", "amount_minor", "quantity", "valid_until")


class WrittenFact(NamedTuple):
    row_number: int
    person_id: int
    detail: str
    valid_from: date
    is_new: bool  # False: it corrected (superseded) a live fact with the same key


def load_facts(
    session: Session,
    rows: Sequence[tuple[int, int, FactRow]],
    *,
    kind: str,
    source: str,
    batch_id: int,
    now: datetime,
) -> list[WrittenFact]:
    """Merge facts on their live key: same values is a no-op, different values supersede.

    `rows` are (row number, person id, fact) with one row per key. Returns the rows that were
    written, in row order.
    """
    if not rows:
        return []
    _ensure_stage(session, FACT_STAGE, _FACT_STAGE_DDL)
    copy_rows(
        session,
        FACT_STAGE,
        _FACT_STAGE_COLUMNS,
        [
            (n, pid, f.detail, f.qualifier, f.amount_minor, f.quantity, f.valid_from, f.valid_until)
            for n, pid, f in rows
        ],
    )
    _analyze(session, FACT_STAGE)
    same = _not_distinct_from(session)
    params: dict[str, Any] = {"kind": kind, "source": source, "batch_id": batch_id, "now": now}
    # Correlated subqueries on the live-key partial index work the same on both stores.
    session.execute(
        text(
            f"UPDATE {FACT_STAGE} SET live_id = (SELECT f.id FROM registry_fact f "
            f"WHERE f.person_id = {FACT_STAGE}.person_id AND f.kind = :kind "
            f"AND f.detail = {FACT_STAGE}.detail AND f.source = :source "
            f"AND f.valid_from = {FACT_STAGE}.valid_from AND f.superseded_at IS NULL)"
        ),
        params,
    )
    equal = " AND ".join(f"f.{c} {same} {FACT_STAGE}.{c}" for c in _FACT_VALUES)
    session.execute(
        text(
            f"UPDATE {FACT_STAGE} SET same_values = 1 WHERE live_id IS NOT NULL AND EXISTS "
            f"(SELECT 1 FROM registry_fact f WHERE f.id = {FACT_STAGE}.live_id AND {equal})"
        )
    )
    session.execute(
        text(
            "UPDATE registry_fact SET superseded_at = :now WHERE id IN "
            f"(SELECT live_id FROM {FACT_STAGE} WHERE live_id IS NOT NULL AND same_values = 0)"
        ),
        params,
    )
    session.execute(
        text(
            "INSERT INTO registry_fact (person_id, kind, detail, qualifier, amount_minor, "
            "quantity, valid_from, valid_until, source, batch_id, recorded_at) "
            "SELECT person_id, :kind, detail, qualifier, amount_minor, quantity, valid_from, "
            f"valid_until, :source, :batch_id, :now FROM {FACT_STAGE} "
            "WHERE live_id IS NULL OR same_values = 0 ORDER BY row_number"
        ),
        params,
    )
    written = [
        WrittenFact(int(n), int(pid), detail, valid_from, live_id is None)
        for n, pid, detail, valid_from, live_id in session.execute(
            text(
                f"SELECT row_number, person_id, detail, valid_from, live_id FROM {FACT_STAGE} "
                "WHERE live_id IS NULL OR same_values = 0 ORDER BY row_number"
            ).columns(
                row_number=Integer,
                person_id=Integer,
                detail=String,
                valid_from=Date,
                live_id=Integer,
            )
        )
    ]
    _clear_stage(session, FACT_STAGE)
    return written


def set_death_dates(session: Session, deaths: Sequence[tuple[int, date]], *, now: datetime) -> None:
    """Record death dates on the persons (the latest death fact wins)."""
    if deaths:
        session.execute(
            text(
                "UPDATE registry_person SET death_on = :death_on, updated_at = :now WHERE id = :id"
            ),
            [{"id": pid, "death_on": on, "now": now} for pid, on in deaths],
        )


# --- families ---------------------------------------------------------------------------------


class OpenMembership(NamedTuple):
    member_id: int
    family_id: int
    person_id: int
    role: str
    from_on: date


def open_memberships_of_persons(
    session: Session, person_ids: Sequence[int]
) -> dict[int, OpenMembership]:
    """The current (open) membership of each of these persons that has one."""
    found: dict[int, OpenMembership] = {}
    for chunk in _chunks(list(dict.fromkeys(person_ids)), _in_chunk(session)):
        rows = session.execute(
            select(
                FamilyMember.id,
                FamilyMember.family_id,
                FamilyMember.person_id,
                FamilyMember.role,
                FamilyMember.from_on,
            ).where(FamilyMember.person_id.in_(chunk), FamilyMember.until_on.is_(None))
        )
        for row in rows:
            found[row[2]] = OpenMembership(*row)
    return found


def closed_memberships_of_persons(
    session: Session, person_ids: Sequence[int]
) -> set[tuple[int, int, date]]:
    """(person id, family id, until_on) of the ended memberships of these persons."""
    found: set[tuple[int, int, date]] = set()
    for chunk in _chunks(list(dict.fromkeys(person_ids)), _in_chunk(session)):
        rows = session.execute(
            select(FamilyMember.person_id, FamilyMember.family_id, FamilyMember.until_on).where(
                FamilyMember.person_id.in_(chunk), FamilyMember.until_on.is_not(None)
            )
        )
        found.update((pid, fid, until) for pid, fid, until in rows if until is not None)
    return found


def ended_membership_spans(
    session: Session, person_ids: Sequence[int]
) -> dict[int, list[tuple[int, date, date]]]:
    """(family id, from_on, until_on) of the ended memberships of these persons, by person."""
    found: dict[int, list[tuple[int, date, date]]] = {}
    for chunk in _chunks(list(dict.fromkeys(person_ids)), _in_chunk(session)):
        rows = session.execute(
            select(
                FamilyMember.person_id,
                FamilyMember.family_id,
                FamilyMember.from_on,
                FamilyMember.until_on,
            ).where(FamilyMember.person_id.in_(chunk), FamilyMember.until_on.is_not(None))
        )
        for pid, fid, from_on, until in rows:
            if until is not None:
                found.setdefault(pid, []).append((fid, from_on, until))
    return found


def families_by_refs(session: Session, refs: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(list(dict.fromkeys(refs)), _in_chunk(session)):
        found.update(
            session.execute(select(Family.ref, Family.id).where(Family.ref.in_(chunk))).all()
        )
    return found


def family_refs_by_ids(session: Session, family_ids: Sequence[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in _chunks(list(dict.fromkeys(family_ids)), _in_chunk(session)):
        found.update(
            session.execute(select(Family.id, Family.ref).where(Family.id.in_(chunk))).all()
        )
    return found


class CurrentMember(NamedTuple):
    family_id: int
    person_id: int
    role: str
    birth_on: date


def current_members_of_families(session: Session, family_ids: Sequence[int]) -> list[CurrentMember]:
    """Open members of these families with their birth dates (for the cross-row age checks)."""
    found: list[CurrentMember] = []
    for chunk in _chunks(list(dict.fromkeys(family_ids)), _in_chunk(session)):
        rows = session.execute(
            select(
                FamilyMember.family_id, FamilyMember.person_id, FamilyMember.role, Person.birth_on
            )
            .join(Person, Person.id == FamilyMember.person_id)
            .where(FamilyMember.family_id.in_(chunk), FamilyMember.until_on.is_(None))
        )
        found += [CurrentMember(*row) for row in rows]
    return found


def insert_families(
    session: Session, families: Sequence[tuple[str, str]], *, now: datetime
) -> dict[str, int]:
    """Create families (ref, region KATO); returns their ids by ref."""
    if not families:
        return {}
    copy_rows(
        session,
        Family.__tablename__,
        ("ref", "region_kato", "created_at"),
        [(ref, region, now) for ref, region in families],
    )
    return families_by_refs(session, [ref for ref, _ in families])


def insert_memberships(
    session: Session, rows: Sequence[tuple[int, int, str, date, date | None]]
) -> None:
    """Insert memberships (family id, person id, role, from_on, until_on)."""
    if rows:
        copy_rows(
            session,
            FamilyMember.__tablename__,
            ("family_id", "person_id", "role", "from_on", "until_on"),
            rows,
        )


def close_memberships(session: Session, closes: Sequence[tuple[int, date]]) -> None:
    """End memberships: (member id, until_on)."""
    if closes:
        session.execute(
            text("UPDATE registry_family_member SET until_on = :until_on WHERE id = :id"),
            [{"id": member_id, "until_on": until_on} for member_id, until_on in closes],
        )


def change_member_roles(session: Session, changes: Sequence[tuple[int, str, date]]) -> None:
    """Correct an open membership in place: (member id, role, from_on)."""
    if changes:
        session.execute(
            text(
                "UPDATE registry_family_member SET role = :role, from_on = :from_on WHERE id = :id"
            ),
            [{"id": member_id, "role": role, "from_on": on} for member_id, role, on in changes],
        )


# --- parent-child links ----------------------------------------------------------------------


class NewLink(NamedTuple):
    child_id: int
    parent_id: int
    relation: str
    valid_from: date
    valid_until: date | None


def children_of(session: Session, parent_ids: Iterable[int]) -> dict[int, set[int]]:
    """Live links parent -> children for the given parents (one level)."""
    found: dict[int, set[int]] = {}
    ids = list(set(parent_ids))
    for part in _chunks(ids, _in_chunk(session)):
        for parent, child in session.execute(
            select(PersonLink.parent_id, PersonLink.child_id).where(
                PersonLink.parent_id.in_(part), PersonLink.superseded_at.is_(None)
            )
        ):
            found.setdefault(int(parent), set()).add(int(child))
    return found


def load_links(
    session: Session, links: Sequence[NewLink], *, source: str, batch_id: int, now: datetime
) -> int:
    """Write links; a live link with the same key (child, parent, relation, agency) and other
    dates is superseded, one with the same dates is left as it is. Returns rows written."""
    written = 0
    for link in links:
        live = session.execute(
            select(PersonLink).where(
                PersonLink.child_id == link.child_id,
                PersonLink.parent_id == link.parent_id,
                PersonLink.relation == link.relation,
                PersonLink.source == source,
                PersonLink.superseded_at.is_(None),
            )
        ).scalar_one_or_none()
        if live is not None:
            if live.valid_from == link.valid_from and live.valid_until == link.valid_until:
                continue
            live.superseded_at = now
            session.flush()
        session.add(
            PersonLink(
                child_id=link.child_id,
                parent_id=link.parent_id,
                relation=link.relation,
                valid_from=link.valid_from,
                valid_until=link.valid_until,
                source=source,
                batch_id=batch_id,
                recorded_at=now,
            )
        )
        written += 1
    session.flush()
    return written
