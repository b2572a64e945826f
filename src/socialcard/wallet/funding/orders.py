"""Pay the proactive domain's payment orders (consented decisions) into social wallets.

`socialcard.proactive.service` gives `pending_payment_orders` and `mark_payment_order_paid`.
Orders destined for "wallet" are funded as `cash` vouchers (the social-wallet balance) from the
program's regional budget, each with the decision it pays (program, period, entity); others
(a bank account) are left to the bank transfer. Each order is funded and marked paid in one
transaction, keyed `proactive-order:<id>`, so a crash or a rerun never pays twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from socialcard.core.db import session_scope
from socialcard.core.errors import AppError
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
    """Fund each pending payment order in its own transaction and mark it paid in the same one."""
    proactive = _proactive_service()
    with new_session() as session:
        orders = [
            order
            for order in proactive.pending_payment_orders(session, limit=limit)
            if getattr(order, "destination_kind", "wallet") == "wallet"
        ]
    paid, failed = 0, []
    for order in orders:
        try:
            with new_session() as session:
                _pay_one(session, proactive, order, default_benefit_type)
            paid += 1
        except AppError as exc:
            failed.append((order.id, f"{exc.code}: {exc.message}"))
    return OrdersResult(paid=paid, failed=failed)


def _pay_one(session: Session, proactive: Any, order: Any, default_benefit_type: str) -> None:
    funding_order = order_to_funding(order, default_benefit_type=default_benefit_type)
    funding = funding_service.fund_order(
        session, idempotency_key=funding_order.idempotency_key, request=funding_order
    )
    proactive.mark_payment_order_paid(
        session, order_id=order.id, reference=f"wallet-voucher:{funding.voucher_id}"
    )
