"""Rule test cases: build a household's input tables, evaluate it online, compare."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from socialcard.rules.engine.compiler import CompiledPack
from socialcard.rules.engine.explain import Decision, format_value
from socialcard.rules.engine.model import Case, MemberSpec
from socialcard.rules.engine.problems import EvaluationError
from socialcard.rules.engine.runtime import OnlineEvaluator
from socialcard.rules.engine.synthetic import FACT_SCHEMA, LINK_SCHEMA, PERSON_SCHEMA

FAMILY_ID = 1


def household_links(members: list[MemberSpec]) -> pa.Table:
    """The parent-child links the members name (`mother: <name>`, ...), valid from birth."""
    ids = {m.name: i + 1 for i, m in enumerate(members)}
    return pa.Table.from_pylist(
        [
            {
                "child_id": i + 1,
                "parent_id": ids[parent],
                "relation": relation,
                "child_birth_on": m.birth_on,
                "child_death_on": m.death_on,
                "valid_from": m.birth_on,
                "valid_until": None,
                "source": "case",
            }
            for i, m in enumerate(members)
            for relation, parent in m.parents
        ],
        schema=LINK_SCHEMA,
    )


def household_tables(members: list[MemberSpec]) -> tuple[pa.Table, pa.Table]:
    """The `person` and `fact` tables of a test household (person ids 1..n, family 1)."""
    person = pa.Table.from_pylist(
        [
            {
                "person_id": i + 1,
                "family_id": FAMILY_ID if m.in_family else None,
                "role": m.role,
                "sex": m.sex,
                "birth_on": m.birth_on,
                "death_on": m.death_on,
                "region_kato": m.region_kato,
            }
            for i, m in enumerate(members)
        ],
        schema=PERSON_SCHEMA,
    )
    fact = pa.Table.from_pylist(
        [
            {
                "person_id": i + 1,
                "kind": f.kind,
                "detail": f.detail,
                "qualifier": f.qualifier,
                "amount_minor": f.amount_minor,
                "quantity": f.quantity,
                "valid_from": f.valid_from,
                "valid_until": f.valid_until,
                "source": f.source,
            }
            for i, m in enumerate(members)
            for f in m.facts
        ],
        schema=FACT_SCHEMA,
    )
    return person, fact


@dataclass
class CaseResult:
    """The outcome of one case: passed or the differences, and the decision behind it."""

    case: Case
    passed: bool
    differences: list[str] = field(default_factory=list)
    decision: Decision | None = None

    def line(self, pack_id: str = "") -> str:
        """One line for the CLI: PASS/FAIL, program, case name and what differed."""
        status = "PASS" if self.passed else "FAIL"
        text = f"{status} {self.case.program} :: {self.case.name} ({self.case.period})"
        if self.differences:
            text += " — " + "; ".join(self.differences)
        return text


def run_case(evaluator: OnlineEvaluator, case: Case) -> CaseResult:
    """Evaluate one case and compare eligibility, amount and any named conditions."""
    compiled = evaluator.compiled
    try:
        plan = compiled.program_plan(case.program)
    except EvaluationError as exc:
        return CaseResult(case, False, [str(exc)])
    if plan.program.period != case.period.kind:
        return CaseResult(case, False, [f"{case.program} is evaluated per {plan.program.period}"])
    person, fact = household_tables(case.members)
    household = evaluator.evaluate(person, fact, case.period, link=household_links(case.members))
    entity = case.subject + 1 if plan.program.entity == "person" else FAMILY_ID
    if plan.program.entity == "family" and not case.members[0].in_family:
        entity = -1
    try:
        decision = household.get(case.program, entity)
    except EvaluationError as exc:
        return CaseResult(case, False, [str(exc)])
    diffs: list[str] = []
    if case.eligible is not None and decision.eligible != case.eligible:
        diffs.append(f"eligible {decision.eligible}, expected {case.eligible}")
    if case.amount is not None and decision.amount_minor != case.amount:
        pack = compiled.pack
        got = format_value(decision.amount_minor, "money", "en", pack)
        want = format_value(case.amount, "money", "en", pack)
        diffs.append(f"amount {got}, expected {want}")
    for name, expected in case.conditions.items():
        if name not in decision.conditions:
            label = decision.version.label if decision.version else "-"
            diffs.append(f"no condition {name!r} in version {label}")
        elif decision.conditions[name] != expected:
            diffs.append(f"condition {name} {decision.conditions[name]}, expected {expected}")
    for name, wanted in case.variables.items():
        if name not in decision.variables:
            label = decision.version.label if decision.version else "-"
            diffs.append(f"variable {name!r} is not reported in version {label}")
            continue
        got_value = decision.variables[name]
        # bool is an int in Python: true must not pass for 1, nor 1 for true.
        if isinstance(got_value, bool) != isinstance(wanted, bool) or got_value != wanted:
            diffs.append(f"variable {name} {got_value!r}, expected {wanted!r}")
    return CaseResult(case, not diffs, diffs, decision)


def pack_cases(compiled: CompiledPack) -> list[Case]:
    """Every case written in the pack's program files."""
    return [case for plan in compiled.programs for case in plan.program.cases]


def run_cases(compiled: CompiledPack, cases: Iterable[Case] | None = None) -> list[CaseResult]:
    """Run cases (by default all of the pack's) and return one result per case."""
    evaluator = OnlineEvaluator(compiled)
    try:
        return [run_case(evaluator, c) for c in (pack_cases(compiled) if cases is None else cases)]
    finally:
        evaluator.close()
