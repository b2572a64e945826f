"""Errors of the proactive flow."""

from __future__ import annotations

from typing import Any

from socialcard.core.errors import (
    AppError,
    BusinessRuleViolation,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
)


class UnknownProgram(NotFound):
    code = "unknown_program"


class InvalidPeriod(InvalidInput):
    code = "invalid_period"


class OfferNotFound(NotFound):
    code = "offer_not_found"


class CampaignNotFound(NotFound):
    code = "campaign_not_found"


class PaymentOrderNotFound(NotFound):
    code = "payment_order_not_found"


class OfferClosed(Conflict):
    code = "offer_closed"


class OfferLate(Conflict):
    """An answer after the offer's deadline: not recorded (the lapse job may not have run yet).

    Carries the citizen's language and the deadline, so a page can say so in their words."""

    code = "offer_late"
    title = "Answer after the deadline"

    def __init__(
        self,
        message: str,
        *,
        language: str,
        deadline: str,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.language = language
        self.deadline = deadline


class InvalidIban(InvalidInput):
    code = "invalid_iban"


class InvalidLink(Forbidden):
    code = "invalid_link"


class ExpiredLink(InvalidLink):
    code = "expired_link"
    status_code = 410
    title = "Link expired"
    offer_id: int | None = None  # set when the link was genuine: its offer may say more


class BadSignature(Forbidden):
    code = "bad_signature"


class InvalidTemplate(InvalidInput):
    code = "invalid_template"


class ReasonRequired(InvalidInput):
    code = "reason_required"


class PaymentOrderConflict(BusinessRuleViolation):
    code = "payment_order_conflict"


class GatewayNotConfigured(AppError):
    """The configured SMS gateway lacks a setting it needs (its provider key)."""

    code = "gateway_not_configured"
    status_code = 503
    title = "SMS gateway not configured"
