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
