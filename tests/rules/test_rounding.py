"""Rounding as data: each mode and unit, applied to exact decimals."""

from __future__ import annotations

import pytest

from socialcard.rules.engine import OnlineEvaluator, load_pack
from socialcard.rules.engine.cases import household_tables
from socialcard.rules.engine.model import MemberSpec
from socialcard.rules.engine.periods import Period, add_years
from tests.rules.conftest import MakePack, program


def amount_of(path, period: str = "2025-03") -> int:  # type: ignore[no-untyped-def]
    compiled = load_pack(path)
    when = Period.parse(period)
    person, fact = household_tables([MemberSpec("a", "head", "M", add_years(when.start, -40))])
    evaluator = OnlineEvaluator(compiled)
    try:
        decision = evaluator.evaluate(person, fact, when).get("t.p")
    finally:
        evaluator.close()
    assert decision.amount_minor is not None
    return decision.amount_minor


@pytest.mark.parametrize(
    ("formula", "mode", "unit", "expected"),
    [
        ("1.61 * 4622800", "half_up", 100, 7442700),  # 74 427.08 -> 74 427 (2025)
        ("1.61 * 5085100", "ceil", 100, 8187100),  # 81 870.11 -> 81 871 (2026)
        ("5.76 * 393200", "half_up", 100, 2264800),  # 22 648.32 -> 22 648
        ("20.04 * 393200", "ceil", 100, 7879800),  # 78 797.28 -> 78 798
        ("6.81 * 432500", "half_up", 1, 2945325),  # 29 453.25 kept to the tiyn
        ("1.5 * 100", "half_up", 100, 200),  # 1.50 -> 2 (half up)
        ("1.49 * 100", "half_up", 100, 100),
        ("1.01 * 100", "floor", 100, 100),
        ("-5", "ceil", 100, 0),  # never negative
        ("10 / 3 * 3", "ceil", 1, 10),  # float noise from a division does not flip a ceil
    ],
)
def test_rounding_modes(
    make_pack: MakePack, formula: str, mode: str, unit: int, expected: int
) -> None:
    path = make_pack(p=program(amount=formula, rounding=f"{{mode: {mode}, unit: {unit}, why: t}}"))
    assert amount_of(path) == expected


def test_bad_rounding_is_refused(make_pack: MakePack) -> None:
    from socialcard.rules.engine import PackError

    path = make_pack(p=program(rounding="{mode: bankers, unit: 3, why: t}"))
    with pytest.raises(PackError, match="rounding mode 'bankers'"):
        load_pack(path)
