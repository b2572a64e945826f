"""Wallet API for operators and auditors; includes the business and citizen routers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from socialcard.core.http import PROBLEM_JSON, PROBLEM_RESPONSES
from socialcard.security.schemas import ApprovalRead
from socialcard.wallet import approvals as wallet_approvals
from socialcard.wallet import service
from socialcard.wallet.deps import (
    IdempotencyKey,
    IdPath,
    KeyKeeper,
    MerchantKey,
    Operator,
    Overseer,
    WalletSession,
)
from socialcard.wallet.funding.schemas import BudgetAllocation, FundingRequest
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.merchants.schemas import (
    MerchantCreate,
    MerchantRead,
    TerminalCreate,
    TerminalCreated,
    TerminalRead,
)
from socialcard.wallet.redemption.router import router as business_router
from socialcard.wallet.schemas import CheckRead, CitizenKeyCreate
from socialcard.wallet.vouchers import service as voucher_service
from socialcard.wallet.vouchers.router import router as citizen_router
from socialcard.wallet.vouchers.schemas import ExpiryResult, VoucherStatRow, VoucherSummaryRow

router = APIRouter()
ops = APIRouter(prefix="/api/v1/wallet", tags=["wallet"], responses=PROBLEM_RESPONSES)
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Conflict", "content": {PROBLEM_JSON: {}}}
}


@ops.post(
    "/merchants",
    response_model=ApprovalRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=_CONFLICT,
)
def create_merchant(body: MerchantCreate, session: WalletSession, actor: Operator) -> ApprovalRead:
    """Request a merchant's onboarding (БИН with check digit, category from the catalog); it is
    registered when a policy owner or an admin approves (`/approvals/{id}/approve`)."""
    return wallet_approvals.request_merchant(session, actor=actor, data=body)


@ops.get("/merchants", response_model=list[MerchantRead])
def list_merchants(session: WalletSession, actor: Overseer) -> list[MerchantRead]:
    """Every merchant with the voucher types its category accepts."""
    return merchant_service.list_merchants(session)


@ops.post(
    "/merchants/{merchant_id}/terminals",
    response_model=TerminalCreated,
    status_code=status.HTTP_201_CREATED,
    responses=_CONFLICT,
)
def create_terminal(
    merchant_id: IdPath, body: TerminalCreate, session: WalletSession, actor: Operator
) -> TerminalCreated:
    """Add a terminal to an onboarded merchant (audited); its key is shown once."""
    return merchant_service.create_terminal(
        session,
        merchant_id=merchant_id,
        code=body.code,
        actor=actor,
        expires_in_days=body.expires_in_days,
    )


@ops.get("/merchants/{merchant_id}/terminals", response_model=list[TerminalRead])
def list_terminals(
    merchant_id: IdPath, session: WalletSession, actor: Overseer
) -> list[TerminalRead]:
    """A merchant's terminals (never their keys)."""
    return merchant_service.list_terminals(session, merchant_id=merchant_id)


@ops.post("/terminals/{terminal_id}/revoke", response_model=TerminalRead)
def revoke_terminal(terminal_id: IdPath, session: WalletSession, actor: KeyKeeper) -> TerminalRead:
    """Revoke a terminal's key (audited): refused at once here, everywhere within the cache
    time (`security.auth_cache_seconds`)."""
    return merchant_service.revoke_terminal(session, terminal_id=terminal_id, actor=actor)


@ops.post(
    "/budgets",
    response_model=ApprovalRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=_CONFLICT,
)
def allocate_budget(
    body: BudgetAllocation, session: WalletSession, actor: Operator, key: IdempotencyKey = None
) -> ApprovalRead:
    """Request a top-up of a program's budget in a region; money moves when a policy owner
    approves it."""
    return wallet_approvals.request_allocation(
        session, actor=actor, allocation=body, idempotency_key=key
    )


@ops.post(
    "/fundings",
    response_model=ApprovalRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=_CONFLICT,
)
def fund(
    body: FundingRequest, session: WalletSession, actor: Operator, key: IdempotencyKey = None
) -> ApprovalRead:
    """Request a payment from a program budget into a new voucher of the citizen, outside a
    decision's payment order; it is paid when a policy owner approves it."""
    return wallet_approvals.request_funding(session, actor=actor, request=body, idempotency_key=key)


@ops.post(
    "/citizen-keys",
    response_model=ApprovalRead,
    status_code=status.HTTP_202_ACCEPTED,
)
def citizen_key(body: CitizenKeyCreate, session: WalletSession, actor: Operator) -> ApprovalRead:
    """Request a citizen key for a person at the office; an admin approves it and receives
    the key once, to hand over."""
    return wallet_approvals.request_citizen_key(session, actor=actor, person_id=body.person_id)


@ops.get("/statistics", response_model=list[VoucherStatRow])
def statistics(session: WalletSession, actor: Overseer) -> list[VoucherStatRow]:
    """Vouchers by type and status: counts, nominal value, value remaining."""
    return voucher_service.statistics(session)


@ops.get("/statistics/by-region", response_model=list[VoucherSummaryRow])
def statistics_by_region(
    session: WalletSession,
    actor: Overseer,
    region_digits: Annotated[int, Query(ge=1, le=9)] = 2,
) -> list[VoucherSummaryRow]:
    """Vouchers by type and region (KATO cut to `region_digits`): issued, activated, redeemed
    and expired, in counts and tiyn (redeemed is captures net of refunds)."""
    return voucher_service.summary(session, region_digits=region_digits)


@ops.get("/check", response_model=CheckRead)
def check(session: WalletSession, actor: Overseer) -> CheckRead:
    """Verify the ledger's invariants."""
    return service.check(session)


@ops.post("/expiry", response_model=ExpiryResult)
def expire(session: WalletSession, actor: Operator) -> ExpiryResult:
    """Expire lapsed holds and vouchers; unspent value returns to its program."""
    return voucher_service.expire_due(session)


# A merchant's own API key (role merchant, bound to it): its terminals, e.g. to revoke a
# stolen till's key at once.
merchant = APIRouter(
    prefix="/api/v1/business/me", tags=["business wallet"], responses=PROBLEM_RESPONSES
)


@merchant.get("/terminals", response_model=list[TerminalRead])
def my_terminals(session: WalletSession, actor: MerchantKey) -> list[TerminalRead]:
    """My terminals (never their keys)."""
    return merchant_service.list_terminals(session, merchant_id=merchant_service.own(actor))


@merchant.post("/terminals/{terminal_id}/revoke", response_model=TerminalRead)
def revoke_my_terminal(
    terminal_id: IdPath, session: WalletSession, actor: MerchantKey
) -> TerminalRead:
    """Revoke one of my terminals' keys (audited)."""
    return merchant_service.revoke_terminal(
        session, terminal_id=terminal_id, actor=actor, merchant_id=merchant_service.own(actor)
    )


router.include_router(ops)
router.include_router(merchant)
router.include_router(business_router)
router.include_router(citizen_router)
