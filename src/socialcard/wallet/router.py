"""Wallet API for operators and auditors; includes the business and citizen routers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from socialcard.core.http import PROBLEM_JSON, PROBLEM_RESPONSES
from socialcard.security.schemas import ApiKeyCreated
from socialcard.wallet import service
from socialcard.wallet.deps import IdempotencyKey, IdPath, Operator, Overseer, WalletSession
from socialcard.wallet.funding import service as funding_service
from socialcard.wallet.funding.schemas import (
    BudgetAllocation,
    BudgetRead,
    FundingRequest,
    FundingResult,
)
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.merchants.schemas import (
    MerchantCreate,
    MerchantRead,
    TerminalCreate,
    TerminalCreated,
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
    response_model=MerchantRead,
    status_code=status.HTTP_201_CREATED,
    responses=_CONFLICT,
)
def create_merchant(body: MerchantCreate, session: WalletSession, actor: Operator) -> MerchantRead:
    """Register a merchant (БИН with check digit, category from the catalog)."""
    return merchant_service.create_merchant(session, data=body)


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
    """Add a terminal; its key is shown once."""
    return merchant_service.create_terminal(session, merchant_id=merchant_id, code=body.code)


@ops.post("/budgets", response_model=BudgetRead, responses=_CONFLICT)
def allocate_budget(
    body: BudgetAllocation, session: WalletSession, actor: Operator, key: IdempotencyKey = None
) -> BudgetRead:
    """Allocate money to a program's budget in a region."""
    return funding_service.allocate_budget(session, idempotency_key=key, allocation=body)


@ops.post("/fundings", response_model=FundingResult, responses=_CONFLICT)
def fund(
    body: FundingRequest, session: WalletSession, actor: Operator, key: IdempotencyKey = None
) -> FundingResult:
    """Pay a benefit from the program budget into a new voucher of the citizen."""
    return funding_service.fund_order(session, idempotency_key=key, request=body)


@ops.post("/citizen-keys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
def citizen_key(body: CitizenKeyCreate, session: WalletSession, actor: Operator) -> ApiKeyCreated:
    """Issue a citizen key bound to one person's wallet (shown once)."""
    return service.create_citizen_key(session, person_id=body.person_id)


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


router.include_router(ops)
router.include_router(business_router)
router.include_router(citizen_router)
