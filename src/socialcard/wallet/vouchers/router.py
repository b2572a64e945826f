"""The citizen's wallet API: balances, vouchers, history, activation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from socialcard.core.http import PROBLEM_JSON, PROBLEM_RESPONSES
from socialcard.wallet.deps import Citizen, IdPath, WalletSession
from socialcard.wallet.vouchers import service
from socialcard.wallet.vouchers.schemas import (
    ActivationRequest,
    HistoryRow,
    VoucherRead,
    WalletRead,
)

router = APIRouter(prefix="/api/v1/wallet/me", tags=["citizen wallet"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=WalletRead)
def my_wallet(session: WalletSession, actor: Citizen) -> WalletRead:
    """My balances per benefit type and my vouchers."""
    return service.citizen_wallet(session, person_id=service.citizen_person(actor), actor=actor)


@router.get("/history", response_model=list[HistoryRow])
def my_history(
    session: WalletSession,
    actor: Citizen,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[HistoryRow]:
    """Every movement on my wallet, newest first."""
    return service.citizen_history(
        session, person_id=service.citizen_person(actor), limit=limit, actor=actor
    )


@router.post(
    "/vouchers/{voucher_id}/activate",
    response_model=VoucherRead,
    responses={
        409: {"description": "Outside the activation window", "content": {PROBLEM_JSON: {}}}
    },
)
def activate(
    voucher_id: IdPath, body: ActivationRequest, session: WalletSession, actor: Citizen
) -> VoucherRead:
    """Activate my voucher (gas: enter the utility account number, from the 7th to the 29th)."""
    return service.activate(
        session,
        person_id=service.citizen_person(actor),
        voucher_id=voucher_id,
        utility_account=body.utility_account,
    )
