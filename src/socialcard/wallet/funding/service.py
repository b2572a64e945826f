"""Funding: allocate program budgets and pay benefits from a budget into a citizen's wallet."""

from __future__ import annotations

import calendar
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.errors import InvalidInput, field_error
from socialcard.core.logging import get_logger
from socialcard.registry import service as registry_service
from socialcard.wallet.enums import AccountKind, PostingKind, VoucherStatus
from socialcard.wallet.errors import InsufficientFunds, PersonNotFound
from socialcard.wallet.funding.schemas import (
    BudgetAllocation,
    BudgetRead,
    FundingRequest,
    FundingResult,
)
from socialcard.wallet.ledger import service as ledger_service
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.vouchers import service as voucher_service
from socialcard.wallet.vouchers.catalog import VoucherType
from socialcard.wallet.vouchers.schemas import PrescriptionLine

log = get_logger(__name__)


def _source_code(program_id: str) -> str:
    return f"source:{program_id}"


def _budget_account(session: Session, program_id: str, region_kato: str) -> Any:
    return ledger_service.ensure_account(
        session,
        code=ledger_service.budget_code(program_id, region_kato),
        kind=AccountKind.BUDGET,
        program_id=program_id,
        region_kato=region_kato,
        allow_negative=get_settings().wallet.budget_allow_negative,
    )


def allocate_budget(
    session: Session, *, idempotency_key: str | None, allocation: BudgetAllocation
) -> BudgetRead:
    """Move an appropriation from the program's source into its regional budget."""

    def handler() -> dict[str, Any]:
        source = ledger_service.ensure_account(
            session,
            code=_source_code(allocation.program_id),
            kind=AccountKind.SOURCE,
            program_id=allocation.program_id,
            allow_negative=True,
        )
        budget = _budget_account(session, allocation.program_id, allocation.region_kato)
        posting_id = ledger_service.post(
            session,
            kind=PostingKind.ALLOCATION,
            legs=[
                ledger_service.Leg(source.id, -allocation.amount_minor),
                ledger_service.Leg(budget.id, allocation.amount_minor),
            ],
            memo="budget allocation",
        )
        balance = ledger_service.lock_account(session, budget.id).balance_minor
        return BudgetRead(
            program_id=allocation.program_id,
            region_kato=allocation.region_kato,
            balance_minor=balance,
            posting_id=posting_id,
        ).model_dump(mode="json")

    result = ledger_service.idempotent(
        session,
        scope="budget",
        key=idempotency_key,
        operation="allocate",
        payload=allocation.model_dump(mode="json"),
        handler=handler,
    )
    return BudgetRead.model_validate(result)


def _check_restrictions(session: Session, order: FundingRequest, vtype: VoucherType) -> None:
    """The data a voucher type needs to be usable at all (InvalidInput naming the field)."""
    if vtype.bound_to_merchant and order.bound_merchant_id is None:
        raise InvalidInput(
            f"a {vtype.code} voucher is bound to one merchant: give bound_merchant_id",
            details=[field_error("bound_merchant_id", "required for this benefit type")],
        )
    if order.bound_merchant_id is not None:
        merchant = merchant_service.get_merchant(session, merchant_id=order.bound_merchant_id)
        if vtype.code not in merchant.accepts:
            raise InvalidInput(
                f"merchant {merchant.id} does not accept {vtype.code} vouchers",
                details=[field_error("bound_merchant_id", "category does not accept this type")],
            )
    if vtype.prescription and not order.prescription:
        raise InvalidInput(
            "a medicine voucher needs its prescription lines",
            details=[field_error("prescription", "required for this benefit type")],
        )
    if vtype.fare_discount_percent and order.fare_category not in vtype.fare_discount_percent:
        raise InvalidInput(
            "fare_category must be one of " + ", ".join(sorted(vtype.fare_discount_percent)),
            details=[field_error("fare_category", "unknown fare category")],
        )


