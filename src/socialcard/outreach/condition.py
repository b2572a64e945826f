"""A segment's condition: a family-level expression of the rules language (one expression
language), e.g. `count(member) filter (where member.age < 3) > 0 and family_income_avg_3m = 0`.

It compiles as the one condition of a status program on the rule pack's shared definitions
(its parameters, variables and built-ins), so the same sqlglot checks apply and a bad one is
refused with the engine's reason; a campaign evaluates it for each family already picked by
level, region and indicators, with the registry as of the run's period.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from functools import lru_cache

from sqlalchemy.orm import Session

from socialcard.core.errors import InvalidInput, field_error
from socialcard.registry import snapshot as registry_snapshot
from socialcard.rules import service as rules_service
from socialcard.rules.engine import OnlineEvaluator, Period
from socialcard.rules.engine.compiler import CompiledPack, compile_pack
from socialcard.rules.engine.loader import parse_pack
from socialcard.rules.engine.model import Condition, Loc, Program, Source, Version
from socialcard.rules.engine.problems import EvaluationError, PackError

PROGRAM = "outreach.segment"
# The condition's version starts where the pack's parameters all have values.
FROM = date(2024, 1, 1)


@lru_cache(maxsize=64)
def compiled(text: str) -> CompiledPack:
    """The condition compiled on the rule pack (InvalidInput naming `condition` if it is not a
    true/false family expression the engine accepts)."""
    pack, problems = parse_pack(rules_service.resolve_pack_path())
    if pack is None:
        raise InvalidInput(
            "condition: the rule pack does not load",
            details=[field_error("condition", "; ".join(p.reason for p in problems[:3]))],
        )
    loc = Loc("segment condition", 1)
    version = Version(
        index=1,
        effective_from=FROM,
        loc=loc,
        conditions={
            "segment": Condition(
                name="segment",
                expr=Source(text, loc, PROGRAM),
                explain={"kk": text, "ru": text, "en": text},
            )
        },
    )
    program = Program(
        id=PROGRAM,
        index=1,
        title={"kk": PROGRAM, "ru": PROGRAM, "en": PROGRAM},
        legal_basis={"kk": "", "ru": "", "en": ""},
        citation="",
        entity="family",
        period="month",
        loc=loc,
        kind="status",
        versions=[version],
    )
    try:
        return compile_pack(dataclasses.replace(pack, programs=[program], cases=[]))
    except PackError as exc:
        reasons = [p.reason for p in exc.problems if p.program == PROGRAM] or [
            p.reason for p in exc.problems
        ]
        raise InvalidInput(
            f"condition: {reasons[0]}",
            details=[field_error("condition", r) for r in reasons[:5]],
        ) from None


def holds(session: Session, *, text: str, family_ids: list[int], period: str) -> set[int]:
    """The families (of those given) for which the condition holds in the period, each read
    as of the period (its members, facts and parent-child links)."""
    pack = compiled(text)
    when = Period.parse(period)
    evaluator = OnlineEvaluator(pack)
    out: set[int] = set()
    try:
        for family_id in family_ids:
            person, fact = registry_snapshot.family_snapshot(session, family_id, when)
            if person.num_rows == 0:
                continue
            links = registry_snapshot.family_links(session, family_id)
            try:
                decision = evaluator.evaluate(person, fact, when, link=links).get(
                    PROGRAM, family_id
                )
            except EvaluationError:
                continue
            if decision.eligible:
                out.add(family_id)
    finally:
        evaluator.close()
    return out
