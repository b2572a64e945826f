"""Builders for wallet tests: merchants with terminals, budgets, funded vouchers."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import Session

from socialcard.wallet.funding import service as funding_service
from socialcard.wallet.funding.schemas import BudgetAllocation, FundingResult
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.merchants.schemas import MerchantCreate
from socialcard.wallet.merchants.service import TerminalContext
from tests.factories import make_person

_serial = itertools.count(1)
_bins_given: set[str] = set()
PROGRAM = "kz.test_program"
REGION = "751110000"
# A Wednesday inside the default period, so school-day and activation-window rules pass.
NOW = datetime(2026, 3, 11, 9, 0, tzinfo=UTC)
PERIOD = "2026-03"


def make_merchant(
    session: Session, *, category: str = "grocery", licensed: bool = False
) -> tuple[int, TerminalContext, str]:
    """A merchant with one terminal: (merchant id, terminal context, raw terminal key)."""
    # `make_bin` moves to the next serial where one has no check digit, so two serials can
    # give the same БИН: never hand one out twice.
    n = next(_serial)
    while (bin_ := merchant_service.make_bin(f"0503400{n:04d}")) in _bins_given:
        n = next(_serial)
    _bins_given.add(bin_)
    merchant = merchant_service.create_merchant(
        session,
        data=MerchantCreate(
            bin=bin_,
            name=f"Merchant {n}",
            category=category,
            licensed=licensed,
        ),
    )
    created = merchant_service.create_terminal(session, merchant_id=merchant.id, code=f"T{n}")
    terminal = merchant_service.authenticate_terminal(session, raw_key=created.key)
    return merchant.id, terminal, created.key


def allocate(session: Session, amount_minor: int, *, program: str = PROGRAM) -> None:
    funding_service.allocate_budget(
        session,
        idempotency_key=f"alloc-{next(_serial)}",
        allocation=BudgetAllocation(
            program_id=program, region_kato=REGION, amount_minor=amount_minor
        ),
    )


def fund(
    session: Session,
    *,
    amount_minor: int,
    benefit_type: str = "food",
    person_id: int | None = None,
    allocate_first: bool = True,
    **extra: Any,
) -> FundingResult:
    """A funded voucher (budget allocated first unless told not to)."""
    if person_id is None:
        person_id = make_person(session).id
    if allocate_first:
        allocate(session, amount_minor)
    return funding_service.fund_benefit(
        session,
        idempotency_key=f"fund-{next(_serial)}",
        person_id=person_id,
        program_id=PROGRAM,
        region_kato=REGION,
        amount_minor=amount_minor,
        benefit_type=benefit_type,
        period=extra.pop("period", PERIOD),
        now=extra.pop("now", NOW),
        **extra,
    )


def token_of(session: Session, voucher_id: int) -> str:
    from socialcard.wallet.vouchers import repository

    row = repository.lock_voucher(session, voucher_id=voucher_id)
    assert row is not None
    return str(row.token)


def activate(session: Session, voucher_id: int, *, now: datetime = NOW, **kw: Any) -> None:
    from socialcard.wallet.vouchers import repository, service

    row = repository.lock_voucher(session, voucher_id=voucher_id)
    assert row is not None
    service.activate(
        session,
        person_id=row.person_id,
        voucher_id=voucher_id,
        utility_account=kw.get("utility_account"),
        now=now,
    )


def food_items(
    amount_minor: int, *, category: str = "food.socially_significant"
) -> list[dict[str, Any]]:
    return [{"sku": "bread", "category": category, "quantity": 1, "amount_minor": amount_minor}]


__all__ = ["NOW", "PERIOD", "date"]
