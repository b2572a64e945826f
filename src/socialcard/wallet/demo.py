"""The wallet's step of `socialcard demo`: pay the consented decisions' payment orders into
citizens' wallets, issue the month's earmarked vouchers from the stored rules run's decisions,
redeem some at demo merchants, expire what is past its window, and print the statistics.

The demo plays the treasury too: before paying, it tops up each program's regional budget to
what the month's orders need (an allocation posting from the program's source account), and
onboards its merchants. Both are maker–checker requests: an operator files them and a policy
owner approves them (the demo's two keys, printed at its end)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Console
from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.errors import AppError
from socialcard.proactive import service as proactive_service
from socialcard.rules import service as rules_service
from socialcard.security import approvals
from socialcard.security.schemas import Actor, ApprovalRead
from socialcard.wallet import approvals as wallet_approvals
from socialcard.wallet import service as wallet_service
from socialcard.wallet.funding import decisions as decision_funding
from socialcard.wallet.funding import orders as payment_orders
from socialcard.wallet.funding import service as funding_service
from socialcard.wallet.funding.schemas import BudgetAllocation, FundingOrder
from socialcard.wallet.merchants import repository as merchant_repository
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.merchants.schemas import MerchantCreate
from socialcard.wallet.merchants.service import TerminalContext
from socialcard.wallet.redemption import service as redemption_service
from socialcard.wallet.redemption.schemas import AuthorizeRequest, ItemIn
from socialcard.wallet.vouchers import repository as voucher_repository
from socialcard.wallet.vouchers import service as voucher_service

_MERCHANTS = {
    "school_canteen": ("05034000001", "Школа №1, асхана", False),
    "pharmacy": ("05034000002", "Аптека «Денсаулық»", True),
    "gas_utility": ("05034000003", "QazaqGaz Aimaq", False),
    "grocery": ("05034000004", "Magnum, магазин", False),
    "transit": ("05034000005", "Автобусный парк", False),
}
MEAL_MINOR = 900_00
_ORDERS_LIMIT = 1_000_000


@dataclass(frozen=True)
class DemoStaff:
    """The two people of the demo's maker–checker requests."""

    maker: Actor  # an operator
    checker: Actor  # a policy owner


def _approved(session: Session, staff: DemoStaff, request: ApprovalRead) -> dict[str, Any]:
    done = approvals.approve(session, actor=staff.checker, approval_id=request.id)
    return done.result or {}


def _terminal(session: Session, category: str, staff: DemoStaff) -> tuple[int, TerminalContext]:
    head, name, licensed = _MERCHANTS[category]
    bin_ = merchant_service.make_bin(head)
    merchant = merchant_repository.merchant_by_bin(session, bin_)
    if merchant is None:
        data = MerchantCreate(bin=bin_, name=name, category=category, licensed=licensed)
        request = wallet_approvals.request_merchant(session, actor=staff.maker, data=data)
        merchant_id = int(_approved(session, staff, request)["id"])
    else:
        merchant_id = merchant.id
    key = merchant_service.create_terminal(
        session, merchant_id=merchant_id, code=f"demo-{utcnow():%H%M%S%f}", actor=staff.maker
    ).key
    return merchant_id, merchant_service.authenticate_terminal(session, raw_key=key)


def top_up_budgets(
    session: Session, *, needs: Mapping[tuple[str, str], int], period: str, staff: DemoStaff
) -> int:
    """Allocate to each (program, region) budget what it lacks for `needs`, each a request the
    maker files and the checker approves; returns tiyn allocated. Keyed by the need and the
    balance seen, so a re-run allocates nothing twice."""
    allocated = 0
    for (program_id, region), need in sorted(needs.items()):
        balance = funding_service.budget_balance(
            session, program_id=program_id, region_kato=region
        ).balance_minor
        if balance >= need:
            continue
        request = wallet_approvals.request_allocation(
            session,
            actor=staff.maker,
            idempotency_key=f"demo-treasury:{program_id}:{region}:{period}:{need}:{balance}",
            allocation=BudgetAllocation(
                program_id=program_id, region_kato=region, amount_minor=need - balance
            ),
        )
        _approved(session, staff, request)
        allocated += need - balance
    return allocated


def _order_needs(session: Session) -> dict[tuple[str, str], int]:
    needs: dict[tuple[str, str], int] = {}
    for order in proactive_service.pending_payment_orders(session, limit=_ORDERS_LIMIT):
        if order.destination_kind == "wallet":
            key = (order.program_id, order.region_kato)
            needs[key] = needs.get(key, 0) + order.amount_minor
    return needs


@dataclass
class FundingSummary:
    orders_paid: int
    orders_failed: int
    vouchers: dict[str, int]  # voucher type -> issued now
    decisions: dict[str, int]  # voucher type -> decisions they came from
    allocated_minor: int


