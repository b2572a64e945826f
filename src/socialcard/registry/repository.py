"""Registry queries. Every select() of the registry lives here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy import Date, Row, Select, and_, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from socialcard.core.clock import utcnow
from socialcard.registry.folding import prefix_bounds
from socialcard.registry.models import (
    Event,
    EventCursor,
    Fact,
    Family,
    FamilyMember,
    Person,
    PersonLink,
)

_ID_CHUNK = 900  # below SQLite's default limit of bound parameters per statement


def person_by_id(session: Session, person_id: int) -> Person | None:
    return session.get(Person, person_id)


def person_language(session: Session, person_id: int) -> str | None:
    """Only the language column (the wallet asks it for every voucher it funds)."""
    return session.scalar(select(Person.language).where(Person.id == person_id))


def person_by_national_id(session: Session, national_id: str) -> Person | None:
    return session.scalars(select(Person).where(Person.national_id == national_id)).first()


def person_ids_by_national_id(session: Session, national_ids: Iterable[str]) -> dict[str, int]:
    """Map national ids to person ids for those that exist (chunked for large batches)."""
    wanted = list(dict.fromkeys(national_ids))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), _ID_CHUNK):
        chunk = wanted[start : start + _ID_CHUNK]
        rows = session.execute(
            select(Person.national_id, Person.id).where(Person.national_id.in_(chunk))
        )
        found.update(dict(rows))
    return found


def search_persons(
    session: Session,
    *,
    national_id: str | None,
    name: str | None,
    region_prefix: str | None,
    offset: int,
    limit: int,
) -> tuple[Sequence[Person], int]:
    """Persons matching all given criteria; name matches a prefix of the last or first name,
    case-insensitively (Unicode casefold, registry/folding.py).

    The prefix is a range of each folded name column (`>= p AND < p + U+10FFFF`, byte order on
    both stores), so each side of the OR is an index range: the ids of a page are found in the
    two indexes and only the page's persons are read.
    """
    clauses: list[Any] = []
    if national_id:
        clauses.append(Person.national_id == national_id)
    if name:
        low, high = prefix_bounds(name.strip())
        clauses.append(
            or_(
                and_(Person.last_name_folded >= low, Person.last_name_folded < high),
                and_(Person.first_name_folded >= low, Person.first_name_folded < high),
            )
        )
    if region_prefix:
        clauses.append(Person.region_kato.startswith(region_prefix, autoescape=True))
    total = session.scalar(select(func.count(Person.id)).where(*clauses)) or 0
    ids = session.scalars(
        select(Person.id).where(*clauses).order_by(Person.id).offset(offset).limit(limit)
    ).all()
    if not ids:
        return [], total
    found = {p.id: p for p in session.scalars(select(Person).where(Person.id.in_(ids)))}
    return [found[i] for i in ids], total


def family_by_ref(session: Session, ref: str) -> Family | None:
    return session.scalars(select(Family).where(Family.ref == ref)).first()


def current_membership(session: Session, person_id: int) -> FamilyMember | None:
    return session.scalars(
        select(FamilyMember).where(
            FamilyMember.person_id == person_id, FamilyMember.until_on.is_(None)
        )
    ).first()


def family_sheet(
    session: Session,
    family_id: int,
    *,
    on: date,
    include_past: bool,
    person_columns: tuple[str, ...],
    fact_columns: tuple[str, ...],
) -> Sequence[Row[Any]]:
    """A family with its members, their persons and the facts live on a date, in one query.

    One row per live fact, or per member without one, or a single row for a family without
    members (member columns null); none when the family does not exist. Columns: family_id,
    family_ref, family_region_kato, member_id, role, from_on, until_on, `person_<name>` for each
    person column and the fact columns under their own names. Members come in membership order.
    """
    query = _family_sheet_query(person_columns, fact_columns, include_past=include_past)
    # Core execution of a statement built once: this read runs on every family request.
    return session.connection().execute(query, {"family_id": family_id, "on": on}).all()


@lru_cache(maxsize=8)
def _family_sheet_query(
    person_columns: tuple[str, ...], fact_columns: tuple[str, ...], *, include_past: bool
) -> Select[Any]:
    family, member = Family.__table__.c, FamilyMember.__table__.c
    person, fact = Person.__table__.c, Fact.__table__.c
    on = bindparam("on", type_=Date())
    member_on = member.family_id == family.id
    if not include_past:
        member_on = and_(member_on, member.until_on.is_(None))
    return (
        select(
            family.id.label("family_id"),
            family.ref.label("family_ref"),
            family.region_kato.label("family_region_kato"),
            member.id.label("member_id"),
            member.role,
            member.from_on,
            member.until_on,
            *(person[name].label(f"person_{name}") for name in person_columns),
            *(fact[name] for name in fact_columns),
        )
        .select_from(Family.__table__)
        .outerjoin(FamilyMember.__table__, member_on)
        .outerjoin(Person.__table__, person.id == member.person_id)
        .outerjoin(
            Fact.__table__,
            and_(
                fact.person_id == person.id,
                fact.superseded_at.is_(None),
                fact.valid_from <= on,
                or_(fact.valid_until.is_(None), fact.valid_until >= on),
            ),
        )
        .where(family.id == bindparam("family_id"))
        .order_by(member.id, fact.id)
    )


def live_facts(session: Session, person_ids: Sequence[int], *, on: date) -> Sequence[Fact]:
    """Facts in force on a date for these persons (not superseded, validity covering the date)."""
    if not person_ids:
        return []
    query = (
        select(Fact)
        .where(
            Fact.person_id.in_(person_ids),
            Fact.superseded_at.is_(None),
            Fact.valid_from <= on,
            or_(Fact.valid_until.is_(None), Fact.valid_until >= on),
        )
        .order_by(Fact.person_id, Fact.kind, Fact.valid_from)
    )
    return session.scalars(query).all()


def fact_history(session: Session, person_id: int) -> Sequence[Fact]:
    """Every fact row of a person, superseded ones included, oldest first."""
    return session.scalars(select(Fact).where(Fact.person_id == person_id).order_by(Fact.id)).all()


def cursor_position(session: Session, consumer: str) -> int:
    cursor = session.get(EventCursor, consumer)
    return 0 if cursor is None else cursor.position


def set_cursor_position(session: Session, consumer: str, position: int) -> None:
    cursor = session.get(EventCursor, consumer)
    if cursor is None:
        session.add(EventCursor(consumer=consumer, position=position))
    else:
        session.execute(
            update(EventCursor)
            .where(EventCursor.consumer == consumer)
            .values(position=position, updated_at=utcnow())
        )
    session.flush()


def events_after(session: Session, *, position: int, limit: int) -> Sequence[Event]:
    return session.scalars(
        select(Event).where(Event.id > position).order_by(Event.id).limit(limit)
    ).all()


def table_counts(session: Session) -> dict[str, int]:
    """Row counts of the main registry tables."""
    return {
        "persons": session.scalar(select(func.count()).select_from(Person)) or 0,
        "families": session.scalar(select(func.count()).select_from(Family)) or 0,
        "facts": session.scalar(select(func.count()).select_from(Fact)) or 0,
        "events": session.scalar(select(func.count()).select_from(Event)) or 0,
    }


def sample_family_ids(session: Session, limit: int) -> list[int]:
    """A few family ids (the lowest), for demos and smoke checks."""
    return list(session.scalars(select(Family.id).order_by(Family.id).limit(limit)))


# --- Columnar snapshots for the rules engine -------------------------------------------------
# The batch path reads whole tables into Arrow over ADBC (COPY on PostgreSQL, the C API on
# SQLite): an order of magnitude faster than fetching Python tuples for millions of rows.

# The registry as of a period (one rule for every reader: the rules engine, campaigns, the
# well-being score and their exports). A person belongs, in a period, to the family of their
# latest membership that overlaps it: a member at any time in the period counts for it (a
# child born or joining on the 20th counts for that month, one who left on the 10th still
# counts for it and not for the next), and of two families in one month the later one counts
# (the one the person is in at the period's end, or last was). `until_on` is the last day of a
# membership. The deceased stay members of their last family: a membership that ended on or
# after the person's death (a death closes it) is read as open, so rules still count them in
# the periods after their death, with their death date (`death_on`). Facts are those that began
# by the period's end (the engine matches their validity to the period and its windows).
_STAYS_AFTER_DEATH = "(p.death_on IS NOT NULL AND m.until_on >= p.death_on)"


def _day(value: date) -> str:
    return f"'{value.isoformat()}'"  # a date object's own text: nothing to escape


def snapshot_person_sql(start: date, end: date) -> str:
    """Every person born by `end` once per membership overlapping [start, end] (once without
    any), with that membership's id, start and end (open for the deceased's last membership).

    `snapshot.persons_as_of` picks each person's family for a period within the span.
    """
    return f"""
