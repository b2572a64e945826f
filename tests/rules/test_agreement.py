"""Batch and online evaluation agree, decision by decision, on random households.

Three evaluators run the same bound stages: the batch (numpy fact aggregates, then DuckDB), the
online row-by-row Python evaluator (the default), and the online single DuckDB statement.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from socialcard.rules.engine import CompiledPack, Engine, OnlineEvaluator, Period
from socialcard.rules.engine.explain import Decision
from socialcard.rules.engine.loader import FACT_DETAILS
from socialcard.rules.engine.synthetic import FACT_SCHEMA, LINK_SCHEMA, PERSON_SCHEMA, generate

QUALIFIERS = {
    "disability": ["general_illness", "occupational", "from_childhood", "other", None],
    "study": ["full_time", "part_time", None],
}


@st.composite
def fact(draw: st.DrawFn, start: date) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(FACT_DETAILS)))
    detail = draw(st.sampled_from(sorted(FACT_DETAILS[kind])))
    begin = start + timedelta(days=draw(st.integers(-2500, 40)))
    until = draw(st.one_of(st.none(), st.integers(-400, 400)))
    return {
        "kind": kind,
        "detail": detail,
        "qualifier": draw(st.sampled_from(QUALIFIERS.get(kind, [None]))),
        "amount_minor": draw(st.integers(0, 2_000_000_00)) if kind in ("income", "loan") else None,
        "quantity": draw(st.integers(0, 45)) if kind in ("pension", "property") else None,
        "valid_from": begin,
        "valid_until": None if until is None else start + timedelta(days=until),
        "source": draw(st.sampled_from(["kgd", "enpf", "mtszn"])),
    }


@st.composite
def member(draw: st.DrawFn, start: date, first: bool) -> dict[str, Any]:
    age_days = draw(st.integers(-20, 95 * 365))
    role = (
        "head" if first else draw(st.sampled_from(["spouse", "child", "child", "parent", "other"]))
    )
    dead = draw(st.integers(0, 9)) == 0
    return {
        "role": role,
        "sex": draw(st.sampled_from(["M", "F"])),
        "birth_on": start - timedelta(days=age_days),
        "death_on": start - timedelta(days=draw(st.integers(-20, 900))) if dead else None,
        "facts": draw(st.lists(fact(start), max_size=4)),
    }


@st.composite
def population(draw: st.DrawFn) -> tuple[Period, list[list[dict[str, Any]]], list[Any]]:
    period = Period.month(draw(st.integers(2024, 2026)), draw(st.integers(1, 12)))
    families = draw(
        st.lists(
            st.integers(1, 7).flatmap(
                lambda n: st.tuples(*[member(period.start, i == 0) for i in range(n)])
            ),
            min_size=1,
            max_size=5,
        )
    )
    count = sum(len(f) for f in families)
    # Parent-child links between any two persons (ids 1..count), within and across families.
    links = draw(
        st.lists(
            st.tuples(
                st.integers(1, count),
                st.integers(1, count),
                st.sampled_from(
                    ["mother", "father", "adoptive_mother", "adoptive_father", "guardian"]
                ),
                st.one_of(st.none(), st.integers(-400, 400)),
            ),
            max_size=2 * count,
        )
    )
    return period, [list(f) for f in families], links


def link_table(person: pa.Table, links: list[Any], start: date) -> pa.Table:
    births = dict(zip(person["person_id"].to_pylist(), person["birth_on"].to_pylist(), strict=True))
    deaths = dict(zip(person["person_id"].to_pylist(), person["death_on"].to_pylist(), strict=True))
    return pa.Table.from_pylist(
        [
            {
                "child_id": child,
                "parent_id": parent,
                "relation": relation,
                "child_birth_on": births[child],
                "child_death_on": deaths[child],
                "valid_from": births[child],
                "valid_until": None if until is None else start + timedelta(days=until),
                "source": "zags",
            }
            for child, parent, relation, until in links
            if child != parent
        ],
        schema=LINK_SCHEMA,
    )


def tables(families: list[list[dict[str, Any]]], loner: bool) -> tuple[pa.Table, pa.Table]:
    persons: list[dict[str, Any]] = []
    facts: list[dict[str, Any]] = []
    pid = 0
    for fid, members in enumerate(families, start=1):
        for m in members:
            pid += 1
            family_id = None if loner and fid == len(families) and len(members) == 1 else fid
            persons.append(
                {
                    "person_id": pid,
                    "family_id": family_id,
                    "role": m["role"],
                    "sex": m["sex"],
                    "birth_on": m["birth_on"],
                    "death_on": m["death_on"],
                    "region_kato": "751110000",
                }
            )
            facts += [{"person_id": pid, **f} for f in m["facts"]]
    return (
        pa.Table.from_pylist(persons, schema=PERSON_SCHEMA),
        pa.Table.from_pylist(facts, schema=FACT_SCHEMA),
    )


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12)
    return bool(a == b)


def assert_agree(batch: Decision, online: Decision) -> None:
    where = f"{online.program.id} entity {online.entity_id}"
    assert batch.eligible == online.eligible, where
    assert batch.amount_minor == online.amount_minor, where
    assert batch.conditions == online.conditions, where
    assert batch.variables.keys() == online.variables.keys(), where
    for name, value in online.variables.items():
        assert same(batch.variables[name], value), f"{where}: {name}"


def check_agreement(
    compiled: CompiledPack,
    person: pa.Table,
    fact: pa.Table,
    period: Period,
    link: pa.Table | None = None,
) -> int:
    engine = Engine(compiled, threads=1)
    online = OnlineEvaluator(compiled)
    online_sql = OnlineEvaluator(compiled, backend="duckdb")
    try:
        engine.load(person, fact, link)
        result = engine.evaluate(period)
        batch: dict[tuple[str, int], Decision] = {}
        for plan in compiled.programs:
            if plan.program.period != period.kind:
                continue
            for d in result.decisions(plan.program.id, eligible_only=False):
                batch[(plan.program.id, d.entity_id)] = d
        checked = 0
        families = pc.unique(pc.coalesce(person["family_id"], pc.negate(person["person_id"])))
        for key in families.to_pylist():
            mask = (
                pc.equal(person["family_id"], key)
                if key > 0
                else pc.equal(person["person_id"], -key)
            )
            p = person.filter(pc.fill_null(mask, False))
            f = fact.filter(pc.is_in(fact["person_id"], value_set=p["person_id"]))
            decisions = online.evaluate(p, f, period, link=link).decisions
            by_sql = online_sql.evaluate(p, f, period, link=link).decisions
            assert len(decisions) == len(by_sql)
            for decision, sql_decision in zip(decisions, by_sql, strict=True):
                assert_agree(batch[(decision.program.id, decision.entity_id)], decision)
                assert_agree(batch[(sql_decision.program.id, sql_decision.entity_id)], sql_decision)
                checked += 1
        return checked
    finally:
        engine.close()
        online.close()
        online_sql.close()


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=population(), loner=st.booleans())
def test_batch_and_online_agree_on_random_households(kz: CompiledPack, data, loner: bool) -> None:  # type: ignore[no-untyped-def]
    period, families, links = data
    person, fact = tables(families, loner)
    assert check_agreement(kz, person, fact, period, link_table(person, links, period.start)) > 0


def test_batch_and_online_agree_on_a_synthetic_registry(kz: CompiledPack) -> None:
    period = Period.parse("2026-03")
    population = generate(40, seed=7, as_of=period.end)
    assert check_agreement(kz, population.person, population.fact, period, population.link) > 100


def test_the_russian_pack_agrees_too(ru: CompiledPack) -> None:
    period = Period.parse("2025-02")
    population = generate(40, seed=8, as_of=period.end)
    assert check_agreement(ru, population.person, population.fact, period) > 100
