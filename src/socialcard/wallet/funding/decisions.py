"""Earmarked vouchers from decisions (REFERENCE.md §4): food, gas, school meals, transit.

`catalog.yaml`'s `decision_sources` say which program's eligible decisions issue which voucher
type, to whom and how much. A voucher is issued only while the family or person is receiving
that benefit (an active assignment: the citizen agreed to the offer), as the gas and food
vouchers go to recipients of targeted social assistance. `orders_for_decision` turns one stored
decision into funding orders, each carrying the decision's reference (run, program, period,
entity) and an idempotency key that names the voucher, the month and the entity, so a second run
of the month (or a later rules run finding the same decision) issues nothing twice.

Values and age bands come from the decision itself: the catalogue names variables the program
reports (kz.asp's `food_voucher`, `gas_voucher`, `school_meal_day`, `school_meal_age_from/to`;
kz.disability's `transit_voucher`), computed by the rule pack from parameters dated like the
benefit's. A 2025 decision is therefore valued at 2025 rules, whenever the voucher is issued,
and each voucher keeps the program version and pack hash it was valued with. A decision that
does not report a variable a source needs (a run of an older pack) issues no voucher of that
source: it is counted, never valued from a default.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy.orm import Session

from socialcard.core.logging import get_logger
from socialcard.proactive import service as proactive_service
from socialcard.registry import service as registry_service
from socialcard.registry.service import Member
from socialcard.rules import service as rules_service
from socialcard.rules.schemas import StoredDecision
from socialcard.wallet.funding.schemas import DecisionRef, FundingOrder
from socialcard.wallet.vouchers import repository as voucher_repository
from socialcard.wallet.vouchers.catalog import DecisionSource, load_catalog


def school_days(period: str) -> int:
    """Monday-to-Friday days of a month (the days a school-meal voucher can be used).

    >>> school_days("2026-03"), school_days("2026-02")
    (22, 20)
    """
    year, month = int(period[:4]), int(period[5:7])
    last = calendar.monthrange(year, month)[1]
    return sum(date(year, month, day).weekday() < 5 for day in range(1, last + 1))


log = get_logger(__name__)


def _age(birth_on: date, on: date) -> int:
    return on.year - birth_on.year - ((on.month, on.day) < (birth_on.month, birth_on.day))


def _whole(decision: StoredDecision, name: str) -> int | None:
    """A reported variable as a whole number (money in minor units, ages in years), or None
    when the decision does not carry it."""
    value = decision.variables.get(name)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal) and value == int(value):
        return int(value)
    return None


def valued(decision: StoredDecision, source: DecisionSource) -> bool:
    """Whether the decision reports every variable the source reads."""
    return all(_whole(decision, name) is not None for name in source.variables)


def _holders(
    decision: StoredDecision,
    source: DecisionSource,
    *,
    recipient_id: int,
    members: Sequence[Member],
    on: date,
) -> list[int]:
    if source.to == "recipient":
        return [recipient_id]
    if source.to == "entity":
        return [decision.entity_id] if decision.entity_type == "person" else [recipient_id]
    # The catalogue checks that `ages` goes with school_age_children.
    band = [_whole(decision, name) for name in source.ages or ()]
    if len(band) != 2 or band[0] is None or band[1] is None:
        return []
    low, high = band[0], band[1]
    # Full years at the period start, as the rule pack counts `age`.
    return [
        m.person_id for m in members if m.death_on is None and low <= _age(m.birth_on, on) <= high
    ]


def _amount(decision: StoredDecision, source: DecisionSource) -> int:
    if source.amount is not None:
        return _whole(decision, source.amount) or 0
    # The catalogue requires one of amount and per_school_day.
    per_day = _whole(decision, source.per_school_day or "")
    return (per_day or 0) * school_days(decision.period)


def orders_for_decision(
    decision: StoredDecision,
    source: DecisionSource,
    *,
    recipient_id: int,
    members: Sequence[Member] = (),
    bound_merchant_id: int | None = None,
    pack_hash: str | None = None,
) -> list[FundingOrder]:
    """The funding orders one eligible stored decision gives for a voucher source.

    `recipient_id` is who agreed to the benefit; `members` the decision's family (for
    school-age children); `bound_merchant_id` the canteen of a voucher bound to one merchant
    (without one, none is issued); `pack_hash` the rule pack of the decision's run. The value
    is the decision's own (a variable its program reports); without it none is issued.
    """
    vtype = load_catalog().voucher_types[source.voucher]
    if vtype.bound_to_merchant and bound_merchant_id is None:
        return []
    if not valued(decision, source):
        return []
    on = date(int(decision.period[:4]), int(decision.period[5:7]), 1)
    amount = _amount(decision, source)
    if amount <= 0 or not decision.region_kato:
        return []
    ref = DecisionRef(
        run_id=decision.run_id,
        program_id=decision.program_id,
        period=decision.period,
        entity_type=decision.entity_type,
        entity_id=decision.entity_id,
        rule_version=decision.version,
        pack_hash=pack_hash,
    )
    return [
        FundingOrder(
            idempotency_key=(
                f"decision:{source.voucher}:{decision.period}:{decision.program_id}:"
                f"{decision.entity_id}:{person_id}"
            ),
            person_id=person_id,
            program_id=source.budget,
            region_kato=decision.region_kato,
            amount_minor=amount,
            benefit_type=source.voucher,
            period=decision.period,
            bound_merchant_id=bound_merchant_id if vtype.bound_to_merchant else None,
            fare_category=source.fare_category,
            source=ref,
        )
        for person_id in _holders(
            decision, source, recipient_id=recipient_id, members=members, on=on
        )
    ]


@dataclass
class VoucherPlan:
    """The month's voucher orders from a stored run, and what each source gave."""

    orders: list[FundingOrder] = field(default_factory=list)  # not issued yet
    decisions: dict[str, int] = field(default_factory=dict)  # voucher type -> decisions used
    # voucher type -> eligible receiving decisions that do not report the value (older pack)
    unvalued: dict[str, int] = field(default_factory=dict)

    def by_budget(self) -> dict[tuple[str, str], int]:
        """What the orders need from each budget (program, region)."""
        need: dict[tuple[str, str], int] = {}
        for order in self.orders:
            key = (order.program_id, order.region_kato)
            need[key] = need.get(key, 0) + order.amount_minor
        return need


