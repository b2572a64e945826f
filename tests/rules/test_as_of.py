"""Decisions as of their period: a family whose members change during the year (marriage,
birth, a child joining, a child leaving, the head's death) is decided each month as that
month's family would have been, online and in a whole-registry run of the twelve months."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy.orm import Session

from socialcard.registry.ingestion import service as ingestion_service
from socialcard.registry.models import Family, FamilyMember, Person
from socialcard.registry.snapshot import FACT_SCHEMA, PERSON_SCHEMA
from socialcard.rules import service
from socialcard.rules.engine import CompiledPack, OnlineEvaluator
from socialcard.rules.engine.periods import Period
from tests.factories import make_fact, make_family, make_person
from tests.rules.conftest import KZ

MONTHS = [f"2026-{m:02d}" for m in range(1, 13)]
DEATH = date(2026, 10, 12)

# Who is in the family each month, written out by hand from the timeline of `_history`:
# the wife marries in on 10 March, the fourth child is born on 15 May, a child joins on
# 1 July, the eldest leaves on 20 August (still a member that month), the head dies on
# 12 October and stays, deceased, on the family's record.
BEFORE = ("head", "c1", "c2", "c3")
MARRIED = ("head", "wife", "c1", "c2", "c3")
BORN = (*MARRIED, "c4")
JOINED = (*BORN, "c5")
LEFT = ("head", "wife", "c2", "c3", "c4", "c5")
EXPECTED = {
    "2026-01": BEFORE,
    "2026-02": BEFORE,
    "2026-03": MARRIED,
    "2026-04": MARRIED,
    "2026-05": BORN,
    "2026-06": BORN,
    "2026-07": JOINED,
    "2026-08": JOINED,
    "2026-09": LEFT,
    "2026-10": LEFT,
    "2026-11": LEFT,
    "2026-12": LEFT,
}
ROLES = {"head": "head", "wife": "spouse"}


@dataclass
class History:
    family: Family
    people: dict[str, Person]


def _member(session: Session, family: Family, person: Person, role: str, **dates: Any) -> None:
    session.add(FamilyMember(family_id=family.id, person_id=person.id, role=role, **dates))
    session.flush()


def _history(session: Session) -> History:
    people = {
        "head": make_person(session, birth_on=date(1980, 4, 4), sex="M"),
        "wife": make_person(session, birth_on=date(1986, 2, 2), sex="F"),
        "c1": make_person(session, birth_on=date(2008, 6, 1), sex="M"),
        "c2": make_person(session, birth_on=date(2011, 1, 1), sex="F"),
        "c3": make_person(session, birth_on=date(2014, 1, 1), sex="M"),
        "c4": make_person(session, birth_on=date(2026, 5, 15), sex="F"),
        "c5": make_person(session, birth_on=date(2016, 7, 7), sex="M"),
    }
    family = make_family(session, [])
    _member(session, family, people["head"], "head", from_on=date(2015, 1, 1))
    for name in ("c1", "c2", "c3"):
        _member(session, family, people[name], "child", from_on=date(2015, 1, 1))
    # Marriage: the wife leaves her own household the day she joins this one.
    hers = make_family(session, [])
    _member(
        session,
        hers,
        people["wife"],
        "head",
        from_on=date(2010, 1, 1),
        until_on=date(2026, 3, 10),
    )
    _member(session, family, people["wife"], "spouse", from_on=date(2026, 3, 10))
    _member(session, family, people["c4"], "child", from_on=date(2026, 5, 15))
    # The fifth child lived with relatives until he joined.
    relatives = make_family(session, [(make_person(session, birth_on=date(1960, 1, 1)), "head")])
    _member(
        session,
        relatives,
        people["c5"],
        "child",
        from_on=date(2016, 7, 7),
        until_on=date(2026, 7, 1),
    )
    _member(session, family, people["c5"], "child", from_on=date(2026, 7, 1))
    eldest = session.query(FamilyMember).filter_by(person_id=people["c1"].id).one()
    eldest.until_on = date(2026, 8, 20)
    make_fact(session, people["head"], amount_minor=180_000_00, valid_from=date(2020, 1, 1))
    make_fact(session, people["wife"], amount_minor=90_000_00, valid_from=date(2020, 1, 1))
    session.flush()
    # The death comes as the civil registry reports it (it ends the head's membership).
    result, _ = ingestion_service.submit_batch(
        session,
        source="deaths",
        rows=[{"national_id": people["head"].national_id, "valid_from": DEATH.isoformat()}],
        batch_key="death-of-the-head",
    )
    assert result.rows_accepted == 1
    session.expire_all()
    return History(family, people)


def _month_family(history: History, month: str) -> tuple[pa.Table, pa.Table]:
    """The family as it was in the month, as the engine's input, built by hand (no registry
    read): its members then, the head's death only once it has happened."""
    period = Period.parse(month)
    rows = []
    for name in EXPECTED[month]:
        person = history.people[name]
        died = DEATH if name == "head" and period.end >= DEATH else None
        rows.append(
            {
                "person_id": person.id,
                "family_id": history.family.id,
                "role": ROLES.get(name, "child"),
                "sex": person.sex,
                "birth_on": person.birth_on,
                "death_on": died,
                "region_kato": person.region_kato,
            }
        )
    wages = {"head": 180_000_00, "wife": 90_000_00}
    facts = [
        {
            "person_id": history.people[name].id,
            "kind": "income",
            "detail": "wages",
            "qualifier": None,
            "amount_minor": amount,
            "quantity": None,
            "valid_from": date(2020, 1, 1),
            "valid_until": None,
            "source": "sgd",
        }
        for name, amount in wages.items()
        if name in EXPECTED[month]
    ]
    return (
        pa.Table.from_pylist(rows, schema=PERSON_SCHEMA),
        pa.Table.from_pylist(facts, schema=FACT_SCHEMA),
    )


