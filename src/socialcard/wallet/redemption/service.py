"""Redemption: authorize, capture, void, refund, balance inquiry and daily settlement."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.logging import get_logger
from socialcard.wallet import business_day
from socialcard.wallet.enums import Decision, DeclineReason, HoldStatus, VoucherStatus
from socialcard.wallet.errors import HoldNotFound
from socialcard.wallet.ledger import repository as ledger_repository
from socialcard.wallet.ledger import service as ledger_service
from socialcard.wallet.merchants import repository as merchant_repository
from socialcard.wallet.merchants.models import Settlement
from socialcard.wallet.merchants.service import TerminalContext
from socialcard.wallet.redemption.schemas import (
    AuthorizationRead,
    AuthorizeRequest,
    InquiryRead,
    InquiryRequest,
    ItemIn,
    SettlementRead,
)
from socialcard.wallet.types import Record
from socialcard.wallet.vouchers import service as voucher_service
from socialcard.wallet.vouchers.catalog import load_catalog
from socialcard.wallet.vouchers.policy import Evaluation, Item, evaluate

log = get_logger(__name__)


def _items(items: list[ItemIn]) -> list[Item]:
    return [Item(i.sku, i.category, i.quantity, i.amount_minor, i.atc) for i in items]


def _scope(terminal: TerminalContext) -> str:
    return f"terminal:{terminal.terminal_id}"


def _evaluate(
    terminal: TerminalContext, voucher: Record, items: list[ItemIn], on: date, partial: bool
) -> Evaluation:
    return evaluate(
        load_catalog(),
        voucher=voucher,
        merchant_id=terminal.merchant_id,
        merchant_category=terminal.category,
        merchant_licensed=terminal.licensed,
        items=_items(items),
        on=on,
        allow_partial=partial,
    )


def _declined(reason: DeclineReason, requested: int, lines: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "authorization_id": None,
        "decision": Decision.DECLINED.value,
        "reason": reason.value,
        "requested_minor": requested,
        "approved_minor": 0,
        "captured_minor": 0,
        "status": None,
        "lines": lines,
    }


def _voucher_status_after(voucher: Record, balance_after: int) -> str:
    if balance_after <= 0:
        return VoucherStatus.REDEEMED.value
    if balance_after < voucher.nominal_minor:
        return VoucherStatus.PARTLY_REDEEMED.value
    return str(voucher.status)


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

    def handler() -> dict[str, Any]:
        requested = sum(item.amount_minor for item in request.items)
        # Locks the voucher and its account (see vouchers.repository.lock_voucher).
        voucher = voucher_service.lock_voucher(session, token=request.token)
        if voucher is None:
            return _declined(DeclineReason.VOUCHER_NOT_FOUND, requested, [])
        outcome = _evaluate(terminal, voucher, request.items, when.date(), request.allow_partial)
        if outcome.decision is Decision.DECLINED:
            assert outcome.reason is not None  # noqa: S101 - a decline always has a reason
            return _declined(outcome.reason, requested, outcome.lines)
        amount = outcome.approved_minor
        lines = [
            {**line, "atc": item.atc}
            for line, item in zip(outcome.lines, request.items, strict=True)
        ]
        voucher_values: dict[str, Any] = {}
        vtype = voucher_service.voucher_type(voucher.type)
        if vtype.uses_per_day is not None:
            voucher_values.update(last_used_on=when.date(), uses_on_day=outcome.uses)
        if outcome.prescription is not None:
            voucher_values["prescription"] = json.dumps(outcome.prescription)
        if request.capture:
            ledger_service.require_available(voucher, amount, what="wallet")
            hold_id, _ = ledger_service.capture_now(
                session,
                account_id=voucher.account_id,
                voucher_id=voucher.id,
                merchant_id=terminal.merchant_id,
                terminal_id=terminal.terminal_id,
                merchant_account_id=terminal.merchant_account_id,
                amount_minor=amount,
                lines=lines,
                now=when,
            )
            status = _voucher_status_after(voucher, voucher.balance_minor - amount)
            if status != voucher.status:
                voucher_values["status"] = status
        else:
            hold_id = ledger_service.open_hold(
                session,
                account_id=voucher.account_id,
                funds=voucher,
                voucher_id=voucher.id,
                merchant_id=terminal.merchant_id,
                terminal_id=terminal.terminal_id,
                amount_minor=amount,
                lines=lines,
                now=when,
                ttl=timedelta(minutes=get_settings().wallet.hold_ttl_minutes),
            )
        if voucher_values:
            voucher_service.update_voucher(session, voucher.id, voucher_values)
        log.info(
            "voucher_redeemed" if request.capture else "voucher_authorized",
            hold_id=hold_id,
            voucher_id=voucher.id,
            merchant_id=terminal.merchant_id,
            amount_minor=amount,
        )
        return {
            "authorization_id": hold_id,
            "decision": outcome.decision.value,
            "reason": outcome.reason.value if outcome.reason else None,
            "requested_minor": requested,
            "approved_minor": amount,
            "captured_minor": amount if request.capture else 0,
            "status": (HoldStatus.CAPTURED if request.capture else HoldStatus.AUTHORIZED).value,
            "lines": outcome.lines,
        }

    result = ledger_service.idempotent(
        session,
        scope=_scope(terminal),
        key=idempotency_key,
        operation="authorize",
        payload=request.model_dump(mode="json"),
        handler=handler,
    )
    return AuthorizationRead.model_validate(result)


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
    """Can this voucher pay for these items here, and how much: nothing else is disclosed."""
    when = now or utcnow()
    voucher = voucher_service.voucher_by_token(session, request.token)
    if voucher is None:
        return InquiryRead(
            can_pay=False, allowed_minor=0, reason=DeclineReason.VOUCHER_NOT_FOUND.value
        )
    outcome = _evaluate(terminal, voucher, request.items, when.date(), True)
    return InquiryRead(
        can_pay=outcome.approved_minor > 0,
        allowed_minor=outcome.approved_minor,
        reason=outcome.reason.value if outcome.reason else None,
    )


# --- settlement --------------------------------------------------------------------------------


_day_bounds = business_day.day_bounds


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
    session: Session, *, merchant_id: int, day_on: date
) -> tuple[SettlementRead, str]:
    """Issue (record) a merchant's daily statement and render it as CSV: one line per posting."""
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
