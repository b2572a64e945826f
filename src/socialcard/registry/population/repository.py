"""Queries of the population loader: existing refs and serials, id ranges, sequences, indexes.

They run on a Connection (not a Session): the loader works below the ORM, inside its own
transaction per chunk.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, Index, Table, func, inspect, select, text

from socialcard.registry.models import Fact, Family, FamilyMember, Person

LOADED_MODELS: tuple[type[Family] | type[Person] | type[FamilyMember] | type[Fact], ...] = (
    Family,
    Person,
    FamilyMember,
    Fact,
)


def count_families_with_ref_prefix(conn: Connection, prefix: str) -> int:
    """How many families have a ref starting with `prefix` (a range scan of the unique index)."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    query = select(func.count()).select_from(Family).where(Family.ref >= prefix, Family.ref < upper)
    return int(conn.scalar(query) or 0)


def has_persons(conn: Connection) -> bool:
    return conn.scalar(select(Person.id).limit(1)) is not None


def highest_serials(conn: Connection) -> list[tuple[str, int]]:
    """(first seven digits, highest serial) of every 12-digit ИИН prefix in the store."""
    prefix = func.substr(Person.national_id, 1, 7)
    serial = func.max(func.substr(Person.national_id, 8, 4))
    query = (
        select(prefix, serial)
        .where(Person.country == "KZ", func.length(Person.national_id) == 12)
        .group_by(prefix)
    )
    return [(p, int(s)) for p, s in conn.execute(query) if s is not None and s.isdigit()]


def used_serials(conn: Connection, prefix7: str) -> list[int]:
    """Serials in use for one (birth date, century-and-sex) prefix."""
    # ':' sorts right after '9', so this is a range scan of the unique national_id index.
    query = select(Person.national_id).where(
        Person.national_id >= prefix7, Person.national_id < prefix7 + ":"
    )
    return [int(v[7:11]) for v in conn.scalars(query) if len(v) == 12 and v[7:11].isdigit()]


def max_id(conn: Connection, table: str) -> int:
    model = next(m for m in LOADED_MODELS if m.__tablename__ == table)
    return int(conn.scalar(select(func.max(model.id))) or 0)


def count_rows(conn: Connection, table: str) -> int:
    model = next(m for m in LOADED_MODELS if m.__tablename__ == table)
    return int(conn.scalar(select(func.count()).select_from(model)) or 0)


def reserve_postgres_ids(conn: Connection, table: str, count: int) -> int:
    """Take `count` consecutive ids from a table's sequence; returns the first.

    ALTER SEQUENCE holds a lock that makes every other nextval() wait until this transaction
    ends, so reading the sequence and moving it past the block cannot race with an ORM insert.
    Commit soon after: the wait lasts as long as the transaction.
    """
    sequence = conn.scalar(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table})
    if sequence is None:
        raise RuntimeError(f"{table}.id has no sequence")
    conn.execute(text(f"ALTER SEQUENCE {sequence} INCREMENT BY 1"))
    row = conn.execute(text(f"SELECT last_value, is_called FROM {sequence}")).one()
    last_used = int(row.last_value) if row.is_called else int(row.last_value) - 1
    first = max(last_used, max_id(conn, table)) + 1
    if count:
        conn.execute(text("SELECT setval(:s, :v, true)"), {"s": sequence, "v": first + count - 1})
    return first


def secondary_indexes(conn: Connection, table: str) -> list[Index]:
    """The table's plain (non-unique) indexes as the models declare them, present in the store.

    Unique indexes and constraints are never among them: they guard the data while it loads.
    """
    present = {ix["name"] for ix in inspect(conn).get_indexes(table)}
    model = next(m for m in LOADED_MODELS if m.__tablename__ == table)
    return [
        ix
        for ix in sorted(cast(Table, model.__table__).indexes, key=lambda i: str(i.name))
        if not ix.unique and ix.name in present
    ]


def missing_secondary_indexes(conn: Connection) -> list[Index]:
    """Plain indexes the models declare but the store lacks (left by an interrupted load)."""
    missing: list[Index] = []
    for model in LOADED_MODELS:
        present = {ix["name"] for ix in inspect(conn).get_indexes(model.__tablename__)}
        missing.extend(
            ix
            for ix in sorted(cast(Table, model.__table__).indexes, key=lambda i: str(i.name))
            if not ix.unique and ix.name not in present
        )
    return missing


def analyze_loaded(conn: Connection) -> None:
    """Fresh planner statistics for the loaded tables (PostgreSQL). Without them the planner
    guesses: a family read then scanned the whole current-membership index (15 ms a read
    instead of 0.1 ms), until autovacuum got round to the tables."""
    for model in LOADED_MODELS:
        conn.execute(text(f"ANALYZE {model.__tablename__}"))


def is_postgres_superuser(conn: Connection) -> bool:
    return bool(conn.scalar(text("SELECT current_setting('is_superuser')")) == "on")


def postgres_user_triggers(conn: Connection) -> list[str]:
    """Triggers on the loaded tables other than the foreign keys' own (internal) ones."""
    query = text(
        "SELECT tgname FROM pg_trigger "
        "WHERE NOT tgisinternal AND tgrelid = ANY(CAST(:tables AS regclass[]))"
    )
    tables = [m.__tablename__ for m in LOADED_MODELS]
    return [str(name) for name in conn.scalars(query, {"tables": tables})]


def count_ids_in_range(conn: Connection, table: str, first: int, last: int) -> int:
    """Rows of a table whose id lies in [first, last]."""
    model = next(m for m in LOADED_MODELS if m.__tablename__ == table)
    query = select(func.count()).select_from(model).where(model.id.between(first, last))
    return int(conn.scalar(query) or 0)


def count_members_outside(
    conn: Connection, ids: tuple[int, int], families: tuple[int, int], persons: tuple[int, int]
) -> int:
    """Memberships with ids in `ids` whose family or person lies outside the given id ranges."""
    query = (
        select(func.count())
        .select_from(FamilyMember)
        .where(
            FamilyMember.id.between(*ids),
            ~FamilyMember.family_id.between(*families) | ~FamilyMember.person_id.between(*persons),
        )
    )
    return int(conn.scalar(query) or 0)


def count_facts_outside(conn: Connection, ids: tuple[int, int], persons: tuple[int, int]) -> int:
    """Facts with ids in `ids` whose person lies outside the range, or that name a batch."""
    query = (
        select(func.count())
        .select_from(Fact)
        .where(
            Fact.id.between(*ids),
            ~Fact.person_id.between(*persons) | Fact.batch_id.is_not(None),
        )
    )
    return int(conn.scalar(query) or 0)


def person_ids_by_national_id(conn: Connection, national_ids: list[str]) -> dict[str, int]:
    """Ids of persons already stored, by national id (chunked under the parameter limit)."""
    found: dict[str, int] = {}
    for first in range(0, len(national_ids), 5000):
        part = national_ids[first : first + 5000]
        for person_id, national_id in conn.execute(
            select(Person.id, Person.national_id).where(Person.national_id.in_(part))
        ):
            found[str(national_id)] = int(person_id)
    return found