SELECT p.id AS person_id, m.family_id AS family_id, m.role AS role, p.sex AS sex,
       p.birth_on AS birth_on, p.death_on AS death_on, p.region_kato AS region_kato,
       m.id AS member_id, m.from_on AS from_on,
       CASE WHEN {_STAYS_AFTER_DEATH} THEN NULL ELSE m.until_on END AS until_on
FROM registry_person p
LEFT JOIN registry_family_member m ON m.person_id = p.id AND m.from_on <= {_day(end)}
 AND (m.until_on IS NULL OR m.until_on >= {_day(start)} OR {_STAYS_AFTER_DEATH})
WHERE p.birth_on <= {_day(end)}
"""


def snapshot_fact_sql(end: date) -> str:
    """Live (not superseded) facts that began by `end`."""
    return f"""
SELECT person_id, kind, detail, qualifier, amount_minor, quantity, valid_from, valid_until, source
FROM registry_fact
WHERE superseded_at IS NULL AND valid_from <= {_day(end)}
"""


def snapshot_rows_for_family(
    session: Session, family_id: int, *, start: date, end: date
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The snapshot rows (persons, facts) of a family as of [start, end], through the session.

    Person rows are those of `snapshot_person_sql` (each membership overlapping the span) of
    every person with such a membership of this family, then the person's language; the caller
    keeps the persons whose family in the period is this one. Facts as `snapshot_fact_sql`.
    """
    persons_query, facts_query = _family_snapshot_queries()
    connection = session.connection()
    # Core execution of statements built once: this read runs on every online evaluation.
    params = {"family_id": family_id, "start": start, "end": end}
    persons = connection.execute(persons_query, params).all()
    person_ids = sorted({int(row[0]) for row in persons})
    facts = connection.execute(facts_query, {"person_ids": person_ids, "end": end}).all()
    return [tuple(r) for r in persons], [tuple(r) for r in facts]


