"""Earmarked vouchers are valued by the rule pack at the decision's period: a decision of 2025
is funded at 2025 rules, and each voucher names the program version that valued it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from socialcard.registry.service import Member
from socialcard.rules.engine import CompiledPack, OnlineEvaluator, Period, load_pack
from socialcard.rules.engine.explain import Decision
from socialcard.rules.engine.synthetic import FACT_SCHEMA, PERSON_SCHEMA
from socialcard.rules.schemas import StoredDecision
from socialcard.wallet.funding.decisions import orders_for_decision, school_days
from socialcard.wallet.vouchers.catalog import CATALOG_PATH, DecisionSource, load_catalog

KZ = Path(__file__).resolve().parents[2] / "packs" / "kz"
REGION = "751110000"
# Head, spouse, children born 2015-06-10 and 2021-02-03 (a family of four, no income).
BIRTHS = [date(1985, 4, 1), date(1987, 9, 9), date(2015, 6, 10), date(2021, 2, 3)]
ROLES = ["head", "spouse", "child", "child"]


@pytest.fixture(scope="module")
def online() -> Iterator[OnlineEvaluator]:
    compiled: CompiledPack = load_pack(KZ)
    evaluator = OnlineEvaluator(compiled)
    yield evaluator
    evaluator.close()


def _sources() -> dict[str, DecisionSource]:
    return {s.voucher: s for s in load_catalog().decision_sources}


def _stored(decision: Decision, *, family_id: int | None) -> StoredDecision:
    """The decision as a stored run would give it back."""
    return StoredDecision(
        run_id=1,
        period=decision.period,
        program_id=decision.program.id,
        entity_type=decision.program.entity,
        entity_id=decision.entity_id,
        family_key=family_id or -decision.entity_id,
        family_id=family_id,
        person_id=1,
        region_kato=REGION,
        eligible=decision.eligible,
        amount_minor=decision.amount_minor,
        version=decision.version.label if decision.version else None,
        conditions=decision.conditions,
        variables=decision.variables,
    )


def _evaluate(online: OnlineEvaluator, period: str, program: str, entity: int) -> StoredDecision:
    persons = [
        {
            "person_id": i + 1,
            "family_id": 1,
            "role": role,
            "sex": "F" if i % 2 else "M",
            "birth_on": born,
            "death_on": None,
            "region_kato": REGION,
        }
        for i, (role, born) in enumerate(zip(ROLES, BIRTHS, strict=True))
    ]
    facts = [
        {
            "person_id": 2,
            "kind": "disability",
            "detail": "group_2",
            "qualifier": "general_illness",
            "amount_minor": None,
            "quantity": None,
            "valid_from": date(2020, 1, 1),
            "valid_until": None,
            "source": "mtszn",
        }
    ]
    household = online.evaluate(
        pa.Table.from_pylist(persons, schema=PERSON_SCHEMA),
        pa.Table.from_pylist(facts, schema=FACT_SCHEMA),
        Period.parse(period),
    )
    decision = household.get(program, entity)
    assert decision.eligible, decision.conditions
    return _stored(decision, family_id=1)


MEMBERS = [
    Member(i + 1, role, born, None)
    for i, (role, born) in enumerate(zip(ROLES, BIRTHS, strict=True))
]


@pytest.mark.parametrize(
    ("period", "mrp", "version"),
    [
        ("2025-03", 3932_00, "2025-01-01"),
        ("2025-11", 3932_00, "2025-09-01"),
        ("2026-03", 4325_00, "2025-09-01"),
    ],
)
def test_food_is_one_mrp_per_member_of_the_decisions_year(
    online: OnlineEvaluator, period: str, mrp: int, version: str
) -> None:
    decision = _evaluate(online, period, "kz.asp", 1)
    (order,) = orders_for_decision(decision, _sources()["food"], recipient_id=2, pack_hash="f0")
    assert order.amount_minor == 4 * mrp
    assert order.source is not None
    assert (order.source.rule_version, order.source.pack_hash) == (version, "f0")


def test_gas_and_school_meals_come_from_the_pack(online: OnlineEvaluator) -> None:
    decision = _evaluate(online, "2025-11", "kz.asp", 1)
    (gas,) = orders_for_decision(decision, _sources()["gas"], recipient_id=2)
    assert gas.amount_minor == 4500_00
    meals = orders_for_decision(
        decision, _sources()["school_meal"], recipient_id=2, members=MEMBERS, bound_merchant_id=9
    )
    # Only the child of 10 is of school age (7-17); the child of 4 is not.
    assert [o.person_id for o in meals] == [3]
    assert meals[0].amount_minor == 900_00 * school_days("2025-11")
    assert decision.variables["school_meal_children"] == len(meals)


def test_transit_is_valued_by_the_disability_program(online: OnlineEvaluator) -> None:
    decision = _evaluate(online, "2025-06", "kz.disability", 2)
    (order,) = orders_for_decision(decision, _sources()["transit"], recipient_id=2)
    assert (order.person_id, order.amount_minor) == (2, 3000_00)
    assert order.source is not None
    assert order.source.rule_version == "2024-01-01"


class TestCatalogue:
    def test_fixed_amounts_are_refused(self, tmp_path: Path) -> None:
        text = CATALOG_PATH.read_text(encoding="utf-8")
        path = tmp_path / "catalog.yaml"
        path.write_text(
            text.replace("amount: gas_voucher", "amount_minor: 450000"), encoding="utf-8"
        )
        with pytest.raises(ValueError, match="unknown keys"):
            load_catalog(path)

    def test_a_source_needs_one_value(self, tmp_path: Path) -> None:
        text = CATALOG_PATH.read_text(encoding="utf-8")
        path = tmp_path / "catalog.yaml"
        path.write_text(text.replace(", amount: gas_voucher", ""), encoding="utf-8")
        with pytest.raises(ValueError, match="exactly one of amount, per_school_day"):
            load_catalog(path)