def plan_vouchers(
    session: Session,
    *,
    run_id: int,
    period: str,
    canteen_for: Callable[[StoredDecision], int | None] | None = None,
) -> VoucherPlan:
    """The voucher orders the run's eligible decisions give this month, for families and
    persons receiving the benefit, less those already issued. `canteen_for` names the school
    canteen (merchant id) of a decision's children; without one no school-meal voucher is
    issued."""
    plan = VoucherPlan()
    issued = voucher_repository.issued_from_decisions(session, period)
    run = rules_service.get_run(session, run_id=run_id)
    in_run = {p.program_id for p in run.by_program if p.period == period}
    for source in load_catalog().decision_sources:
        if source.decision not in in_run:
            continue
        receiving = proactive_service.receiving(session, program_id=source.decision, period=period)
        chosen = [
            (decision, receiving[decision.entity_id])
            for decision in rules_service.eligible_decisions(
                session, run_id=run_id, program_id=source.decision, period=period
            )
            if decision.entity_id in receiving
        ]
        needs_members = source.to == "school_age_children"
        members = (
            registry_service.current_members(
                session, [d.family_id for d, _ in chosen if d.family_id is not None]
            )
            if needs_members
            else {}
        )
        used = 0
        unvalued = sum(not valued(d, source) for d, _ in chosen)
        if unvalued:
            plan.unvalued[source.voucher] = unvalued
            log.warning(
                "voucher_value_not_reported",
                voucher=source.voucher,
                program_id=source.decision,
                run_id=run_id,
                decisions=unvalued,
            )
        for decision, recipient in chosen:
            orders = orders_for_decision(
                decision,
                source,
                recipient_id=recipient,
                members=members.get(decision.family_id, []) if decision.family_id else [],
                bound_merchant_id=canteen_for(decision) if canteen_for else None,
                pack_hash=run.pack_hash,
            )
            new = [
                o
                for o in orders
                if (o.benefit_type, decision.program_id, decision.entity_id, o.person_id)
                not in issued
            ]
            plan.orders.extend(new)
            used += bool(new)
        plan.decisions[source.voucher] = used
    return plan