@lru_cache(maxsize=1)
def _family_snapshot_queries() -> tuple[Select[Any], Select[Any]]:
    member, person, fact = FamilyMember.__table__.c, Person.__table__.c, Fact.__table__.c
    start, end = bindparam("start", type_=Date()), bindparam("end", type_=Date())

    def overlapping(m: Any, p: Any) -> tuple[Any, Any]:
        stays = and_(p.death_on.is_not(None), m.until_on >= p.death_on)
        return stays, and_(m.from_on <= end, or_(m.until_on.is_(None), m.until_on >= start, stays))

    stays, overlaps = overlapping(member, person)
    # Its own aliases: the same tables as the outer query would correlate it away.
    m2, p2 = FamilyMember.__table__.alias("m2"), Person.__table__.alias("p2")
    candidates = (
        select(m2.c.person_id)
        .select_from(m2.join(p2, p2.c.id == m2.c.person_id))
        .where(m2.c.family_id == bindparam("family_id"), overlapping(m2.c, p2.c)[1])
    )
    persons = (
        select(
            person.id,
            member.family_id,
            member.role,
            person.sex,
            person.birth_on,
            person.death_on,
            person.region_kato,
            member.id,
            member.from_on,
            case((stays, None), else_=member.until_on),
            person.language,
        )
        .select_from(Person.__table__)
        .join(FamilyMember.__table__, member.person_id == person.id)
        .where(person.id.in_(candidates), overlaps)
        .order_by(person.id, member.id)
    )
    facts = select(
        fact.person_id,
        fact.kind,
        fact.detail,
        fact.qualifier,
        fact.amount_minor,
        fact.quantity,
        fact.valid_from,
        fact.valid_until,
        fact.source,
    ).where(
        fact.person_id.in_(bindparam("person_ids", expanding=True)),
        fact.superseded_at.is_(None),
        fact.valid_from <= end,
    )
    return persons, facts