def _period_bounds(period: str) -> tuple[date, date]:
    year, month = int(period[:4]), int(period[5:7])
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def fund_benefit(
    session: Session,
    *,
    idempotency_key: str,
    person_id: int,
    program_id: str,
    region_kato: str,
    amount_minor: int,
    benefit_type: str,
    period: str,
    valid_until: date | None = None,
    bound_merchant_id: int | None = None,
    fare_category: str | None = None,
    prescription: list[PrescriptionLine] | None = None,
    now: datetime | None = None,
) -> FundingResult:
    """Pay a benefit from the program's regional budget into a new voucher of the citizen.

    The budget cannot go negative unless `wallet.budget_allow_negative` is set. The same
    idempotency key with the same order returns the first result; with another order, 409.
    """
    order = FundingRequest(
        person_id=person_id,
        program_id=program_id,
        region_kato=region_kato,
        amount_minor=amount_minor,
        benefit_type=benefit_type,
        period=period,
        valid_until=valid_until,
        bound_merchant_id=bound_merchant_id,
        fare_category=fare_category,
        prescription=prescription,
    )
    return fund_order(session, idempotency_key=idempotency_key, request=order, now=now)


def fund_order(
    session: Session,
    *,
    idempotency_key: str | None,
    request: FundingRequest,
    now: datetime | None = None,
) -> FundingResult:
    """fund_benefit for an already-validated order (the API, the CLI and the adapter use it)."""
    when = now or utcnow()
    order = request
    vtype = voucher_service.voucher_type(order.benefit_type)

    def handler() -> dict[str, Any]:
        if registry_service.preferred_language(session, person_id=order.person_id) is None:
            raise PersonNotFound(
                f"no person with id {order.person_id}",
                details=[field_error("person_id", "unknown")],
            )
        _check_restrictions(session, order, vtype)
        budget_row = _budget_account(session, order.program_id, order.region_kato)
        # Race prevented by the lock: two fundings both passing the budget check.
        budget = ledger_service.lock_account(session, budget_row.id)
        if not budget.allow_negative and budget.balance_minor < order.amount_minor:
            raise InsufficientFunds(
                f"the budget of {order.program_id} in {order.region_kato} has "
                f"{budget.balance_minor} tiyn, {order.amount_minor} needed",
                code="budget_exhausted",
                details=[field_error("amount_minor", "exceeds the program budget")],
            )
        first, last = _period_bounds(order.period)
        if vtype.activation_days is not None and vtype.activation_requires:
            # An unactivated gas voucher lapses after the last activation day (the 29th);
            # activation extends it to the end of the month.
            last = min(last, first.replace(day=vtype.activation_days[1]))
        voucher_id, account_id, _token = voucher_service.issue_voucher(
            session,
            person_id=order.person_id,
            vtype=vtype,
            program_id=order.program_id,
            region_kato=order.region_kato,
            period=order.period,
            nominal_minor=order.amount_minor,
            valid_from=first,
            valid_until=order.valid_until or last,
            bound_merchant_id=order.bound_merchant_id,
            fare_category=order.fare_category,
            prescription=order.prescription,
            source=order.source,
            now=when,
        )
        posting_id = ledger_service.post(
            session,
            kind=PostingKind.FUNDING,
            legs=[
                ledger_service.Leg(budget.id, -order.amount_minor),
                ledger_service.Leg(account_id, order.amount_minor),
            ],
            now=when,
            voucher_id=voucher_id,
            memo=f"{order.program_id} {order.period}",
        )
        status = VoucherStatus.CREATED if vtype.needs_activation else VoucherStatus.ACTIVATED
        # Debug: a month's funding writes one per voucher (thousands in the demo).
        log.debug(
            "benefit_funded",
            voucher_id=voucher_id,
            posting_id=posting_id,
            program_id=order.program_id,
            amount_minor=order.amount_minor,
        )
        return FundingResult(
            voucher_id=voucher_id,
            account_id=account_id,
            posting_id=posting_id,
            amount_minor=order.amount_minor,
            benefit_type=vtype.code,
            status=status.value,
        ).model_dump(mode="json")

    # The key is not part of what was asked (a FundingOrder carries it as a field), nor is the
    # rules run that found the decision: a later run of the same month finds the same decision.
    payload = order.model_dump(mode="json", exclude={"idempotency_key": True, "source": {"run_id"}})
    result = ledger_service.idempotent(
        session,
        scope="funding",
        key=idempotency_key,
        operation="fund",
        payload=payload,
        handler=handler,
    )
    return FundingResult.model_validate(result)


def budget_balance(session: Session, *, program_id: str, region_kato: str) -> BudgetRead:
    account = _budget_account(session, program_id, region_kato)
    return BudgetRead(
        program_id=program_id, region_kato=region_kato, balance_minor=account.balance_minor
    )
