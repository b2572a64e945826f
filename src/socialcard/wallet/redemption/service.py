"""Redemption: authorize, capture, void, refund, balance inquiry and daily settlement."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.db import is_sqlite
from socialcard.core.errors import InvalidInput, field_error
from socialcard.core.logging import get_logger
from socialcard.wallet import business_day
from socialcard.wallet.enums import Decision, DeclineReason, HoldStatus, VoucherStatus
from socialcard.wallet.errors import BusinessDayOpen, HoldNotFound
from socialcard.wallet.ledger import repository as ledger_repository
from socialcard.wallet.ledger import service as ledger_service
from socialcard.wallet.merchants import repository as merchant_repository
from socialcard.wallet.merchants.models import Settlement
from socialcard.wallet.merchants.service import TerminalContext
from socialcard.wallet.redemption import repository as redemption_repository
from socialcard.wallet.redemption.schemas import (
    AuthorizationRead,
    AuthorizeRequest,
    InquiryRead,
    InquiryRequest,
    SettlementRead,
)
from socialcard.wallet.types import Record
from socialcard.wallet.vouchers import service as voucher_service
from socialcard.wallet.vouchers.catalog import load_catalog
from socialcard.wallet.vouchers.policy import Evaluation, Item, evaluate

log = get_logger(__name__)


def _items(items: list[dict[str, Any]]) -> list[Item]:
    return [
        Item(i["sku"], i["category"], i["quantity"], i["amount_minor"], i["atc"]) for i in items
    ]


def _scope(terminal: TerminalContext) -> str:
    return f"terminal:{terminal.terminal_id}"


def _evaluate(
    terminal: TerminalContext,
    voucher: Record,
    items: list[Item],
    on: date,
    partial: bool,
    *,
    check_balance: bool = True,
) -> Evaluation:
    return evaluate(
        load_catalog(),
        voucher=voucher,
        merchant_id=terminal.merchant_id,
        merchant_category=terminal.category,
        merchant_licensed=terminal.licensed,
        items=items,
        on=on,
        allow_partial=partial,
        check_balance=check_balance,
    )


def _voucher_status_after(voucher: Record, balance_after: int) -> str:
    if balance_after <= 0:
        return VoucherStatus.REDEEMED.value
    if balance_after < voucher.nominal_minor:
        return VoucherStatus.PARTLY_REDEEMED.value
    return str(voucher.status)


@dataclass(slots=True)
class AuthorizationPlan:
    """What an authorization writes and answers, decided from the locked voucher (no I/O).

    Every store and every caller (the service on a session, the hot path on a raw connection)
    runs this one function; they differ only in how they read the voucher and write the plan.
    """

    answer: dict[str, Any]  # AuthorizationRead as a dict; `authorization_id` set once known
    amount_minor: int = 0  # 0: declined, nothing to write but the answer
    capture: bool = False
    lines: list[dict[str, Any]] = field(default_factory=list)  # the hold's lines, with ATC codes
    voucher_values: dict[str, Any] = field(default_factory=dict)  # voucher columns that change


def _answer(decision: str, reason: str | None, requested: int, approved: int) -> dict[str, Any]:
    return {
        "authorization_id": None,
        "decision": decision,
        "reason": reason,
        "requested_minor": requested,
        "approved_minor": approved,
        "captured_minor": 0,
        "refunded_minor": 0,
        "status": None,
        "lines": [],
    }


def authorize_payload(request: AuthorizeRequest) -> dict[str, Any]:
    """The request as the plan, the idempotency hash and the hot path's parser see it."""
    return request.model_dump(mode="json")