# Parent-child links with the child's life dates (the rules engine's `link` input).
# The live links as stored (the whole-registry read takes the child's life dates from the
# persons it reads beside them: a join here cost a second of a million families' read).
SNAPSHOT_LINK_ROWS_SQL = """
SELECT child_id, parent_id, relation, valid_from, valid_until, source
FROM registry_person_link
WHERE superseded_at IS NULL
"""

SNAPSHOT_LINK_SQL = """
SELECT l.child_id AS child_id, l.parent_id AS parent_id, l.relation AS relation,
       c.birth_on AS child_birth_on, c.death_on AS child_death_on,
       l.valid_from AS valid_from, l.valid_until AS valid_until, l.source AS source
FROM registry_person_link l
JOIN registry_person c ON c.id = l.child_id
WHERE l.superseded_at IS NULL
"""


def snapshot_links_for_persons(
    session: Session, person_ids: Sequence[int]
) -> list[tuple[object, ...]]:
    """The live links of persons as child or parent, and every link of their parents (so a
    mother's children count wherever they live), as SNAPSHOT_LINK_SQL's rows."""
    ids = sorted(set(person_ids))
    if not ids:
        return []
    parents: set[int] = set(ids)
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        parents.update(
            int(p)
            for p in session.scalars(
                select(PersonLink.parent_id).where(
                    PersonLink.child_id.in_(chunk), PersonLink.superseded_at.is_(None)
                )
            )
        )
    rows: dict[tuple[object, ...], None] = {}
    child = aliased(Person)
    columns = (
        PersonLink.child_id,
        PersonLink.parent_id,
        PersonLink.relation,
        child.birth_on,
        child.death_on,
        PersonLink.valid_from,
        PersonLink.valid_until,
        PersonLink.source,
    )

    def fetch(column: Any, wanted: Sequence[int]) -> set[int]:
        children: set[int] = set()
        for start in range(0, len(wanted), _ID_CHUNK):
            chunk = wanted[start : start + _ID_CHUNK]
            for row in session.execute(
                select(*columns)
                .join(child, child.id == PersonLink.child_id)
                .where(column.in_(chunk), PersonLink.superseded_at.is_(None))
            ):
                rows[tuple(row)] = None
                children.add(int(row[0]))
        return children

    fetch(PersonLink.child_id, ids)
    siblings = fetch(PersonLink.parent_id, sorted(parents))
    # The siblings' own links too: one adopted by another mother is not this mother's child.
    fetch(PersonLink.child_id, sorted(siblings - set(ids)))
    return list(rows)


# --- Reads for other domains (through registry/service.py) -----------------------------------


def persons_columns(
    session: Session, person_ids: Sequence[int], columns: tuple[str, ...]
) -> dict[int, tuple[Any, ...]]:
    """The named person columns of persons, by id (chunked under the bound-parameter limit)."""
    wanted = [getattr(Person, name) for name in columns]
    ids = sorted(set(person_ids))
    out: dict[int, tuple[Any, ...]] = {}
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        for row in session.execute(select(Person.id, *wanted).where(Person.id.in_(chunk))):
            out[row[0]] = tuple(row[1:])
    return out


def member_ids_of(session: Session, family_ids: Sequence[int]) -> dict[int, list[int]]:
    """The current members' person ids of families, by family."""
    ids = sorted(set(family_ids))
    out: dict[int, list[int]] = {}
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        for family_id, person_id in session.execute(
            select(FamilyMember.family_id, FamilyMember.person_id).where(
                FamilyMember.family_id.in_(chunk), FamilyMember.until_on.is_(None)
            )
        ):
            out.setdefault(family_id, []).append(person_id)
    return out


def current_members_of(
    session: Session, family_ids: Sequence[int]
) -> dict[int, list[tuple[int, str, date, date | None]]]:
    """Current members of families: (person id, role, birth date, death date), by family."""
    ids = sorted(set(family_ids))
    out: dict[int, list[tuple[int, str, date, date | None]]] = {}
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        for row in session.execute(
            select(
                FamilyMember.family_id,
                Person.id,
                FamilyMember.role,
                Person.birth_on,
                Person.death_on,
            )
            .join(Person, Person.id == FamilyMember.person_id)
            .where(FamilyMember.family_id.in_(chunk), FamilyMember.until_on.is_(None))
            .order_by(FamilyMember.family_id, Person.id)
        ):
            out.setdefault(row[0], []).append((row[1], row[2], row[3], row[4]))
    return out
