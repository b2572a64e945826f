"""Pay the proactive domain's payment orders (consented decisions) into social wallets.

`socialcard.proactive.service` gives `pending_payment_orders` and `mark_payment_order_paid`.
Orders destined for "wallet" are funded as `cash` vouchers (the social-wallet balance) from the
program's regional budget, each with the decision it pays (program, period, entity); others
(a bank account) are left to the bank transfer. Orders are funded in batches (a chunk per
transaction) and each is marked paid in its batch's transaction, keyed `proactive-order:<id>`,
so a crash or a rerun never pays twice; a refused order stays pending with its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from socialcard.core.db import session_scope
from socialcard.wallet.funding import service as funding_service
from socialcard.wallet.funding.schemas import DecisionRef, FundingOrder


@dataclass(frozen=True, slots=True)
class OrdersResult:
    paid: int
    failed: list[tuple[Any, str]]


def _proactive_service() -> Any:
    from socialcard.proactive import service

    return service


def order_to_funding(order: Any, *, default_benefit_type: str) -> FundingOrder:
    """Map a proactive payment order onto a wallet funding order."""
    period = order.period
    if isinstance(period, date):
        period = f"{period:%Y-%m}"
    return FundingOrder(
        idempotency_key=f"proactive-order:{order.id}",
        person_id=order.person_id,
        program_id=order.program_id,
        region_kato=order.region_kato,
        amount_minor=order.amount_minor,
        benefit_type=getattr(order, "benefit_type", None) or default_benefit_type,
        period=str(period)[:7],
        source=DecisionRef(
            program_id=order.program_id,
            period=str(period)[:7],
            entity_type=order.entity_type,
            entity_id=order.entity_id,
        )
        if getattr(order, "entity_type", None) in ("family", "person")
        and getattr(order, "entity_id", None) is not None
        else None,
    )


def pay_pending_orders(
    *,
    limit: int = 1000,
    default_benefit_type: str = "cash",
    new_session: Callable[[], Any] = session_scope,
) -> OrdersResult:
    """Fund the pending payment orders in batches (funding_service.fund_in_chunks) and mark
    each funded order paid in its batch's transaction; a refused order stays pending."""
    proactive = _proactive_service()
    from socialcard.proactive.enums import Destination

    with new_session() as session:
        orders = proactive.pending_payment_orders(
            session, limit=limit, destination=Destination.WALLET
        )
    funding = [order_to_funding(o, default_benefit_type=default_benefit_type) for o in orders]
    by_key = {f.idempotency_key: o for f, o in zip(funding, orders, strict=True)}

    def mark_paid(session: Session, outcomes: list[funding_service.FundingOutcome]) -> None:
        for outcome in outcomes:
            if outcome.result is not None:
                proactive.mark_payment_order_paid(
                    session,
                    order_id=by_key[outcome.key].id,
                    reference=f"wallet-voucher:{outcome.result.voucher_id}",
                )

    outcomes = funding_service.fund_in_chunks(funding, new_session=new_session, after=mark_paid)
    failed = [
        (by_key[o.key].id, f"{o.error.code}: {o.error.message}")
        for o in outcomes
        if o.error is not None
    ]
    return OrdersResult(paid=len(outcomes) - len(failed), failed=failed)
