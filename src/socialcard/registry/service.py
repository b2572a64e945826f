"""Registry reads for operators: persons, families with members and current facts, search.

Every read of a person's data is written to the audit log with the actor and the purpose.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol, TypeVar

from sqlalchemy import Row
from sqlalchemy.orm import Session

from socialcard.core.clock import today
from socialcard.registry import repository
from socialcard.registry.enums import FactKind
from socialcard.registry.errors import FamilyNotFound, InvalidSearch, PersonNotFound
from socialcard.registry.identifiers import IdentifierError, scheme_for
from socialcard.registry.models import Fact
from socialcard.registry.regions import REGIONS
from socialcard.registry.schemas import (
    FactRead,
    FamilyRead,
    PersonDetail,
    PersonPage,
    PersonRead,
    RegionRead,
)
from socialcard.security import service as security_service
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor

# A person is in one state of these at a time, whatever the detail: the record with the latest
# start wins (a disability re-assessed from group II to group I supersedes the group II record).
STATE_KINDS = frozenset(
    {FactKind.DISABILITY, FactKind.UNEMPLOYMENT, FactKind.STUDY, FactKind.PENSION, FactKind.DEATH}
)


class LiveFact(Protocol):
    """What current_facts needs of a fact: an ORM Fact or a row of a query over facts."""

    @property
    def id(self) -> int: ...
    @property
    def person_id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def valid_from(self) -> date: ...


_F = TypeVar("_F", bound=LiveFact)
# Columns of the family read, in the order of the response schema.
_PERSON_FIELDS = tuple(PersonRead.model_fields)
_FACT_FIELDS = tuple(FactRead.model_fields)
_MEMBER_END = 7  # family_id, family_ref, family_region_kato, member_id, role, from_on, until_on


def current_facts(facts: Iterable[_F]) -> list[_F]:
    """Resolve live facts to the state in force: per agency, a later start supersedes an earlier
    one (per kind for state kinds, per kind and detail for amounts like incomes and loans).
    Facts of two agencies are both kept, each with its provenance."""
    latest: dict[tuple[int, str, str, str], _F] = {}
    for fact in facts:
        detail_key = "" if fact.kind in STATE_KINDS else fact.detail
        key = (fact.person_id, fact.kind, detail_key, fact.source)
        held = latest.get(key)
        if held is None or (fact.valid_from, fact.id) > (held.valid_from, held.id):
            latest[key] = fact
    return sorted(latest.values(), key=lambda f: (f.person_id, f.kind, f.detail, f.source))


def _facts_by_person(
    session: Session, person_ids: Sequence[int], on: date
) -> dict[int, list[Fact]]:
    grouped: dict[int, list[Fact]] = defaultdict(list)
    for fact in current_facts(repository.live_facts(session, person_ids, on=on)):
        grouped[fact.person_id].append(fact)
    return grouped


def get_person(
    session: Session, *, person_id: int, actor: Actor, purpose: Purpose, on: date | None = None
) -> PersonDetail:
    """One person with their current family and facts in force on a date (audited)."""
    person = repository.person_by_id(session, person_id)
    if person is None:
        raise PersonNotFound(f"no person with id {person_id}")
    as_of = on or today()
    membership = repository.current_membership(session, person_id)
    facts = _facts_by_person(session, [person_id], as_of).get(person_id, [])
    security_service.record_access(
        session,
        actor=actor,
        action="person.read",
        subject_type="person",
        subject_ids=[person_id],
        purpose=purpose,
    )
    return PersonDetail(
        **PersonRead.model_validate(person).model_dump(),
        family_id=membership.family_id if membership else None,
        role=membership.role if membership else None,
        as_of=as_of,
        facts=[FactRead.model_validate(f) for f in facts],
    )


def person_fact_history(
    session: Session, *, person_id: int, actor: Actor, purpose: Purpose
) -> list[FactRead]:
    """Every fact ever recorded for a person, superseded ones included (audited)."""
    if repository.person_by_id(session, person_id) is None:
        raise PersonNotFound(f"no person with id {person_id}")
    security_service.record_access(
        session,
        actor=actor,
        action="person.facts.read",
        subject_type="person",
        subject_ids=[person_id],
        purpose=purpose,
    )
    return [FactRead.model_validate(f) for f in repository.fact_history(session, person_id)]


def get_family(
    session: Session,
    *,
    family_id: int,
    actor: Actor,
    purpose: Purpose,
    on: date | None = None,
    include_past: bool = False,
) -> FamilyRead:
    """A family with its members and each member's facts in force (audited per member).

    The hottest read of the API: one query, no ORM objects, validated once into the schema.
    """
    as_of = on or today()
    rows = repository.family_sheet(
        session,
        family_id,
        on=as_of,
        include_past=include_past,
        person_columns=_PERSON_FIELDS,
        fact_columns=_FACT_FIELDS,
    )
    if not rows:
        raise FamilyNotFound(f"no family with id {family_id}")
    members: dict[int, dict[str, Any]] = {}
    live: list[Row[Any]] = []
    person_end = _MEMBER_END + len(_PERSON_FIELDS)
    for row in rows:
        member_id = row.member_id
        if member_id is None:
            continue
        if member_id not in members:
            members[member_id] = {
                "role": row.role,
                "from_on": row.from_on,
                "until_on": row.until_on,
                "person": dict(zip(_PERSON_FIELDS, row[_MEMBER_END:person_end], strict=True)),
            }
        if row.id is not None:
            live.append(row)
    facts: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for fact in current_facts(live):
        facts[fact.person_id].append(dict(zip(_FACT_FIELDS, fact[person_end:], strict=True)))
    person_ids = [member["person"]["id"] for member in members.values()]
    security_service.record_access(
        session,
        actor=actor,
        action="family.read",
        subject_type="person",
        subject_ids=person_ids,
        purpose=purpose,
    )
    for member in members.values():
        member["facts"] = facts.get(member["person"]["id"], [])
    first = rows[0]
    return FamilyRead.model_validate(
        {
            "id": first.family_id,
            "ref": first.family_ref,
            "region_kato": first.family_region_kato,
            "as_of": as_of,
            "members": list(members.values()),
        }
    )


def search_persons(
    session: Session,
    *,
    actor: Actor,
    purpose: Purpose,
    national_id: str | None,
    name: str | None,
    region: str | None,
    page: int,
    size: int,
) -> PersonPage:
    """Persons by national id, name prefix and region (KATO prefix), paginated (audited)."""
    if not (national_id or name or region):
        raise InvalidSearch(
            "give at least one of national_id, name or region",
            details=[{"field": "national_id", "reason": "at least one criterion is required"}],
        )
    if national_id:
        try:
            scheme_for("KZ").validate(national_id)
        except IdentifierError as exc:
            raise InvalidSearch(
                f"national_id: {exc}", details=[{"field": "national_id", "reason": str(exc)}]
            ) from None
    region_prefix = None
    if region:
        if not (region.isascii() and region.isdigit() and 2 <= len(region) <= 9):
            raise InvalidSearch(
                "region: must be 2 to 9 digits of a KATO code",
                details=[{"field": "region", "reason": "must be 2 to 9 digits of a KATO code"}],
            )
        if region[:2] not in REGIONS:
            raise InvalidSearch(
                f"region: unknown region {region[:2]!r}",
                details=[{"field": "region", "reason": "unknown region"}],
            )
        region_prefix = region.rstrip("0") if len(region) == 9 else region
        region_prefix = region_prefix if len(region_prefix) >= 2 else region[:2]
    rows, total = repository.search_persons(
        session,
        national_id=national_id,
        name=name,
        region_prefix=region_prefix,
        offset=(page - 1) * size,
        limit=size,
    )
    security_service.record_access(
        session,
        actor=actor,
        action="person.search",
        subject_type="person",
        subject_ids=[p.id for p in rows],
        purpose=purpose,
    )
    return PersonPage(
        items=[PersonRead.model_validate(p) for p in rows], page=page, size=size, total=total
    )


def preferred_language(session: Session, *, person_id: int) -> str | None:
    """The language a person asked to be addressed in (None for an unknown person)."""
    return repository.person_language(session, person_id)


# --- Reads for other domains (proactive, wallet): only the columns they need, not audited
# (no operator sees them; they address a message or pick a recipient). One place knows the
# registry's tables.


@dataclass(frozen=True, slots=True)
class Contact:
    """How to reach a person: phone, language, and whether they are alive."""

    phone: str | None
    language: str
    death_on: date | None


@dataclass(frozen=True, slots=True)
class LifeDates:
    """A person's birth and death dates and region."""

    birth_on: date
    death_on: date | None
    region_kato: str


