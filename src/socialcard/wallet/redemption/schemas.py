"""What crosses the business-wallet API."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ItemIn(BaseModel):
    sku: str = Field(min_length=1, max_length=40)
    category: str = Field(
        min_length=1,
        max_length=40,
        description="meal, medicine, gas, fare, food.socially_significant, food.other, ...",
    )
    quantity: int = Field(gt=0, le=10_000)
    amount_minor: int = Field(ge=0, le=10**10, description="line total in tiyn")
    atc: str | None = Field(default=None, min_length=3, max_length=10)


class AuthorizeRequest(BaseModel):
    token: str = Field(min_length=8, max_length=40, description="voucher or pass token")
    items: list[ItemIn] = Field(min_length=1, max_length=100)
    capture: bool = Field(default=False, description="capture at once (one-step purchase)")
    allow_partial: bool = True


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
    amount_minor: int | None = Field(default=None, ge=0, description="omit to capture all")


class RefundRequest(BaseModel):
    amount_minor: int = Field(gt=0)


class InquiryRequest(BaseModel):
    token: str = Field(min_length=8, max_length=40)
    items: list[ItemIn] = Field(min_length=1, max_length=100)


class InquiryRead(BaseModel):
    """Only what the purchase needs: can the voucher pay, and how much of it."""

    can_pay: bool
    allowed_minor: int
    reason: str | None


class SettlementRead(BaseModel):
    merchant_id: int
    day_on: str
    captured_minor: int
    refunded_minor: int
    net_minor: int
    postings: int
