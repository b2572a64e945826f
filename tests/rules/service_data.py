"""Registry families for the rules service tests, built with the shared factories."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from socialcard.registry.models import Family
from tests.factories import make_fact, make_family, make_person


@dataclass
class Families:
    large: Family  # head, spouse and four children under 18: the large-family allowance
    small: Family  # head and one child: no large-family allowance
    retired: Family  # one pensioner living alone
    large_head: int
    large_members: list[int]
    retired_person: int


def build_families(session: Session) -> Families:
    head = make_person(session, sex="M", birth_on=date(1980, 1, 10), language="ru")
    spouse = make_person(session, sex="F", birth_on=date(1982, 5, 5))
    children = [
        make_person(session, sex="F", birth_on=date(2010 + i, 3, 1), language="kk")
        for i in range(4)
    ]
    large = make_family(
        session,
        [(head, "head"), (spouse, "spouse"), *((c, "child") for c in children)],
        region_kato="751110000",
    )
    make_fact(session, head, amount_minor=300_000_00)
    parent = make_person(session, sex="F", birth_on=date(1990, 2, 2), language="en")
    child = make_person(session, sex="M", birth_on=date(2020, 7, 7))
    small = make_family(session, [(parent, "head"), (child, "child")], region_kato="711110000")
    make_fact(session, parent, amount_minor=20_000_00)
    pensioner = make_person(session, sex="F", birth_on=date(1950, 4, 4), region_kato="711110000")
    retired = make_family(session, [(pensioner, "head")], region_kato="711110000")
    return Families(
        large=large,
        small=small,
        retired=retired,
        large_head=head.id,
        large_members=[head.id, spouse.id, *(c.id for c in children)],
        retired_person=pensioner.id,
    )
