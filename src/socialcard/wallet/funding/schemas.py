"""What crosses the API for budgets and funding."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field, StrictInt

from socialcard.wallet.vouchers.schemas import PrescriptionLine

PERIOD_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


class BudgetAllocation(BaseModel):
    program_id: str = Field(min_length=1, max_length=80)
    region_kato: str = Field(min_length=9, max_length=9, pattern=r"^[0-9]{9}$")
    amount_minor: StrictInt = Field(gt=0, le=10**15)


class BudgetRead(BaseModel):
    program_id: str
    region_kato: str
    balance_minor: int
    posting_id: int | None = None


class DecisionRef(BaseModel):
    """The decision a payment comes from: a stored rules decision (run, program, period,
    entity) or a payment order's assignment (no run)."""

    run_id: StrictInt | None = Field(default=None, gt=0, le=2**62)
    program_id: str = Field(min_length=1, max_length=80)
    period: str = Field(pattern=PERIOD_PATTERN, description="YYYY-MM")
    entity_type: Literal["family", "person"]
    entity_id: StrictInt = Field(ge=-(2**62), le=2**62)  # a person without a family: minus its id
    # The rules that valued the payment: the program's version (its effective date) and the
    # rule pack's hash, kept on the voucher so its value can be explained later.
    rule_version: str | None = Field(default=None, max_length=20)
    pack_hash: str | None = Field(default=None, max_length=64)


class FundingRequest(BaseModel):
    """One payment into a citizen's wallet (a payment order of a decision)."""

    person_id: StrictInt = Field(gt=0, le=2**62)
    program_id: str = Field(min_length=1, max_length=80)
    region_kato: str = Field(min_length=9, max_length=9, pattern=r"^[0-9]{9}$")
    amount_minor: StrictInt = Field(gt=0, le=10**12)
    benefit_type: str = Field(min_length=1, max_length=30)
    period: str = Field(pattern=PERIOD_PATTERN, description="YYYY-MM")
    valid_until: date | None = None
    bound_merchant_id: StrictInt | None = Field(default=None, gt=0, le=2**62)
    fare_category: str | None = Field(default=None, max_length=30)
    prescription: list[PrescriptionLine] | None = None
    source: DecisionRef | None = None


class FundingResult(BaseModel):
    voucher_id: int
    account_id: int
    posting_id: int
    amount_minor: int
    benefit_type: str
    status: str


class FundingOrder(FundingRequest):
    """A funding request with its idempotency key (files and the payment-order adapter)."""

    idempotency_key: str = Field(min_length=1, max_length=100)