def plan_authorization(
    *, terminal: TerminalContext, voucher: Record | None, payload: dict[str, Any], when: datetime
) -> AuthorizationPlan:
    """Approve, partly approve or decline `payload` (authorize_payload) with a locked voucher."""
    items = _items(payload["items"])
    requested = sum(item.amount_minor for item in items)
    declined = Decision.DECLINED.value
    if voucher is None:
        missing = DeclineReason.VOUCHER_NOT_FOUND.value
        return AuthorizationPlan(_answer(declined, missing, requested, 0))
    on = business_day.business_day(when)
    outcome = _evaluate(terminal, voucher, items, on, payload["allow_partial"])
    if outcome.decision is Decision.DECLINED:
        assert outcome.reason is not None  # noqa: S101 - a decline always has a reason
        answer = _answer(declined, outcome.reason.value, requested, 0)
        answer["lines"] = outcome.lines
        return AuthorizationPlan(answer)
    amount, capture = outcome.approved_minor, bool(payload["capture"])
    ledger_service.require_available(voucher, amount, what="wallet")
    reason = outcome.reason.value if outcome.reason else None
    answer = _answer(outcome.decision.value, reason, requested, amount)
    answer["lines"] = outcome.lines
    answer["captured_minor"] = amount if capture else 0
    answer["status"] = (HoldStatus.CAPTURED if capture else HoldStatus.AUTHORIZED).value
    voucher_values: dict[str, Any] = {}
    if voucher_service.voucher_type(voucher.type).uses_per_day is not None:
        voucher_values.update(last_used_on=on, uses_on_day=outcome.uses)
    if outcome.prescription is not None:
        voucher_values["prescription"] = json.dumps(outcome.prescription)
    if capture:
        status = _voucher_status_after(voucher, voucher.balance_minor - amount)
        if status != voucher.status:
            voucher_values["status"] = status
    lines = [{**line, "atc": item.atc} for line, item in zip(outcome.lines, items, strict=True)]
    return AuthorizationPlan(answer, amount, capture, lines, voucher_values)


def _hold_expiry(plan: AuthorizationPlan, when: datetime) -> datetime:
    if plan.capture:
        return when
    return when + timedelta(minutes=get_settings().wallet.hold_ttl_minutes)


def write_params(
    plan: AuthorizationPlan,
    *,
    terminal: TerminalContext,
    voucher: Record,
    claim_id: int,
    hold_id: int,
    when: datetime,
) -> dict[str, Any]:
    """The parameters of repository.WRITE_AUTHORIZATION for an approved plan."""
    values = plan.voucher_values
    return {
        "claim_id": claim_id,
        "hold_id": hold_id,
        "account_id": voucher.account_id,
        "voucher_id": voucher.id,
        "merchant_id": terminal.merchant_id,
        "terminal_id": terminal.terminal_id,
        "merchant_account_id": terminal.merchant_account_id,
        "amount": plan.amount_minor,
        "captured": plan.amount_minor if plan.capture else 0,
        "held": 0 if plan.capture else plan.amount_minor,
        "status": plan.answer["status"],
        "lines": json.dumps(plan.lines, separators=(",", ":")),
        "now": when,
        "expires_at": _hold_expiry(plan, when),
        "resolved_at": when if plan.capture else None,
        "voucher_status": values.get("status"),
        "last_used_on": values.get("last_used_on"),
        "uses_on_day": values.get("uses_on_day"),
        "prescription": values.get("prescription"),
        "voucher_changes": bool(values),
        "response": answer_json(plan.answer),
    }


def answer_json(answer: dict[str, Any]) -> str:
    """The stored, sent and replayed form of an answer (strict: InvalidInput when it cannot be
    sent, raised before the commit)."""
    return ledger_service.encode_answer(answer)


def log_authorized(plan: AuthorizationPlan, voucher: Record, terminal: TerminalContext) -> None:
    # Debug, not info: the ledger is the record of every purchase, and at a thousand a second
    # an info line per purchase floods the log (and the demo's console).
    if plan.amount_minor:
        log.debug(
            "voucher_redeemed" if plan.capture else "voucher_authorized",
            hold_id=plan.answer["authorization_id"],
            voucher_id=voucher.id,
            merchant_id=terminal.merchant_id,
            amount_minor=plan.amount_minor,
        )


def claim_params(
    terminal: TerminalContext, key: str | None, payload: dict[str, Any], when: datetime
) -> dict[str, Any]:
    """The parameters of repository.CLAIM_AND_LOCK (the key checked, the request hashed)."""
    ledger_service.require_idempotency_key(key)
    return {
        "scope": _scope(terminal),
        "key": key,
        "request_hash": ledger_service.request_hash("authorize", payload),
        "now": when,
        "token": payload["token"],
    }


def replayed_answer(session: Session, params: dict[str, Any]) -> AuthorizationRead:
    """The stored answer for a key already claimed (409 when the request differs)."""
    return AuthorizationRead.model_validate_json(replayed_json(session, params))


def replayed_json(session: Session, params: dict[str, Any]) -> str:
    """The stored answer's text for a key already claimed, byte for byte (409 when the request
    differs)."""
    return ledger_service.replay_text(
        session, scope=params["scope"], key=params["key"], request_hash=params["request_hash"]
    )


