"""A person's age in months at the period start is never negative, in every evaluator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from socialcard.rules.engine import CompiledPack, Engine, OnlineEvaluator, Period
from socialcard.rules.engine.explain import Decision
from socialcard.rules.engine.synthetic import FACT_SCHEMA, LINK_SCHEMA, PERSON_SCHEMA

PERIOD = Period.parse("2026-03")


def household(birth: date) -> tuple[pa.Table, pa.Table, pa.Table]:
    """An uninsured mother at home with her child (the child's own parent: its carer)."""
    persons = [
        {"person_id": 1, "family_id": 1, "role": "head", "sex": "F", "birth_on": date(1994, 5, 2)},
        {"person_id": 2, "family_id": 1, "role": "child", "sex": "M", "birth_on": birth},
    ]
    for p in persons:
        p.update(death_on=None, region_kato="751110000")
    mother = {
        "child_id": 2,
        "parent_id": 1,
        "relation": "mother",
        "child_birth_on": birth,
        "child_death_on": None,
        "valid_from": birth,
        "valid_until": None,
        "source": "zags",
    }
    return (
        pa.Table.from_pylist(persons, schema=PERSON_SCHEMA),
        pa.Table.from_pylist([], schema=FACT_SCHEMA),
        pa.Table.from_pylist([mother], schema=LINK_SCHEMA),
    )


def child_care(kz: CompiledPack, birth: date) -> list[Decision]:
    """The child-care decision on the child from the batch and both online evaluators."""
    person, fact, link = household(birth)
    out: list[Decision] = []
    engine = Engine(kz, threads=1)
    try:
        engine.load(person, fact, link)
        result = engine.evaluate(PERIOD)
        out += [
            d for d in result.decisions("kz.child_care", eligible_only=False) if d.entity_id == 2
        ]
    finally:
        engine.close()
    for backend in ("python", "duckdb"):
        online = (
            OnlineEvaluator(kz) if backend == "python" else OnlineEvaluator(kz, backend="duckdb")
        )
        try:
            decisions = online.evaluate(person, fact, PERIOD, link=link)
            out.append(decisions.get("kz.child_care", 2))
        finally:
            online.close()
    assert len(out) == 3
    return out


@pytest.mark.parametrize(
    ("birth", "months"),
    [
        (date(2026, 3, 31), 0),  # born on the period's last day
        (date(2026, 3, 15), 0),  # born after the 1st: was -1
        (date(2026, 3, 2), 0),
        (date(2026, 3, 1), 0),  # born on the period start
        (date(2026, 2, 15), 0),  # not a full month on 1 March
        (date(2026, 2, 1), 1),
        (date(2025, 3, 2), 11),
        (date(2025, 3, 1), 12),
    ],
)
def test_age_in_months_at_the_period_start(kz: CompiledPack, birth: date, months: int) -> None:
    for decision in child_care(kz, birth):
        assert decision.variables["age_months"] == months, decision.variables
        assert decision.eligible


def test_an_explanation_never_says_minus_one_month(kz: CompiledPack) -> None:
    decision = child_care(kz, date(2026, 3, 15))[1]
    text = decision.explain("en", kz.pack).text()
    assert "The child is 0 months old" in text
    assert "-1" not in text


@pytest.fixture(scope="module")
def evaluators(kz: CompiledPack) -> Iterator[tuple[OnlineEvaluator, OnlineEvaluator]]:
    python, duck = OnlineEvaluator(kz), OnlineEvaluator(kz, backend="duckdb")
    yield python, duck
    python.close()
    duck.close()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    year=st.integers(2024, 2026),
    month=st.integers(1, 12),
    days_before_end=st.integers(0, 40 * 366),
)
def test_age_in_months_is_full_months_and_never_negative(
    evaluators: tuple[OnlineEvaluator, OnlineEvaluator], year: int, month: int, days_before_end: int
) -> None:
    period = Period.month(year, month)
    birth = period.end - timedelta(days=days_before_end)
    start = period.start
    full = (start.year * 12 + start.month) - (birth.year * 12 + birth.month)
    expected = max(0, full - (birth.day > start.day))
    person, fact, _ = household(birth)
    for online in evaluators:
        decision = online.evaluate(person, fact, period).get("kz.child_care", 2)
        assert decision.variables["age_months"] == expected
