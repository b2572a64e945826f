"""Funding: allocate program budgets and pay benefits from a budget into a citizen's wallet."""

from __future__ import annotations

import calendar
import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.db import session_scope
from socialcard.core.errors import AppError, InvalidInput, field_error
from socialcard.core.logging import get_logger
from socialcard.registry import service as registry_service
from socialcard.security import service as security_service
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor
from socialcard.wallet.enums import AccountKind, PostingKind, VoucherStatus
from socialcard.wallet.errors import IdempotencyKeyReused, InsufficientFunds, PersonNotFound
from socialcard.wallet.funding.schemas import (
    BudgetAllocation,
    BudgetRead,
    FundingOrder,
    FundingRequest,
    FundingResult,
)
from socialcard.wallet.ledger import repository as ledger_repository
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
    session: Session,
    *,
    idempotency_key: str | None,
    allocation: BudgetAllocation,
    actor: Actor | None = None,
    detail: str = "",
) -> BudgetRead:
    """Move an appropriation from the program's source into its regional budget (audited;
    from the API and the command line only as an approved maker–checker request)."""

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
        security_service.record_access(
            session,
            actor=actor or security_service.system_actor(),
            action="wallet.budget.allocate",
            subject_type="posting",
            subject_ids=[posting_id],
            purpose=Purpose.PAYMENT,
            detail=f"{allocation.program_id} {allocation.region_kato} "
            f"{allocation.amount_minor} tiyn{detail}",
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


def _check_restrictions(
    session: Session, order: FundingRequest, vtype: VoucherType, merchants: dict[int, Any]
) -> None:
    """The data a voucher type needs to be usable at all (InvalidInput naming the field).
    `merchants` keeps the merchants read for a batch."""
    if vtype.bound_to_merchant and order.bound_merchant_id is None:
        raise InvalidInput(
            f"a {vtype.code} voucher is bound to one merchant: give bound_merchant_id",
            details=[field_error("bound_merchant_id", "required for this benefit type")],
        )
    if order.bound_merchant_id is not None:
        merchant = merchants.get(order.bound_merchant_id)
        if merchant is None:
            merchant = merchant_service.get_merchant(session, merchant_id=order.bound_merchant_id)
            merchants[order.bound_merchant_id] = merchant
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
    actor: Actor | None = None,
) -> FundingResult:
    """fund_benefit for an already-validated order: a batch of one of `fund_orders`, its
    refusal raised."""
    voucher_service.voucher_type(request.benefit_type)
    key = ledger_service.require_idempotency_key(idempotency_key)
    outcome = fund_orders(session, [(key, request)], now=now, actor=actor)[0]
    if outcome.error is not None:
        raise outcome.error
    assert outcome.result is not None  # noqa: S101 - an outcome has one or the other
    return outcome.result


@dataclass(frozen=True, slots=True)
class FundingOutcome:
    """What became of one order of a batch: its result (new or replayed) or its refusal."""

    key: str
    result: FundingResult | None = None
    error: AppError | None = None


FUNDING_CHUNK = 5000  # orders per transaction: big enough to amortise, small enough to retry


def fund_in_chunks(
    orders: Sequence[FundingOrder],
    *,
    now: datetime | None = None,
    chunk_size: int = FUNDING_CHUNK,
    new_session: Callable[[], AbstractContextManager[Session]] = session_scope,
    after: Callable[[Session, list[FundingOutcome]], None] | None = None,
    actor: Actor | None = None,
) -> list[FundingOutcome]:
    """Fund many orders with `fund_orders`, one transaction per chunk, outcomes in order.

    `after` runs in each chunk's transaction with its outcomes (the payment-order adapter marks
    its orders paid there, so the payment and the mark commit together).
    """
    outcomes: list[FundingOutcome] = []
    for start in range(0, len(orders), chunk_size):
        chunk = orders[start : start + chunk_size]
        with new_session() as session:
            done = fund_orders(
                session, [(o.idempotency_key, o) for o in chunk], now=now, actor=actor
            )
            if after is not None:
                after(session, done)
        outcomes.extend(done)
    return outcomes


def _payload(order: FundingRequest) -> dict[str, Any]:
    # The key is not part of what was asked (a FundingOrder carries it as a field), nor is the
    # rules run that found the decision, nor its pack: a later run of the same month finds the
    # same decision (the amount is still compared).
    return order.model_dump(
        mode="json",
        exclude={"idempotency_key": True, "source": {"run_id", "rule_version", "pack_hash"}},
    )