def _write_sqlite(
    session: Session,
    plan: AuthorizationPlan,
    terminal: TerminalContext,
    voucher: Record,
    when: datetime,
) -> int:
    """The plan's writes statement by statement (SQLite: in-process, no round trips)."""
    if plan.capture:
        hold_id, _ = ledger_service.capture_now(
            session,
            account_id=voucher.account_id,
            voucher_id=voucher.id,
            merchant_id=terminal.merchant_id,
            terminal_id=terminal.terminal_id,
            merchant_account_id=terminal.merchant_account_id,
            amount_minor=plan.amount_minor,
            lines=plan.lines,
            now=when,
        )
    else:
        hold_id = ledger_service.open_hold(
            session,
            account_id=voucher.account_id,
            funds=voucher,
            voucher_id=voucher.id,
            merchant_id=terminal.merchant_id,
            terminal_id=terminal.terminal_id,
            amount_minor=plan.amount_minor,
            lines=plan.lines,
            now=when,
            ttl=_hold_expiry(plan, when) - when,
        )
    if plan.voucher_values:
        voucher_service.update_voucher(session, voucher.id, plan.voucher_values)
    return hold_id


def authorize(
    session: Session,
    *,
    terminal: TerminalContext,
    idempotency_key: str | None,
    request: AuthorizeRequest,
    now: datetime | None = None,
) -> AuthorizationRead:
    """Authorize (and with `capture`, also capture) a purchase paid by a voucher or pass."""
    when = now or utcnow()
    payload = authorize_payload(request)
    if not is_sqlite(session):
        return AuthorizationRead.model_validate(
            authorize_postgres(
                session, terminal=terminal, key=idempotency_key, payload=payload, when=when
            )
        )

    def handler() -> dict[str, Any]:
        # Locks the voucher and its account (see vouchers.repository.lock_voucher).
        voucher = voucher_service.lock_voucher(session, token=payload["token"])
        plan = plan_authorization(terminal=terminal, voucher=voucher, payload=payload, when=when)
        if plan.amount_minor and voucher is not None:
            plan.answer["authorization_id"] = _write_sqlite(session, plan, terminal, voucher, when)
            log_authorized(plan, voucher, terminal)
        return plan.answer

    result = ledger_service.idempotent(
        session,
        scope=_scope(terminal),
        key=idempotency_key,
        operation="authorize",
        payload=payload,
        handler=handler,
    )
    return AuthorizationRead.model_validate(result)


def authorize_postgres(
    session: Session,
    *,
    terminal: TerminalContext,
    key: str | None,
    payload: dict[str, Any],
    when: datetime,
) -> dict[str, Any]:
    """authorize on PostgreSQL: two statements (claim and lock; write and answer)."""
    params = claim_params(terminal, key, payload, when)
    row = redemption_repository.claim_and_lock(session, params)
    if row is None:
        return replayed_answer(session, params).model_dump(mode="json")
    voucher = row if row.id is not None else None
    plan = plan_authorization(terminal=terminal, voucher=voucher, payload=payload, when=when)
    if not plan.amount_minor or voucher is None:
        redemption_repository.store_answer(
            session, {"claim_id": row.claim_id, "response": answer_json(plan.answer)}
        )
        return plan.answer
    plan.answer["authorization_id"] = row.hold_id
    redemption_repository.write_authorization(
        session,
        write_params(
            plan,
            terminal=terminal,
            voucher=voucher,
            claim_id=row.claim_id,
            hold_id=row.hold_id,
            when=when,
        ),
    )
    log_authorized(plan, voucher, terminal)
    return plan.answer


def _hold_read(hold: Record, decision: str = Decision.APPROVED.value) -> dict[str, Any]:
    return {
        "authorization_id": hold.id,
        "decision": decision,
        "reason": None,
        "requested_minor": hold.amount_minor,
        "approved_minor": hold.amount_minor,
        "captured_minor": hold.captured_minor,
        "refunded_minor": hold.refunded_minor,
        "status": hold.status,
        "lines": [],
    }


def _locked_hold(
    session: Session, terminal: TerminalContext, hold_id: int
) -> tuple[Record, Record]:
    """The merchant's hold and its voucher, the voucher locked and the hold re-read under it."""
    hold = ledger_repository.hold_by_id(session, hold_id)
    if hold is None or hold.merchant_id != terminal.merchant_id:
        raise HoldNotFound(f"no authorization {hold_id} at this merchant")
    voucher = voucher_service.lock_voucher(session, voucher_id=hold.voucher_id)
    assert voucher is not None  # noqa: S101 - a hold always has its voucher (foreign key)
    return ledger_service.get_hold(session, hold_id), voucher