def _expected(kz: CompiledPack, history: History, month: str) -> dict[tuple[str, int], Any]:
    person, fact = _month_family(history, month)
    evaluator = OnlineEvaluator(kz)
    try:
        decisions = evaluator.evaluate(person, fact, Period.parse(month)).decisions
    finally:
        evaluator.close()
    return {(d.program.id, d.entity_id): (d.eligible, d.amount_minor) for d in decisions}


class TestAsOfEachMonth:
    def test_online_each_month_decides_that_months_family(
        self, session: Session, kz: CompiledPack
    ) -> None:
        history = _history(session)
        for month in MONTHS:
            got = service.evaluate_family(
                session, family_id=history.family.id, period=month, pack_path=KZ
            )
            members = {history.people[name].id for name in EXPECTED[month]}
            assert set(got.members) == members, month
            decided = {
                (d.program_id, d.entity_id): (d.eligible, d.amount_minor) for d in got.decisions
            }
            assert decided == _expected(kz, history, month), month

    def test_a_whole_registry_run_of_the_year_decides_each_month_as_of_it(
        self, session: Session, kz: CompiledPack
    ) -> None:
        history = _history(session)
        run = service.run_rules(
            session,
            period=MONTHS[0],
            months=12,
            pack_path=KZ,
            snapshot=service.session_snapshot(session, period=MONTHS[0], months=12),
        )
        programs = [p.program.id for p in kz.programs if p.program.period == "month"]
        for month in MONTHS:
            members = {history.people[name].id for name in EXPECTED[month]}
            stored = {
                (d.program_id, d.entity_id): d.amount_minor
                for program_id in programs
                for d in service.eligible_decisions(
                    session, run_id=run.id, program_id=program_id, period=month
                )
                if d.family_id == history.family.id
                or (d.entity_type == "person" and d.entity_id in members)
            }
            expected = {
                key: amount
                for key, (eligible, amount) in _expected(kz, history, month).items()
                if eligible
            }
            assert stored == expected, month

    def test_the_survivors_are_paid_after_the_death_and_not_before(self, session: Session) -> None:
        history = _history(session)
        paid = {}
        for month in MONTHS:
            got = service.evaluate_family(
                session,
                family_id=history.family.id,
                period=month,
                programs=["kz.survivor"],
                pack_path=KZ,
            )
            (decision,) = got.decisions
            paid[month] = decision.eligible
            if decision.eligible:
                # Paid to the widow, not to the deceased head still on the family's record.
                assert decision.person_id == history.people["wife"].id
        assert [m for m, eligible in paid.items() if eligible] == ["2026-10", "2026-11", "2026-12"]
        run = service.run_rules(
            session,
            period="2026-11",
            programs=["kz.survivor"],
            pack_path=KZ,
            snapshot=service.session_snapshot(session, period="2026-11"),
        )
        (stored,) = [
            d
            for d in service.eligible_decisions(session, run_id=run.id, program_id="kz.survivor")
            if d.family_id == history.family.id
        ]
        assert stored.person_id == history.people["wife"].id


@pytest.mark.parametrize("month", ["2026-02", "2026-09"])
def test_a_person_between_families_counts_in_the_later_one(session: Session, month: str) -> None:
    # In February the wife is still the head of her own household; from the day of the
    # marriage (10 March) she counts in her husband's family, never in both.
    history = _history(session)
    person, _ = service.session_snapshot(session, period=month).as_of(Period.parse(month))
    rows = [r for r in person.to_pylist() if r["person_id"] == history.people["wife"].id]
    assert len(rows) == 1
    in_family = rows[0]["family_id"] == history.family.id
    assert in_family == (month >= "2026-03")
