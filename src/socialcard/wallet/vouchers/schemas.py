"""What crosses the API for vouchers and the citizen's wallet."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field, StrictInt


class PrescriptionLine(BaseModel):
    atc: str = Field(min_length=3, max_length=10, description="ATC code, e.g. C09AA02")
    quantity: StrictInt = Field(gt=0, le=10_000)


class VoucherRead(BaseModel):
    """A citizen's voucher, its balance and state (shown to the citizen only)."""

    id: int
    type: str
    title: str
    token: str
    status: str
    period: str
    nominal_minor: int
    balance_minor: int
    available_minor: int
    valid_from: date
    valid_until: date
    activated_at: datetime | None


class BalanceRead(BaseModel):
    benefit_type: str
    title: str
    balance_minor: int
    available_minor: int


class WalletRead(BaseModel):
    person_id: int
    balances: list[BalanceRead]
    vouchers: list[VoucherRead]


class HistoryRow(BaseModel):
    posting_id: int
    kind: str
    posted_at: datetime
    voucher_id: int | None
    amount_minor: int


class ActivationRequest(BaseModel):
    utility_account: str | None = Field(
        default=None, min_length=6, max_length=20, pattern=r"^[0-9]+$"
    )


class VoucherStatRow(BaseModel):
    type: str
    status: str
    vouchers: int
    nominal_minor: int
    remaining_minor: int


class VoucherSummaryRow(BaseModel):
    """One voucher type in one region: how many were issued, activated, redeemed (at least
    in part) and expired, and the tiyn issued, redeemed, returned at expiry and remaining."""

    type: str
    region_kato: str
    issued: int
    activated: int
    redeemed: int
    expired: int
    issued_minor: int
    redeemed_minor: int
    expired_minor: int
    remaining_minor: int


class ExpiryResult(BaseModel):
    holds_expired: int
    vouchers_expired: int
    returned_minor: int
