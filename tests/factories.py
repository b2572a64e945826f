"""Small data builders for tests: make_person(session, **overrides) and friends."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from socialcard.registry.identifiers import make_iin
from socialcard.registry.models import Fact, Family, FamilyMember, Person

_serial = itertools.count(1)


def new_iin(birth_on: date, sex: str) -> str:
    """A valid, test-unique ИИН for a birth date and sex."""
    while True:
        iin = make_iin(birth_on, sex, 5000 + next(_serial) % 5000)
        if iin is not None:
            return iin


def make_person(session: Session, **overrides: Any) -> Person:
    birth_on = overrides.pop("birth_on", date(1985, 6, 15))
    sex = overrides.pop("sex", "F")
    values: dict[str, Any] = {
        "national_id": new_iin(birth_on, sex),
        "last_name": "Абенова",
        "first_name": "Айгуль",
        "patronymic": "Серикқызы",
        "birth_on": birth_on,
        "sex": sex,
        "phone": "+77011234567",
        "language": "kk",
        "region_kato": "751110000",
        "address": "Алматы, ул. Абая 1",
    }
    values.update(overrides)
    person = Person(**values)
    session.add(person)
    session.flush()
    return person


def make_family(session: Session, members: list[tuple[Person, str]], **overrides: Any) -> Family:
    family = Family(
        ref=overrides.pop("ref", f"F-{next(_serial)}"),
        region_kato=overrides.pop("region_kato", "751110000"),
    )
    session.add(family)
    session.flush()
    for person, role in members:
        session.add(
            FamilyMember(
                family_id=family.id,
                person_id=person.id,
                role=role,
                from_on=overrides.get("from_on", date(2020, 1, 1)),
            )
        )
    session.flush()
    return family


def make_fact(session: Session, person: Person, **overrides: Any) -> Fact:
    values: dict[str, Any] = {
        "person_id": person.id,
        "kind": "income",
        "detail": "wages",
        "amount_minor": 250_000_00,
        "valid_from": date(2025, 1, 1),
        "source": "sgd",
    }
    values.update(overrides)
    fact = Fact(**values)
    session.add(fact)
    session.flush()
    return fact