def _hold_op(
    session: Session,
    *,
    terminal: TerminalContext,
    idempotency_key: str | None,
    operation: str,
    hold_id: int,
    payload: dict[str, Any],
    apply: Any,
) -> AuthorizationRead:
    def handler() -> dict[str, Any]:
        hold, voucher = _locked_hold(session, terminal, hold_id)
        apply(hold, voucher)
        return _hold_read(ledger_service.get_hold(session, hold_id))

    result = ledger_service.idempotent(
        session,
        scope=_scope(terminal),
        key=idempotency_key,
        operation=operation,
        payload={"hold_id": hold_id, **payload},
        handler=handler,
    )
    return AuthorizationRead.model_validate(result)


def capture(
    session: Session,
    *,
    terminal: TerminalContext,
    idempotency_key: str | None,
    hold_id: int,
    amount_minor: int | None,
    now: datetime | None = None,
) -> AuthorizationRead:
    """Capture all or part of an authorization; the rest of the hold is released."""
    when = now or utcnow()

    def apply(hold: Record, voucher: Record) -> None:
        amount = hold.amount_minor if amount_minor is None else amount_minor
        ledger_service.capture_hold(
            session,
            hold=hold,
            amount_minor=amount,
            merchant_account_id=terminal.merchant_account_id,
            now=when,
        )
        if amount == 0:
            voucher_service.restore_use(session, voucher=voucher, hold=hold)
            return
        status = _voucher_status_after(voucher, voucher.balance_minor - amount)
        if status != voucher.status:
            voucher_service.update_voucher(session, voucher.id, {"status": status})

    return _hold_op(
        session,
        terminal=terminal,
        idempotency_key=idempotency_key,
        operation="capture",
        hold_id=hold_id,
        payload={"amount_minor": amount_minor},
        apply=apply,
    )


def void(
    session: Session,
    *,
    terminal: TerminalContext,
    idempotency_key: str | None,
    hold_id: int,
    now: datetime | None = None,
) -> AuthorizationRead:
    """Cancel an authorization before capture; the reservation is released."""
    when = now or utcnow()

    def apply(hold: Record, voucher: Record) -> None:
        ledger_service.release_hold(session, hold=hold, status=HoldStatus.VOIDED, now=when)
        voucher_service.restore_use(session, voucher=voucher, hold=hold)

    return _hold_op(
        session,
        terminal=terminal,
        idempotency_key=idempotency_key,
        operation="void",
        hold_id=hold_id,
        payload={},
        apply=apply,
    )


def refund(
    session: Session,
    *,
    terminal: TerminalContext,
    idempotency_key: str | None,
    hold_id: int,
    amount_minor: int,
    now: datetime | None = None,
) -> AuthorizationRead:
    """Return captured value to the citizen's voucher (never as cash)."""
    when = now or utcnow()

    def apply(hold: Record, voucher: Record) -> None:
        ledger_service.refund_hold(
            session,
            hold=hold,
            amount_minor=amount_minor,
            merchant_account_id=terminal.merchant_account_id,
            now=when,
        )
        if voucher.status == VoucherStatus.REDEEMED.value:
            voucher_service.update_voucher(
                session, voucher.id, {"status": VoucherStatus.PARTLY_REDEEMED.value}
            )

    return _hold_op(
        session,
        terminal=terminal,
        idempotency_key=idempotency_key,
        operation="refund",
        hold_id=hold_id,
        payload={"amount_minor": amount_minor},
        apply=apply,
    )


def inquire(
    session: Session,
    *,
    terminal: TerminalContext,
    request: InquiryRequest,
    now: datetime | None = None,
) -> InquiryRead:
    """Can this voucher pay for these items here: yes or no, and how much of them its rules
    allow. Never the balance: when it falls short the answer is "no", not what is left (a
    huge amount would otherwise read the exact remaining balance)."""
    when = now or utcnow()
    voucher = voucher_service.voucher_by_token(session, request.token)
    if voucher is None:
        return InquiryRead(
            can_pay=False, allowed_minor=0, reason=DeclineReason.VOUCHER_NOT_FOUND.value
        )
    items = _items([item.model_dump() for item in request.items])
    day = business_day.business_day(when)
    rules = _evaluate(terminal, voucher, items, day, True, check_balance=False)
    allowed = rules.approved_minor
    reason = rules.reason.value if rules.reason else None
    spendable = int(voucher.balance_minor) - int(voucher.held_minor)
    if allowed > 0 and spendable < allowed:
        return InquiryRead(
            can_pay=False,
            allowed_minor=allowed,
            reason=DeclineReason.INSUFFICIENT_BALANCE.value,
        )
    return InquiryRead(can_pay=allowed > 0, allowed_minor=allowed, reason=reason)


