"""Wallet errors (each a stable code; none of them is a 5xx)."""

from __future__ import annotations

from socialcard.core.errors import (
    BusinessRuleViolation,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
)


class UnbalancedPosting(InvalidInput):
    code = "posting_unbalanced"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class IdempotencyKeyMissing(InvalidInput):
    code = "idempotency_key_missing"


class InsufficientFunds(BusinessRuleViolation):
    code = "insufficient_funds"


class AccountNotFound(NotFound):
    code = "account_not_found"


class HoldNotFound(NotFound):
    code = "hold_not_found"


class BusinessDayOpen(BusinessRuleViolation):
    code = "business_day_not_ended"


class HoldNotOpen(BusinessRuleViolation):
    code = "hold_not_open"


class CaptureTooLarge(BusinessRuleViolation):
    code = "capture_exceeds_hold"


class RefundTooLarge(BusinessRuleViolation):
    code = "refund_exceeds_capture"


class VoucherNotFound(NotFound):
    code = "voucher_not_found"


class UnknownVoucherType(InvalidInput):
    code = "voucher_type_unknown"


class ActivationRefused(BusinessRuleViolation):
    code = "activation_refused"


class MerchantNotFound(NotFound):
    code = "merchant_not_found"


class InvalidBin(InvalidInput):
    code = "bin_invalid"


class DuplicateMerchant(Conflict):
    code = "merchant_exists"


class UnknownCategory(InvalidInput):
    code = "merchant_category_unknown"


class InvalidTerminalKey(Unauthenticated):
    code = "terminal_key_invalid"


class TerminalNotFound(NotFound):
    code = "terminal_not_found"


class MissingTerminalKey(Unauthenticated):
    code = "terminal_key_missing"


class NotYourWallet(Forbidden):
    code = "citizen_key_unbound"


class PersonNotFound(NotFound):
    code = "person_not_found"
