"""The wallet's step of `socialcard demo`: fund vouchers for a sample of the region's families,
redeem a few at demo merchants, and print voucher statistics."""

from __future__ import annotations

from datetime import date, datetime

from rich.console import Console
from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.errors import AppError
from socialcard.registry import service as registry_service
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor
from socialcard.wallet.funding import service as funding_service
from socialcard.wallet.funding.schemas import BudgetAllocation
from socialcard.wallet.merchants import repository as merchant_repository
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.merchants.schemas import MerchantCreate
from socialcard.wallet.merchants.service import TerminalContext
from socialcard.wallet.redemption import service as redemption_service
from socialcard.wallet.redemption.schemas import AuthorizeRequest, ItemIn
from socialcard.wallet.vouchers import repository as voucher_repository
from socialcard.wallet.vouchers import service as voucher_service
from socialcard.wallet.vouchers.schemas import PrescriptionLine

_ACTOR = Actor(key_id=None, name="wallet-demo", role="admin")
_MERCHANTS = {
    "school_canteen": ("05034000001", "Школа №1, асхана", False),
    "pharmacy": ("05034000002", "Аптека «Денсаулық»", True),
    "gas_utility": ("05034000003", "QazaqGaz Aimaq", False),
    "grocery": ("05034000004", "Magnum, магазин", False),
    "transit": ("05034000005", "Автобусный парк", False),
}
MEAL_MINOR = 900_00
SCHOOL_DAYS = 20


def _age(birth_on: date, on: date) -> int:
    return on.year - birth_on.year - ((on.month, on.day) < (birth_on.month, birth_on.day))


def _terminal(session: Session, category: str) -> tuple[int, TerminalContext]:
    head, name, licensed = _MERCHANTS[category]
    bin_ = merchant_service.make_bin(head)
    merchant = merchant_repository.merchant_by_bin(session, bin_)
    if merchant is None:
        created = merchant_service.create_merchant(
            session, data=MerchantCreate(bin=bin_, name=name, category=category, licensed=licensed)
        )
        merchant_id = created.id
    else:
        merchant_id = merchant.id
    key = merchant_service.create_terminal(
        session, merchant_id=merchant_id, code=f"demo-{utcnow():%H%M%S%f}"
    ).key
    return merchant_id, merchant_service.authenticate_terminal(session, raw_key=key)


def fund_demo_wallets(session: Session, *, families: int = 300, now: datetime | None = None) -> int:
    """Fund this month's vouchers for a sample of families (idempotent: keys name the month)."""
    now = now or utcnow()
    today, period = now.date(), f"{now:%Y-%m}"
    mrp = get_settings().wallet.mrp_minor
    canteen_id, _ = _terminal(session, "school_canteen")
    funded = 0
    for family_id in registry_service.sample_family_ids(session, families):
        family = registry_service.get_family(
            session, family_id=family_id, actor=_ACTOR, purpose=Purpose.BENEFIT_ASSIGNMENT
        )
        region = family.region_kato
        if not family.members:
            continue
        orders: list[tuple[str, int, str, dict[str, object]]] = []
        adults = [m for m in family.members if _age(m.person.birth_on, today) >= 18]
        holder = adults[0].person.id if adults else family.members[0].person.id
        orders.append(("food", holder, "kz.food_voucher", {"amount": mrp * len(family.members)}))
        for member in family.members:
            age = _age(member.person.birth_on, today)
            if 7 <= age <= 17:
                orders.append(
                    ("school_meal", member.person.id, "kz.school_meals",
                     {"amount": MEAL_MINOR * SCHOOL_DAYS, "bound_merchant_id": canteen_id})
                )  # fmt: skip
            if age >= 63:
                orders.append(
                    ("transit", member.person.id, "kz.transit",
                     {"amount": 3_000_00, "fare_category": "pensioner"})
                )  # fmt: skip
        if family_id % 5 == 0:
            orders.append(("gas", holder, "kz.gas", {"amount": 4_500_00}))
        if family_id % 7 == 0:
            orders.append(
                ("medicine", holder, "kz.medicines",
                 {"amount": 12_000_00,
                  "prescription": [PrescriptionLine(atc="C09AA02", quantity=30)]})
            )  # fmt: skip
        for benefit_type, person_id, program, extra in orders:
            amount = int(extra.pop("amount"))  # type: ignore[call-overload]
            funding_service.allocate_budget(
                session,
                idempotency_key=f"demo-{program}-{region}-{period}-{person_id}-{benefit_type}",
                allocation=BudgetAllocation(
                    program_id=program, region_kato=region, amount_minor=amount
                ),
            )
            funding_service.fund_benefit(
                session,
                idempotency_key=f"demo-{period}-{person_id}-{benefit_type}",
                person_id=person_id,
                program_id=program,
                region_kato=region,
                amount_minor=amount,
                benefit_type=benefit_type,
                period=period,
                now=now,
                **extra,  # type: ignore[arg-type]
            )
            funded += 1
    return funded


def redeem_demo_purchases(session: Session, *, now: datetime | None = None) -> int:
    """Activate a few vouchers and redeem them at the demo merchants (a realistic mix)."""
    now = now or utcnow()
    terminals = {category: _terminal(session, category)[1] for category in _MERCHANTS}
    items = {
        "food": ItemIn(
            sku="milk", category="food.socially_significant", quantity=2, amount_minor=1_100_00
        ),
        "school_meal": ItemIn(sku="lunch", category="meal", quantity=1, amount_minor=MEAL_MINOR),
        "transit": ItemIn(sku="bus", category="fare", quantity=1, amount_minor=150_00),
        "gas": ItemIn(sku="bill", category="gas", quantity=1, amount_minor=3_200_00),
        "medicine": ItemIn(
            sku="enalapril", category="medicine", quantity=30, amount_minor=2_400_00, atc="C09AA02"
        ),
    }
    category_of = {
        "food": "grocery", "school_meal": "school_canteen", "transit": "transit",
        "gas": "gas_utility", "medicine": "pharmacy",
    }  # fmt: skip
    redeemed = 0
    for index, row in enumerate(voucher_repository.recent_vouchers(session, limit=400)):
        if index % 3 == 2 or row.status not in ("created", "activated"):
            continue
        try:
            if row.status == "created":
                voucher_service.activate(
                    session, person_id=row.person_id, voucher_id=row.id,
                    utility_account="100200300" if row.type == "gas" else None, now=now,
                )  # fmt: skip
            result = redemption_service.authorize(
                session,
                terminal=terminals[category_of[row.type]],
                idempotency_key=f"demo-{row.id}-{now:%Y%m%d}",
                request=AuthorizeRequest(token=row.token, items=[items[row.type]], capture=True),
                now=now,
            )
        except AppError:
            continue  # outside a window today (gas before the 7th, a weekend for meals)
        redeemed += result.approved_minor > 0
    return redeemed


def demo_step(session: Session, console: Console) -> None:
    """Fund and redeem demo vouchers, then print voucher statistics (`socialcard demo`)."""
    from socialcard.wallet.cli import print_statistics

    funded = fund_demo_wallets(session)
    redeemed = redeem_demo_purchases(session)
    console.print(f"Wallet: {funded:,} vouchers funded this month, {redeemed:,} redemptions.")
    print_statistics(session, console)


def run_demo_step(console: Console) -> None:
    """The one line `socialcard demo` calls: its own transaction, errors shown, never fatal."""
    from socialcard.core.db import session_scope

    try:
        with session_scope() as session:
            demo_step(session, console)
    except AppError as exc:
        console.print(f"Wallet demo step skipped: {exc.message}")
