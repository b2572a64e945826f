"""Registry snapshots as Arrow tables: the batch (ADBC) and one-family (session) paths agree."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from socialcard.registry.snapshot import (
    FACT_SCHEMA,
    PERSON_SCHEMA,
    family_snapshot,
    registry_snapshot,
)
from socialcard.rules.engine.periods import Period
from tests.factories import make_fact, make_family, make_person

MARCH = Period.parse("2026-03")


def test_batch_and_family_snapshots_agree(committed_engine: Engine, database_url: str) -> None:
    with Session(committed_engine) as session:
        mother = make_person(session, birth_on=date(1985, 3, 1), sex="F")
        child = make_person(session, birth_on=date(2015, 9, 9), sex="M")
        lone = make_person(session, birth_on=date(1950, 1, 1), sex="M", death_on=date(2026, 1, 2))
        family = make_family(session, [(mother, "head"), (child, "child")])
        make_fact(session, mother, amount_minor=123_45)
        make_fact(
            session,
            child,
            kind="disability",
            detail="child",
            amount_minor=None,
            source="msek",
            valid_until=date(2027, 1, 1),
        )
        superseded = make_fact(session, mother, source="enpf")
        from socialcard.core.clock import utcnow

        superseded.superseded_at = utcnow()
        session.commit()
        family_id, lone_id = family.id, lone.id

    persons, facts = registry_snapshot(database_url, MARCH)
    assert persons.schema == PERSON_SCHEMA
    assert facts.schema == FACT_SCHEMA
    rows = {r["person_id"]: r for r in persons.to_pylist()}
    assert rows[lone_id]["family_id"] is None
    assert rows[lone_id]["death_on"] == date(2026, 1, 2)
    assert facts.num_rows == 2  # the superseded fact is not live

    with Session(committed_engine) as session:
        one_persons, one_facts = family_snapshot(session, family_id, MARCH)
    assert sorted(one_persons.to_pylist(), key=lambda r: r["person_id"]) == sorted(
        (r for r in persons.to_pylist() if r["family_id"] == family_id),
        key=lambda r: r["person_id"],
    )
    key = lambda r: (r["person_id"], r["kind"])  # noqa: E731
    assert sorted(one_facts.to_pylist(), key=key) == sorted(facts.to_pylist(), key=key)
