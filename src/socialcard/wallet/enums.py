"""Kinds and states shared by the wallet's sub-packages."""

from __future__ import annotations

from enum import StrEnum


class AccountKind(StrEnum):
    """What an account represents."""

    SOURCE = "source"  # the state appropriation a program budget is allocated from
    BUDGET = "budget"  # a program's budget in one region
    CITIZEN = "citizen"  # a citizen's wallet for one benefit type (one per voucher)
    MERCHANT = "merchant"  # what a merchant is owed
    EXPIRED = "expired"  # value of a program that expired unspent


class PostingKind(StrEnum):
    ALLOCATION = "allocation"
    FUNDING = "funding"
    CAPTURE = "capture"
    REFUND = "refund"
    EXPIRY = "expiry"
    REVERSAL = "reversal"


class HoldStatus(StrEnum):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"
    EXPIRED = "expired"


class VoucherStatus(StrEnum):
    CREATED = "created"
    ACTIVATED = "activated"
    PARTLY_REDEEMED = "partly_redeemed"
    REDEEMED = "redeemed"
    EXPIRED = "expired"


class Decision(StrEnum):
    APPROVED = "approved"
    PARTLY_APPROVED = "partly_approved"
    DECLINED = "declined"


class DeclineReason(StrEnum):
    """Stable reason codes a terminal receives; never more than the purchase needs."""

    VOUCHER_NOT_FOUND = "voucher_not_found"
    VOUCHER_NOT_ACTIVATED = "voucher_not_activated"
    VOUCHER_NOT_YET_VALID = "voucher_not_yet_valid"
    VOUCHER_EXPIRED = "voucher_expired"
    VOUCHER_EXHAUSTED = "voucher_exhausted"
    MERCHANT_CATEGORY_NOT_ALLOWED = "merchant_category_not_allowed"
    MERCHANT_NOT_LICENSED = "merchant_not_licensed"
    WRONG_MERCHANT = "wrong_merchant"
    ITEM_NOT_ALLOWED = "item_not_allowed"
    NOT_PRESCRIBED = "not_prescribed"
    NOT_A_SCHOOL_DAY = "not_a_school_day"
    DAILY_LIMIT_REACHED = "daily_limit_reached"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    PARTIAL_COVERAGE = "partial_coverage"  # the voucher pays only a share (a reduced fare)