@dataclass(frozen=True, slots=True)
class Member:
    """A current member of a family."""

    person_id: int
    role: str
    birth_on: date
    death_on: date | None


def contacts(session: Session, person_ids: Sequence[int]) -> dict[int, Contact]:
    """Phone, language and death date of persons, by id (unknown ids are absent)."""
    rows = repository.persons_columns(session, person_ids, ("phone", "language", "death_on"))
    return {pid: Contact(*row) for pid, row in rows.items()}


def life_dates(session: Session, person_ids: Sequence[int]) -> dict[int, LifeDates]:
    """Birth date, death date and region of persons, by id (unknown ids are absent)."""
    rows = repository.persons_columns(session, person_ids, ("birth_on", "death_on", "region_kato"))
    return {pid: LifeDates(*row) for pid, row in rows.items()}


def current_family_id(session: Session, *, person_id: int) -> int | None:
    """The family a person currently belongs to (None when in none)."""
    membership = repository.current_membership(session, person_id)
    return membership.family_id if membership is not None else None


def current_members(session: Session, family_ids: Sequence[int]) -> dict[int, list[Member]]:
    """The current members of families, by family id, in person id order."""
    return {
        family_id: [Member(*row) for row in rows]
        for family_id, rows in repository.current_members_of(session, family_ids).items()
    }


