"""Registry snapshots as Arrow tables: the batch (ADBC) and one-family (session) paths agree."""

from __future__ import annotations

from datetime import date, timedelta

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from socialcard.registry.models import FamilyMember, PersonLink
from socialcard.registry.snapshot import (
    FACT_SCHEMA,
    HISTORY_SCHEMA,
    LINK_SCHEMA,
    PERSON_SCHEMA,
    family_snapshot,
    latest_memberships,
    persons_as_of,
    registry_history,
    registry_links_in_session,
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


def test_every_read_dates_memberships_and_keeps_the_deceased(
    committed_engine: Engine, database_url: str
) -> None:
    with Session(committed_engine) as session:
        head = make_person(session, birth_on=date(1970, 1, 1), sex="M", death_on=date(2026, 2, 10))
        child = make_person(session, birth_on=date(2012, 1, 1))
        leaver = make_person(session, birth_on=date(2005, 1, 1))
        joiner = make_person(session, birth_on=date(2015, 1, 1))
        family = make_family(session, [(child, "child")])
        for person, role, start, end in [
            (head, "head", date(2010, 1, 1), date(2026, 2, 10)),  # closed by the death
            (leaver, "child", date(2010, 1, 1), date(2026, 1, 15)),
            (joiner, "child", date(2026, 3, 5), None),
        ]:
            session.add(
                FamilyMember(
                    family_id=family.id,
                    person_id=person.id,
                    role=role,
                    from_on=start,
                    until_on=end,
                )
            )
        session.commit()
        ids = {"head": head.id, "child": child.id, "leaver": leaver.id, "joiner": joiner.id}
        family_id = family.id
    expected = {
        "2026-01": {"head", "child", "leaver"},
        "2026-02": {"head", "child"},
        "2026-03": {"head", "child", "joiner"},
    }
    history = registry_history(database_url, Period.parse("2026-01"), Period.parse("2026-03"))
    for month, names in expected.items():
        period = Period.parse(month)
        want = {ids[name] for name in names}
        persons, _ = registry_snapshot(database_url, period)
        in_family = {r["person_id"] for r in persons.to_pylist() if r["family_id"] == family_id}
        assert in_family == want, month
        assert persons.num_rows == len(set(persons.column("person_id").to_pylist()))
        from_history, _ = history.as_of(period)
        assert from_history.sort_by("person_id").equals(persons.sort_by("person_id")), month
        with Session(committed_engine) as session:
            one, _ = family_snapshot(session, family_id, period)
        assert set(one.column("person_id").to_pylist()) == want, month
    dead = next(r for r in persons.to_pylist() if r["person_id"] == ids["head"])
    assert dead["death_on"] == date(2026, 2, 10)
    assert dead["role"] == "head"


# --- persons_as_of: the choice of each person's family in a period -----------------------------

_DAY0 = date(2024, 1, 1)


@st.composite
def _histories(draw: st.DrawFn) -> tuple[list[dict[str, object]], Period]:
    """Persons (some born after the month) with up to three memberships in a row (each may
    share its first day with the previous one's last, as a move does; the last may be open),
    some persons with none, the rows in any order; and a month of 2024–2025."""
    rows: list[dict[str, object]] = []
    member_id = 0
    for person_id in range(1, draw(st.integers(1, 8)) + 1):
        born = _DAY0 + timedelta(days=draw(st.integers(-400, 700)))
        base = {"person_id": person_id, "sex": "F", "birth_on": born}
        base |= {"death_on": None, "region_kato": "751110000"}
        day = draw(st.integers(0, 300))
        count = draw(st.integers(0, 3))
        if count == 0:
            rows.append(base | {"family_id": None, "role": None, "member_id": None})
            rows[-1] |= {"from_on": None, "until_on": None}
        for i in range(count):
            start = day + draw(st.integers(0, 60))
            length = draw(st.integers(0, 200))
            is_open = i == count - 1 and draw(st.booleans())
            member_id += 1
            rows.append(
                base
                | {
                    "family_id": draw(st.integers(1, 4)),
                    "role": draw(st.sampled_from(["head", "spouse", "child"])),
                    "member_id": member_id,
                    "from_on": _DAY0 + timedelta(days=start),
                    "until_on": None if is_open else _DAY0 + timedelta(days=start + length),
                }
            )
            day = start + length
    order = draw(st.permutations(range(len(rows))))
    month = draw(st.integers(0, 23))
    return [rows[i] for i in order], Period.month(2024 + month // 12, month % 12 + 1)


@given(_histories())
@settings(max_examples=300, deadline=None)
def test_each_person_once_in_the_family_of_their_latest_membership_in_the_period(
    case: tuple[list[dict[str, object]], Period],
) -> None:
    rows, period = case
    table = persons_as_of(pa.Table.from_pylist(rows, schema=HISTORY_SCHEMA), period)

    assert table.schema == PERSON_SCHEMA
    got = {r["person_id"]: (r["family_id"], r["role"]) for r in table.to_pylist()}
    born = {r["person_id"] for r in rows if r["birth_on"] <= period.end}  # type: ignore[operator]
    assert table.num_rows == len(got)
    assert set(got) == born  # the unborn are not in the period's registry
    for person_id, chosen in got.items():
        holding = [
            r
            for r in rows
            if r["person_id"] == person_id
            and r["member_id"] is not None
            and r["from_on"] <= period.end  # type: ignore[operator]
            and (r["until_on"] is None or r["until_on"] >= period.start)  # type: ignore[operator]
        ]
        if not holding:
            assert chosen == (None, None)
            continue
        latest = max(holding, key=lambda r: (r["from_on"], r["member_id"]))
        assert chosen == (latest["family_id"], latest["role"])
    # The one-family path's choice in plain Python gives the same answers.
    holding_rows = [
        [r[name] for name in HISTORY_SCHEMA.names]
        for r in sorted(rows, key=lambda r: r["person_id"])  # type: ignore[arg-type, return-value]
        if r["member_id"] is not None
        and r["from_on"] <= period.end  # type: ignore[operator]
        and (r["until_on"] is None or r["until_on"] >= period.start)  # type: ignore[operator]
    ]
    plain = {row[0]: (row[1], row[2]) for row in latest_memberships(holding_rows, period)}
    assert plain == {pid: fam for pid, fam in got.items() if fam != (None, None)}


def test_the_whole_registry_read_gives_the_links_with_each_childs_life(
    committed_engine: Engine, database_url: str
) -> None:
    """The links read beside the registry (their child's dates from the persons read) are the
    session's links, less those of a child not yet born by the span's end."""
    with Session(committed_engine) as session:
        mother = make_person(session, birth_on=date(1980, 1, 1), sex="F")
        father = make_person(session, birth_on=date(1978, 5, 5), sex="M")
        older = make_person(session, birth_on=date(2010, 2, 2), sex="F", death_on=date(2026, 2, 1))
        child = make_person(session, birth_on=date(2026, 3, 31), sex="M")
        unborn = make_person(session, birth_on=date(2026, 4, 1), sex="M")
        make_family(session, [(mother, "head"), (child, "child")])
        today = date(2026, 1, 1)
        for kid, parent, relation, superseded in (
            (older, mother, "mother", False),
            (child, mother, "mother", False),
            (child, father, "father", False),
            (child, father, "guardian", True),
            (unborn, mother, "mother", False),
        ):
            link = PersonLink(
                child_id=kid.id,
                parent_id=parent.id,
                relation=relation,
                valid_from=kid.birth_on if kid.birth_on <= today else today,
                source="rag",
            )
            session.add(link)
            session.flush()
            if superseded:
                from socialcard.core.clock import utcnow

                link.superseded_at = utcnow()
        session.commit()
        expected = registry_links_in_session(session)
        unborn_id = unborn.id

    history = registry_history(database_url, MARCH, MARCH, links=True)
    assert history.links is not None
    assert history.links.schema == LINK_SCHEMA

    def key(row: dict[str, object]) -> tuple[object, ...]:
        return tuple(row[name] for name in LINK_SCHEMA.names)

    wanted = sorted((key(r) for r in expected.to_pylist() if r["child_id"] != unborn_id), key=str)
    assert len(wanted) == 3
    assert sorted((key(r) for r in history.links.to_pylist()), key=str) == wanted
