"""Merchant pages (the business wallet): redeem a voucher by the citizen's code, refund, and the
day's statement (totals from the ledger) with its CSV. Staff sign in per merchant; the page
learns only what the purchase needs (approved or declined, and how much)."""

from __future__ import annotations

import re
import secrets
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from socialcard.core.clock import utcnow
from socialcard.core.deps import DbSession
from socialcard.core.errors import InvalidInput
from socialcard.wallet import business_day
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.redemption import service as redemption_service
from socialcard.wallet.redemption.schemas import AuthorizeRequest, ItemIn
from socialcard.web.deps import Form, MerchantUser
from socialcard.web.render import render

router = APIRouter(include_in_schema=False)
STATEMENT_ROWS = 200
_AMOUNT = re.compile(r"^\d{1,9}([.,]\d{1,2})?$")


def _merchant_id(me: MerchantUser) -> int:
    if me.staff is None or me.staff.merchant_id is None:
        raise InvalidInput("this account has no merchant", details=[])
    return me.staff.merchant_id


def amount_minor(text: str, *, field: str = "amount") -> int:
    """Tenge typed by a person ("1250", "1250.50" or "1250,5") as tiyn; never a float."""
    cleaned = text.strip().replace("\u00a0", "").replace(" ", "")
    if not _AMOUNT.match(cleaned):
        raise InvalidInput(
            f"{field}: a sum in tenge, e.g. 1250.50",
            details=[{"field": field, "reason": "a sum in tenge with at most 2 decimals"}],
        )
    try:
        minor = int(Decimal(cleaned.replace(",", ".")) * 100)
    except InvalidOperation:
        raise InvalidInput(f"{field}: not a number", details=[{"field": field}]) from None
    if minor <= 0:
        raise InvalidInput(f"{field}: must be more than 0", details=[{"field": field}])
    return minor


def _day(text: str | None) -> date:
    if not text:
        return business_day.business_day(utcnow())
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            "day: YYYY-MM-DD", details=[{"field": "day", "reason": "date"}]
        ) from None


@router.get("/merchant")
def counter(request: Request, session: DbSession, me: MerchantUser) -> Response:
    """The redeem form."""
    terminal = merchant_service.web_terminal(session, merchant_id=_merchant_id(me))
    return render(
        request,
        "merchant/counter.html",
        section="counter",
        categories=merchant_service.item_categories(terminal.category),
        form_key=secrets.token_urlsafe(12),
        result=None,
    )


@router.post("/merchant/redeem")
def redeem(request: Request, session: DbSession, me: MerchantUser, form: Form) -> Response:
    """Redeem a voucher by the code the citizen shows (authorize and capture at once)."""
    merchant_id = _merchant_id(me)
    terminal = merchant_service.web_terminal(session, merchant_id=merchant_id)
    token = form.get("code", "").strip()[:40]
    if len(token) < 8:
        raise InvalidInput("code: at least 8 characters", details=[{"field": "code"}])
    minor = amount_minor(form.get("amount", ""))
    category = form.get("category", "")[:40]
    if category not in merchant_service.item_categories(terminal.category):
        raise InvalidInput("category: not sold here", details=[{"field": "category"}])
    # The form's own key: submitting the same form twice replays the first answer.
    key = f"web:{me.staff.id if me.staff else 0}:{form.get('form_key', '')[:40]}"
    answer = redemption_service.authorize(
        session,
        terminal=terminal,
        idempotency_key=key,
        request=AuthorizeRequest(
            token=token,
            items=[ItemIn(sku="counter", category=category, quantity=1, amount_minor=minor)],
            capture=True,
            allow_partial=True,
        ),
    )
    return render(
        request,
        "merchant/counter.html",
        section="counter",
        categories=merchant_service.item_categories(terminal.category),
        form_key=secrets.token_urlsafe(12),
        result=answer,
    )


@router.get("/merchant/statement")
def statement(
    request: Request,
    session: DbSession,
    me: MerchantUser,
    day: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    """The day's statement: each posting, and the totals from the ledger."""
    day_on = _day(day)
    totals, rows = redemption_service.day_statement(
        session, merchant_id=_merchant_id(me), day_on=day_on
    )
    return render(
        request,
        "merchant/statement.html",
        section="statement",
        day=day_on,
        totals=totals,
        # The newest postings; the CSV has them all.
        rows=rows[::-1][:STATEMENT_ROWS],
        more=max(len(rows) - STATEMENT_ROWS, 0),
        refunded=request.query_params.get("refunded"),
    )


@router.get("/merchant/statement.csv")
def statement_csv(
    session: DbSession,
    me: MerchantUser,
    day: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    """The day's statement as CSV (the same file as the business API's settlement)."""
    day_on = _day(day)
    _, text = redemption_service.issue_settlement(
        session, merchant_id=_merchant_id(me), day_on=day_on
    )
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="statement-{day_on}.csv"'},
    )


@router.post("/merchant/refunds")
def refund(request: Request, session: DbSession, me: MerchantUser, form: Form) -> Response:
    """Return part or all of a purchase to the citizen's voucher (never cash)."""
    terminal = merchant_service.web_terminal(session, merchant_id=_merchant_id(me))
    try:
        hold_id = int(form.get("hold_id", ""))
    except ValueError:
        raise InvalidInput("hold_id: a number", details=[{"field": "hold_id"}]) from None
    if not 1 <= hold_id <= 2**62:
        raise InvalidInput("hold_id: out of range", details=[{"field": "hold_id"}])
    minor = amount_minor(form.get("amount", ""))
    key = f"web-refund:{me.staff.id if me.staff else 0}:{form.get('form_key', '')[:40]}"
    redemption_service.refund(
        session, terminal=terminal, idempotency_key=key, hold_id=hold_id, amount_minor=minor
    )
    day = form.get("day", "")[:10]
    return RedirectResponse(f"/merchant/statement?day={day}&refunded={hold_id}", status_code=303)