def record_family_read(
    session: Session,
    *,
    actor: Actor,
    action: str,
    family_ids: Iterable[int],
    purpose: Purpose,
    person_ids: Iterable[int] = (),
) -> None:
    """Audit a read of families' data once per current member (so each person's "who read my
    data" shows it), plus `person_ids` read directly; a family with no current member is
    recorded as the family."""
    families = sorted(set(family_ids))
    members = repository.member_ids_of(session, families) if families else {}
    persons = {pid for ids in members.values() for pid in ids} | set(person_ids)
    security_service.record_access(
        session,
        actor=actor,
        action=action,
        subject_type="person",
        subject_ids=sorted(persons),
        purpose=purpose,
    )
    security_service.record_access(
        session,
        actor=actor,
        action=action,
        subject_type="family",
        subject_ids=[f for f in families if f not in members],
        purpose=purpose,
    )


def list_regions() -> list[RegionRead]:
    """The regions of the country with their names."""
    return [
        RegionRead(kato=code + "0000000", name_kk=n["kk"], name_ru=n["ru"], name_en=n["en"])
        for code, n in sorted(REGIONS.items())
    ]


def registry_counts(session: Session) -> dict[str, int]:
    """How many persons, families, facts and events the registry holds."""
    return repository.table_counts(session)


def sample_family_ids(session: Session, limit: int = 3) -> list[int]:
    """A few family ids to show in demos."""
    return repository.sample_family_ids(session, limit)


def person_id_by_national_id(session: Session, national_id: str) -> int | None:
    """The id of the person with this national identifier (a citizen signing in as themselves;
    not an operator read, so not audited)."""
    person = repository.person_by_national_id(session, national_id.strip())
    return person.id if person is not None else None


def national_id_of(session: Session, person_id: int) -> str | None:
    """A person's national identifier, for the demo's printed sign-in hint (not an operator
    read of personal data: nothing else about the person is read)."""
    person = repository.person_by_id(session, person_id)
    return person.national_id if person is not None else None