# --- settlement --------------------------------------------------------------------------------


def _day_bounds(day_on: date) -> tuple[datetime, datetime]:
    """The business day as a UTC interval; InvalidInput for a day that has none (0001-01-01's
    start is before the year 1 in UTC, 9999-12-31 has no next day)."""
    try:
        return business_day.day_bounds(day_on)
    except (OverflowError, ValueError):
        reason = "not a business day the wallet can settle"
        raise InvalidInput(f"day_on: {reason}", details=[field_error("day_on", reason)]) from None


def settlement(session: Session, *, merchant_id: int, day_on: date) -> SettlementRead:
    """A merchant's totals for a business day (wallet.business_timezone), from the ledger."""
    start, end = _day_bounds(day_on)
    row = ledger_repository.merchant_day_totals(
        session, merchant_id=merchant_id, start=start, end=end
    )
    return SettlementRead(
        merchant_id=merchant_id,
        day_on=day_on.isoformat(),
        captured_minor=int(row.captured),
        refunded_minor=int(row.refunded),
        net_minor=int(row.captured) - int(row.refunded),
        postings=int(row.n),
    )


def issue_settlement(
    session: Session, *, merchant_id: int, day_on: date, now: datetime | None = None
) -> tuple[SettlementRead, str]:
    """Issue (record) a merchant's daily statement and render it as CSV: one line per posting.

    Only for a business day that has ended (`wallet.settlement_grace_minutes` ago): no
    purchase can be posted on it any more, so the frozen totals equal the ledger for good.
    """
    _, end = _day_bounds(day_on)
    grace = timedelta(minutes=get_settings().wallet.settlement_grace_minutes)
    if (now or utcnow()) < end + grace:
        raise BusinessDayOpen(
            f"the business day {day_on} has not ended; its statement can be issued from "
            f"{(end + grace).isoformat()}",
            details=[field_error("day_on", "the business day has not ended")],
        )
    totals = settlement(session, merchant_id=merchant_id, day_on=day_on)
    stored = merchant_repository.settlement(session, merchant_id=merchant_id, day_on=day_on)
    if stored is None:
        session.add(
            Settlement(
                merchant_id=merchant_id,
                day_on=day_on,
                captured_minor=totals.captured_minor,
                refunded_minor=totals.refunded_minor,
                net_minor=totals.net_minor,
                postings=totals.postings,
            )
        )
        session.flush()
    start, end = _day_bounds(day_on)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["posting_id", "kind", "posted_at", "authorization_id", "amount_minor"])
    for row in ledger_repository.merchant_day_postings(
        session, merchant_id=merchant_id, start=start, end=end
    ):
        writer.writerow(
            [row.id, row.kind, row.posted_at.isoformat(), row.hold_id, row.amount_minor]
        )
    writer.writerow(["TOTAL", "captured", "", "", totals.captured_minor])
    writer.writerow(["TOTAL", "refunded", "", "", totals.refunded_minor])
    writer.writerow(["TOTAL", "net", "", "", totals.net_minor])
    return totals, out.getvalue()


def check_settlements(session: Session) -> list[str]:
    """Every issued statement whose totals no longer equal the ledger."""
    problems = []
    for stored in merchant_repository.all_settlements(session):
        now = settlement(session, merchant_id=stored.merchant_id, day_on=stored.day_on)
        if (now.captured_minor, now.refunded_minor, now.postings) != (
            stored.captured_minor,
            stored.refunded_minor,
            stored.postings,
        ):
            problems.append(
                f"settlement of merchant {stored.merchant_id} on {stored.day_on}: statement "
                f"{stored.net_minor} != ledger {now.net_minor}"
            )
    return problems


def day_statement(
    session: Session, *, merchant_id: int, day_on: date
) -> tuple[SettlementRead, list[Record]]:
    """A merchant's day for its page: the totals (from the ledger) and each posting."""
    totals = settlement(session, merchant_id=merchant_id, day_on=day_on)
    start, end = _day_bounds(day_on)
    rows = ledger_repository.merchant_day_postings(
        session, merchant_id=merchant_id, start=start, end=end
    )
    return totals, rows