def fund_from_decisions(
    *, period: str, staff: DemoStaff, now: datetime | None = None
) -> FundingSummary:
    """Pay the pending payment orders (consents) into wallets, then issue the month's vouchers
    from the stored rules run's eligible decisions of families and persons receiving them."""
    from socialcard.core.db import session_scope

    now = now or utcnow()
    with session_scope() as session:
        allocated = top_up_budgets(session, needs=_order_needs(session), period=period, staff=staff)
    paid = payment_orders.pay_pending_orders(limit=_ORDERS_LIMIT)
    issued: dict[str, int] = {}
    used: dict[str, int] = {}
    orders: list[FundingOrder] = []
    with session_scope() as session:
        run = rules_service.latest_run(session, period=period)
        if run is not None:
            canteen_id, _ = _terminal(session, "school_canteen", staff)
            plan = decision_funding.plan_vouchers(
                session, run_id=run.id, period=period, canteen_for=lambda _d: canteen_id
            )
            used, orders = plan.decisions, plan.orders
            allocated += top_up_budgets(session, needs=plan.by_budget(), period=period, staff=staff)
    for outcome in funding_service.fund_in_chunks(orders, now=now):
        if outcome.error is not None:
            raise outcome.error  # the budgets were topped up for exactly these orders
        assert outcome.result is not None  # noqa: S101 - an outcome has one or the other
        kind = outcome.result.benefit_type
        issued[kind] = issued.get(kind, 0) + 1
    return FundingSummary(
        orders_paid=paid.paid,
        orders_failed=len(paid.failed),
        vouchers=issued,
        decisions=used,
        allocated_minor=allocated,
    )


def redeem_demo_purchases(
    session: Session, *, staff: DemoStaff, now: datetime | None = None, per_type: int = 150
) -> int:
    """Activate some of the newest vouchers of each type and redeem them at the demo merchants
    (about two in three, up to `per_type` each); returns the approved redemptions."""
    now = now or utcnow()
    terminals = {category: _terminal(session, category, staff)[1] for category in _MERCHANTS}
    food = ItemIn(
        sku="milk", category="food.socially_significant", quantity=2, amount_minor=1_100_00
    )
    purchases = {
        "cash": ("grocery", food),
        "food": ("grocery", food),
        "school_meal": (
            "school_canteen",
            ItemIn(sku="lunch", category="meal", quantity=1, amount_minor=MEAL_MINOR),
        ),
        "transit": (
            "transit", ItemIn(sku="bus", category="fare", quantity=1, amount_minor=150_00)
        ),
        "gas": (
            "gas_utility", ItemIn(sku="bill", category="gas", quantity=1, amount_minor=3_200_00)
        ),
        "medicine": (
            "pharmacy",
            ItemIn(
                sku="enalapril", category="medicine", quantity=30, amount_minor=2_400_00,
                atc="C09AA02",
            ),
        ),
    }  # fmt: skip
    tried: dict[str, int] = {}
    redeemed = 0
    for row in voucher_repository.recent_vouchers(session, limit=_ORDERS_LIMIT):
        seen = tried[row.type] = tried.get(row.type, 0) + 1
        if seen % 3 == 0 or seen > per_type * 3 // 2 or row.status not in ("created", "activated"):
            continue
        category, item = purchases[row.type]
        try:
            if row.status == "created":
                voucher_service.activate(
                    session, person_id=row.person_id, voucher_id=row.id,
                    utility_account="100200300" if row.type == "gas" else None, now=now,
                )  # fmt: skip
            result = redemption_service.authorize(
                session,
                terminal=terminals[category],
                idempotency_key=f"demo-{row.id}-{now:%Y%m%d}",
                request=AuthorizeRequest(token=row.token, items=[item], capture=True),
                now=now,
            )
        except AppError:
            continue  # outside a window today (gas activation after the 29th, a weekend meal)
        redeemed += result.approved_minor > 0
    return redeemed


def demo_step(
    console: Console, *, period: str, staff: DemoStaff, now: datetime | None = None
) -> None:
    """Fund wallets from decisions, redeem, expire, print statistics and the ledger check."""
    from socialcard.core.db import session_scope
    from socialcard.wallet.cli import print_statistics

    now = now or utcnow()
    funded = fund_from_decisions(period=period, staff=staff, now=now)
    vouchers = ", ".join(
        f"{n:,} {kind} (from {funded.decisions.get(kind, 0):,} decisions)"
        for kind, n in sorted(funded.vouchers.items())
    )
    console.print(
        f"Wallet {period}: {funded.orders_paid:,} payment orders paid into social wallets"
        f" ({funded.orders_failed:,} failed); vouchers from the rules run's decisions: "
        f"{vouchers or 'none new'}; budgets topped up by {funded.allocated_minor / 100:,.0f} ₸."
    )
    with session_scope() as session:
        redeemed = redeem_demo_purchases(session, staff=staff, now=now)
    with session_scope() as session:
        expired = voucher_service.expire_due(session, now=now)
    console.print(
        f"Redemptions at demo merchants: {redeemed:,} approved; expired today: "
        f"{expired.vouchers_expired:,} vouchers ({expired.returned_minor / 100:,.0f} ₸ returned)."
    )
    with session_scope() as session:
        print_statistics(session, console, thousands=True)
        check = wallet_service.check(session)
    console.print(
        "wallet check: clean" if check.ok else "wallet check: " + "; ".join(check.problems)
    )


def run_demo_step(console: Console, *, period: str, staff: DemoStaff) -> None:
    """The one line `socialcard demo` calls: errors shown, never fatal."""
    try:
        demo_step(console, period=period, staff=staff)
    except AppError as exc:
        console.print(f"Wallet demo step skipped: {exc.message}")
