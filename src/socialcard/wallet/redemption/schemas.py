"""What crosses the business-wallet API."""

from __future__ import annotations

from pydantic import BaseModel, Field, StrictBool, StrictInt


class ItemIn(BaseModel):
    sku: str = Field(min_length=1, max_length=40)
    category: str = Field(
        min_length=1,
        max_length=40,
        description="meal, medicine, gas, fare, food.socially_significant, food.other, ...",
    )
    # Money, quantities and flags take only their exact JSON type: "3", 3.0 or true is not 3.
    quantity: StrictInt = Field(gt=0, le=10_000)
    amount_minor: StrictInt = Field(ge=0, le=10**10, description="line total in tiyn")
    atc: str | None = Field(default=None, min_length=3, max_length=10)


class AuthorizeRequest(BaseModel):
    token: str = Field(min_length=8, max_length=40, description="voucher or pass token")
    items: list[ItemIn] = Field(min_length=1, max_length=100)
    capture: StrictBool = Field(default=False, description="capture at once (one-step purchase)")
    allow_partial: StrictBool = True


class LineResult(BaseModel):
    sku: str
    approved_quantity: int
    approved_minor: int
    reason: str | None


class AuthorizationRead(BaseModel):
    """The answer to a terminal: what is paid, never the citizen's balance or identity."""

    authorization_id: int | None
    decision: str
    reason: str | None
    requested_minor: int
    approved_minor: int
    captured_minor: int
    refunded_minor: int = 0
    status: str | None
    lines: list[LineResult] = []


class CaptureRequest(BaseModel):
    amount_minor: StrictInt | None = Field(
        default=None, ge=0, le=10**12, description="omit to capture all"
    )


class RefundRequest(BaseModel):
    amount_minor: StrictInt = Field(gt=0, le=10**12)


class InquiryRequest(BaseModel):
    token: str = Field(min_length=8, max_length=40)
    items: list[ItemIn] = Field(min_length=1, max_length=100)


class InquiryRead(BaseModel):
    """Only what the purchase needs: can the voucher pay for these items, yes or no, and how
    much of them its rules allow (never the remaining balance)."""

    can_pay: bool
    allowed_minor: int = Field(
        description="what the voucher's rules allow of these items; paid only if can_pay"
    )
    reason: str | None


class SettlementRead(BaseModel):
    merchant_id: int
    day_on: str
    captured_minor: int
    refunded_minor: int
    net_minor: int
    postings: int
