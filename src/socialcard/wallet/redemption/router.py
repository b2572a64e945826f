"""The business-wallet API for merchant terminals."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from socialcard.core.errors import InvalidInput, field_error
from socialcard.core.http import PROBLEM_JSON, PROBLEM_RESPONSES
from socialcard.wallet.deps import IdempotencyKey, IdPath, TerminalKey, Transaction
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.redemption import fast, service
from socialcard.wallet.redemption.schemas import (
    AuthorizationRead,
    AuthorizeRequest,
    CaptureRequest,
    InquiryRead,
    InquiryRequest,
    RefundRequest,
)

router = APIRouter(prefix="/api/v1/business", tags=["business wallet"])
_ERRORS = {
    **PROBLEM_RESPONSES,
    409: {
        "description": "Idempotency key reused, or the hold is not open",
        "content": {PROBLEM_JSON: {}},
    },
}


# The body is read by redemption.fast (the hot path), so it is declared here for the docs
# (its nested models' `$defs` are moved into the components by core.http.install_openapi).
_AUTHORIZE_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": AuthorizeRequest.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
            }
        },
    },
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 100},
            "description": "A client-chosen id, unique per request: a retry replays the answer.",
        },
    ],
}


@router.post(
    "/authorizations",
    response_model=AuthorizationRead,
    responses=_ERRORS,
    openapi_extra=_AUTHORIZE_DOC,
)
async def authorize(request: Request, _: TerminalKey) -> Response:
    """Authorize a purchase (approved, partly approved or declined with a reason code).

    With `capture: true` it is a one-step purchase. The app serves this path through
    `redemption.fast.FastPath` ahead of the router; this route is the same code, for the docs.
    """
    answer = await fast.authorize(request.app, request.scope, await request.body())
    return Response(answer, media_type="application/json")


@router.post(
    "/authorizations/{hold_id}/capture", response_model=AuthorizationRead, responses=_ERRORS
)
def capture(
    hold_id: IdPath,
    body: CaptureRequest,
    transaction: Transaction,
    raw: TerminalKey,
    key: IdempotencyKey = None,
) -> AuthorizationRead:
    """Capture all or part of an authorization; the rest is released."""
    with transaction() as session:
        terminal = merchant_service.authenticate_terminal(session, raw_key=raw)
        return service.capture(
            session,
            terminal=terminal,
            idempotency_key=key,
            hold_id=hold_id,
            amount_minor=body.amount_minor,
        )


@router.post("/authorizations/{hold_id}/void", response_model=AuthorizationRead, responses=_ERRORS)
def void(
    hold_id: IdPath, transaction: Transaction, raw: TerminalKey, key: IdempotencyKey = None
) -> AuthorizationRead:
    """Cancel an authorization that was not captured."""
    with transaction() as session:
        terminal = merchant_service.authenticate_terminal(session, raw_key=raw)
        return service.void(session, terminal=terminal, idempotency_key=key, hold_id=hold_id)


@router.post(
    "/authorizations/{hold_id}/refunds", response_model=AuthorizationRead, responses=_ERRORS
)
def refund(
    hold_id: IdPath,
    body: RefundRequest,
    transaction: Transaction,
    raw: TerminalKey,
    key: IdempotencyKey = None,
) -> AuthorizationRead:
    """Return captured value to the citizen's voucher (never cash)."""
    with transaction() as session:
        terminal = merchant_service.authenticate_terminal(session, raw_key=raw)
        return service.refund(
            session,
            terminal=terminal,
            idempotency_key=key,
            hold_id=hold_id,
            amount_minor=body.amount_minor,
        )


@router.post("/balance-inquiry", response_model=InquiryRead, responses=PROBLEM_RESPONSES)
def inquiry(body: InquiryRequest, transaction: Transaction, raw: TerminalKey) -> InquiryRead:
    """Whether the voucher pays for these items here and how much; nothing more."""
    with transaction() as session:
        terminal = merchant_service.authenticate_terminal(session, raw_key=raw)
        return service.inquire(session, terminal=terminal, request=body)


@router.get(
    "/settlements/{day_on}.csv",
    responses={
        **_ERRORS,
        200: {
            "description": "The statement: one line per posting, then the totals",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        409: {
            "description": "The business day has not ended",
            "content": {PROBLEM_JSON: {}},
        },
    },
    response_class=Response,
)
def settlement_csv(
    day_on: Annotated[str, Path(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")],
    transaction: Transaction,
    raw: TerminalKey,
) -> Response:
    """The merchant's statement for a local business day (`wallet.business_timezone`) that has
    ended (409 otherwise).

    One line per posting; the totals equal the ledger, then and later.
    """
    # An ISO date only (pydantic would also read "0" as 1970-01-01).
    try:
        day = date.fromisoformat(day_on)
    except ValueError:
        raise InvalidInput(
            "day_on: not a date", details=[field_error("day_on", "write YYYY-MM-DD")]
        ) from None
    with transaction() as session:
        terminal = merchant_service.authenticate_terminal(session, raw_key=raw)
        _, text = service.issue_settlement(session, merchant_id=terminal.merchant_id, day_on=day)
    return Response(text, media_type="text/csv")