def fund_orders(
    session: Session,
    orders: Sequence[tuple[str, FundingRequest]],
    *,
    now: datetime | None = None,
    actor: Actor | None = None,
) -> list[FundingOutcome]:
    """Fund a batch of (idempotency key, order) in the session's transaction, one outcome each.

    Each order is what `fund_order` makes of it alone, taken in turn: one balanced posting from
    its program's regional budget into a new voucher, its key claimed with it; a key seen before
    with the same order answers the first result, with another order a conflict; an order the
    budget cannot pay (or naming an unknown person, merchant or type) is refused with its
    reason and leaves nothing behind, while the rest go through. The writes are a few
    executemany statements per batch and each budget's balance moves once.
    """
    when = now or utcnow()
    ledger_service.begin_write(session)
    outcomes: list[FundingOutcome | None] = [None] * len(orders)
    # The batch is cut before each key already seen in the current segment: a segment's keys
    # are distinct and it is written before the next one is read, so a repeated key meets its
    # first occurrence as a retry would, and budgets are spent in the batch's order.
    start = 0
    while start < len(orders):
        seen: set[str] = set()
        end = start
        while end < len(orders) and orders[end][0] not in seen:
            seen.add(orders[end][0])
            end += 1
        _fund_round(session, orders, list(range(start, end)), outcomes, when, actor)
        start = end
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(orders)  # noqa: S101 - every order has its outcome
    return done


def _fund_round(
    session: Session,
    orders: Sequence[tuple[str, FundingRequest]],
    indexes: list[int],
    outcomes: list[FundingOutcome | None],
    when: datetime,
    actor: Actor | None,
) -> None:
    """Fund orders with distinct keys (see fund_orders), writing their outcomes."""

    def refuse(i: int, error: AppError) -> None:
        outcomes[i] = FundingOutcome(key=orders[i][0], error=error)

    typed: dict[int, tuple[VoucherType, str]] = {}
    for i in indexes:
        key, order = orders[i]
        try:
            vtype = voucher_service.voucher_type(order.benefit_type)
            ledger_service.require_idempotency_key(key)
        except AppError as exc:
            refuse(i, exc)
            continue
        typed[i] = (vtype, ledger_service.request_hash("fund", _payload(order)))
    by_key = sorted(typed, key=lambda i: orders[i][0])
    claimed = ledger_repository.claim_idempotency_many(
        session, scope="funding", claims=[(orders[i][0], typed[i][1]) for i in by_key]
    )
    # Keys already used: the first answer again, or a conflict when the order differs.
    stored = ledger_repository.idempotency_records(
        session, scope="funding", keys=[orders[i][0] for i in typed if orders[i][0] not in claimed]
    )
    fresh: list[int] = []
    for i, (_vtype, digest) in typed.items():
        key = orders[i][0]
        if key in claimed:
            fresh.append(i)
            continue
        record = stored.get(key)
        if record is None or record.request_hash != digest or record.response is None:
            refuse(
                i,
                IdempotencyKeyReused(
                    "this Idempotency-Key was already used with a different request",
                    details=[field_error("Idempotency-Key", "reused with a different payload")],
                ),
            )
        else:
            result = FundingResult.model_validate(json.loads(record.response))
            outcomes[i] = FundingOutcome(key=key, result=result)
    fresh.sort()
    known = registry_service.contacts(session, sorted({orders[i][1].person_id for i in fresh}))
    merchants: dict[int, Any] = {}
    budgets: dict[tuple[str, str], Any] = {}
    accepted: list[int] = []
    for i in fresh:
        order = orders[i][1]
        try:
            if order.person_id not in known:
                raise PersonNotFound(
                    f"no person with id {order.person_id}",
                    details=[field_error("person_id", "unknown")],
                )
            _check_restrictions(session, order, typed[i][0], merchants)
        except AppError as exc:
            refuse(i, exc)
            continue
        budgets.setdefault((order.program_id, order.region_kato), None)
        accepted.append(i)
    # Race prevented by the locks (taken in id order): two batches both passing the budget check.
    accounts = {b: _budget_account(session, *b) for b in budgets}
    balances: dict[tuple[str, str], Any] = {}
    for b, account in sorted(accounts.items(), key=lambda item: item[1].id):
        balances[b] = ledger_service.lock_account(session, account.id)
    left = {b: int(row.balance_minor) for b, row in balances.items()}
    paid: list[int] = []
    for i in accepted:
        order = orders[i][1]
        b = (order.program_id, order.region_kato)
        if not balances[b].allow_negative and left[b] < order.amount_minor:
            refuse(
                i,
                InsufficientFunds(
                    f"the budget of {order.program_id} in {order.region_kato} has "
                    f"{left[b]} tiyn, {order.amount_minor} needed",
                    code="budget_exhausted",
                    details=[field_error("amount_minor", "exceeds the program budget")],
                ),
            )
            continue
        left[b] -= order.amount_minor
        paid.append(i)
    ledger_repository.release_idempotency(
        session, [claimed[orders[i][0]] for i in fresh if outcomes[i] is not None]
    )
    _write(session, orders, paid, typed, balances, claimed, outcomes, when)
    # Every payment into a wallet is audited: who paid whom how much, from which program.
    who = actor or security_service.system_actor("job:funding")
    for i in paid:
        outcome = outcomes[i]
        order = orders[i][1]
        made = outcome.result if outcome is not None else None
        assert made is not None  # noqa: S101 - _write has just made it
        security_service.record_access(
            session,
            actor=who,
            action="wallet.funding",
            subject_type="person",
            subject_ids=[order.person_id],
            purpose=Purpose.PAYMENT,
            detail=f"voucher {made.voucher_id}: {order.amount_minor} tiyn "
            f"{order.benefit_type} from {order.program_id} {order.region_kato}",
        )


