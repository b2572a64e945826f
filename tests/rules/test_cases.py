"""Golden rule cases: every program's own tests, and the households in tests/rules/cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from socialcard.rules.engine import load_cases, load_pack
from socialcard.rules.engine.cases import pack_cases, run_case
from socialcard.rules.engine.runtime import OnlineEvaluator
from tests.rules.conftest import KZ, RU

CASES_DIR = Path(__file__).parent / "cases"


def _collect() -> list[tuple[str, object]]:
    out = []
    for pack_dir in (KZ, RU):
        for case in pack_cases(load_pack(pack_dir)):
            out.append((pack_dir.name, case))
    for file in sorted(CASES_DIR.glob("*.yaml")):
        cases, problems = load_cases(file)
        assert not problems, problems
        out += [("kz", c) for c in cases]
    return out


CASES = _collect()


@pytest.fixture(scope="module")
def evaluators():  # type: ignore[no-untyped-def]
    made = {
        name: OnlineEvaluator(load_pack(path)) for name, path in (("kz", KZ), ("ru_orenburg", RU))
    }
    yield made
    for evaluator in made.values():
        evaluator.close()


@pytest.mark.rules_cases
@pytest.mark.parametrize(
    ("pack", "case"),
    CASES,
    ids=[f"{c.program}::{c.name}" for _, c in CASES],  # type: ignore[attr-defined]
)
def test_golden_case(evaluators, pack: str, case) -> None:  # type: ignore[no-untyped-def]
    result = run_case(evaluators[pack], case)
    assert result.passed, result.line()


def test_every_benefit_has_three_cases_with_published_amounts(kz) -> None:  # type: ignore[no-untyped-def]
    for plan in kz.programs:
        if plan.program.kind == "status":  # a status (kz.student) has no amount
            continue
        cases = plan.program.cases
        assert len(cases) >= 3, plan.program.id
        assert any(c.eligible for c in cases)
        assert any(not c.eligible for c in cases)
        assert any(c.amount for c in cases), plan.program.id


class TestReportedVariables:
    """A case may state the values of variables its decision carries (voucher values)."""

    def _case(self, kz, **variables):  # type: ignore[no-untyped-def]
        from dataclasses import replace

        (case,) = [
            c
            for c in kz.program_plan("kz.asp").program.cases
            if c.name.startswith("vouchers of a family of four")
        ]
        return replace(case, variables=variables)

    def test_the_pack_case_passes(self, kz, kz_online) -> None:  # type: ignore[no-untyped-def]
        case = self._case(kz, food_voucher=17300_00, school_meal_children=2)
        assert run_case(kz_online, case).passed

    def test_a_wrong_value_fails(self, kz, kz_online) -> None:  # type: ignore[no-untyped-def]
        result = run_case(kz_online, self._case(kz, food_voucher=17301_00))
        assert not result.passed
        assert result.differences == ["variable food_voucher 1730000, expected 1730100"]

    def test_an_unreported_variable_fails(self, kz, kz_online) -> None:  # type: ignore[no-untyped-def]
        result = run_case(kz_online, self._case(kz, no_such_thing=1))
        assert not result.passed
        assert "'no_such_thing' is not reported" in result.differences[0]

    def test_true_is_not_one(self, kz, kz_online) -> None:  # type: ignore[no-untyped-def]
        assert not run_case(kz_online, self._case(kz, school_meal_children=True)).passed


def test_a_case_variable_must_be_a_plain_value(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text(
        "- name: x\n  program: kz.asp\n  period: 2026-03\n"
        "  members: [{role: head, age: 30}]\n  eligible: true\n"
        "  variables: {food_voucher: [1, 2]}\n",
        encoding="utf-8",
    )
    _, problems = load_cases(file)
    assert any("variable 'food_voucher' must be" in str(p) for p in problems), problems
