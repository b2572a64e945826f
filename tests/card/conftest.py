"""Card fixtures: a clean verifier and rate limiter per test, and card builders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy.orm import Session

from socialcard.card import service
from socialcard.card.models import Card
from socialcard.core import ratelimit
from socialcard.core.clock import today
from socialcard.core.config import get_settings
from socialcard.registry.models import Person
from tests.factories import make_family, make_person


@pytest.fixture(autouse=True)
def _fresh_card_state() -> Iterator[None]:
    service.reset_online_verifier()
    ratelimit.reset_limiters()
    yield
    service.reset_online_verifier()
    ratelimit.reset_limiters()


def years_ago(years: int) -> date:
    day = today()
    return day.replace(year=day.year - years, day=min(day.day, 28))


def make_card(
    session: Session,
    *,
    statuses: tuple[str, ...] = ("pensioner",),
    region_kato: str = "751110000",
    person: Person | None = None,
) -> Card:
    """A person (in a one-person family) with a card holding these statuses."""
    if person is None:
        person = make_person(session, birth_on=years_ago(70), region_kato=region_kato)
        make_family(session, [(person, "head")], region_kato=region_kato)
    card = Card(
        person_id=person.id,
        region_kato=region_kato,
        state="active",
        statuses=json.dumps(sorted(statuses)),
        statuses_period=f"{today():%Y-%m}",
    )
    session.add(card)
    session.flush()
    return card


def audience() -> str:
    return get_settings().card.audience