def _write(
    session: Session,
    orders: Sequence[tuple[str, FundingRequest]],
    paid: list[int],
    typed: dict[int, tuple[VoucherType, str]],
    budgets: dict[tuple[str, str], Any],
    claimed: dict[str, int],
    outcomes: list[FundingOutcome | None],
    when: datetime,
) -> None:
    """Write the paid orders: voucher accounts, vouchers, postings, balances, answers."""
    if not paid:
        return
    rows = [_voucher_rows(orders[i][1], typed[i][0], when) for i in paid]
    account_ids = ledger_repository.insert_accounts(session, [account for account, _ in rows])
    voucher_rows = [
        {**voucher, "account_id": account_id}
        for (_, voucher), account_id in zip(rows, account_ids, strict=True)
    ]
    voucher_ids = voucher_service.insert_vouchers(session, voucher_rows)
    postings = []
    for i, account_id, voucher_id in zip(paid, account_ids, voucher_ids, strict=True):
        order = orders[i][1]
        budget = budgets[(order.program_id, order.region_kato)]
        postings.append(
            ledger_service.NewPosting(
                kind=PostingKind.FUNDING,
                legs=[
                    ledger_service.Leg(budget.id, -order.amount_minor),
                    ledger_service.Leg(account_id, order.amount_minor),
                ],
                voucher_id=voucher_id,
                memo=f"{order.program_id} {order.period}",
            )
        )
    posting_ids = ledger_service.post_many(session, postings, now=when)
    answers = []
    for n, i in enumerate(paid):
        key, order = orders[i]
        vtype = typed[i][0]
        status = VoucherStatus.CREATED if vtype.needs_activation else VoucherStatus.ACTIVATED
        result = FundingResult(
            voucher_id=voucher_ids[n],
            account_id=account_ids[n],
            posting_id=posting_ids[n],
            amount_minor=order.amount_minor,
            benefit_type=vtype.code,
            status=status.value,
        )
        outcomes[i] = FundingOutcome(key=key, result=result)
        answer = json.dumps(result.model_dump(mode="json"), separators=(",", ":"), default=str)
        answers.append((claimed[key], answer))
    ledger_repository.store_idempotency_responses(session, answers)
    log.debug(
        "benefits_funded",
        vouchers=len(paid),
        amount_minor=sum(orders[i][1].amount_minor for i in paid),
    )


def _voucher_rows(
    order: FundingRequest, vtype: VoucherType, when: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    first, last = _period_bounds(order.period)
    if vtype.activation_days is not None and vtype.activation_requires:
        # An unactivated gas voucher lapses after the last activation day (the 29th);
        # activation extends it to the end of the month.
        last = min(last, first.replace(day=vtype.activation_days[1]))
    return voucher_service.new_voucher_rows(
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


def budget_balance(session: Session, *, program_id: str, region_kato: str) -> BudgetRead:
    account = _budget_account(session, program_id, region_kato)
    return BudgetRead(
        program_id=program_id, region_kato=region_kato, balance_minor=account.balance_minor
    )


def list_budgets(session: Session) -> list[BudgetRead]:
    """Every program budget by region with its balance."""
    return [
        BudgetRead(
            program_id=row.program_id or "",
            region_kato=row.region_kato or "",
            balance_minor=int(row.balance_minor),
        )
        for row in ledger_repository.accounts_of_kind(session, AccountKind.BUDGET.value)
    ]
