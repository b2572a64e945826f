"""ADAPTER FOR THE LEAD TO WIRE AT MERGE: pay the proactive domain's payment orders.

The proactive domain (issue 4, branch h-proactive) exposes, in `socialcard.proactive.service`:

    pending_payment_orders(session, *, limit) -> Sequence[order]
    mark_payment_order_paid(session, *, order_id, reference) -> None

This module is written against exactly those two names. It imports the proactive service
lazily, so the wallet works (and its tests pass) before the branches are merged. Each order is
read through attribute access (PaymentOrderRead on h-proactive fits): id, person_id,
program_id, region_kato, amount_minor, period (YYYY-MM or a date), optionally benefit_type
(default `cash`, the social-wallet balance) and destination_kind (orders not destined for
"wallet", e.g. "bank", are left alone). Each order is funded and marked paid in one
transaction, keyed `proactive-order:<id>`, so a crash or a rerun never pays twice.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from socialcard.core.db import session_scope
from socialcard.core.errors import AppError
from socialcard.wallet.funding import service as funding_service
from socialcard.wallet.funding.schemas import FundingOrder


@dataclass(frozen=True, slots=True)
class OrdersResult:
    paid: int
    failed: list[tuple[Any, str]]


def _proactive_service() -> Any:
    return importlib.import_module("socialcard.proactive.service")


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
