"""Card errors (each a stable code; none of them is a 5xx)."""

from __future__ import annotations

from socialcard.core.errors import (
    BusinessRuleViolation,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
)


class CardNotFound(NotFound):
    code = "card_not_found"


class CardNotActive(BusinessRuleViolation):
    code = "card_not_active"


class NoStatus(BusinessRuleViolation):
    code = "no_status"


class InvalidHolderKey(InvalidInput):
    code = "invalid_holder_key"


class LinkExists(Conflict):
    code = "bank_card_already_linked"


class LinkNotFound(NotFound):
    code = "bank_card_link_not_found"


class ConsentMissing(InvalidInput):
    code = "consent_missing"


class PinNotSet(BusinessRuleViolation):
    code = "pin_not_set"


class PinWrong(Unauthenticated):
    code = "pin_wrong"

    def __init__(self, message: str, *, tries_left: int) -> None:
        super().__init__(message)
        # How many tries remain before the PIN is blocked (a kiosk page says so).
        self.tries_left = tries_left


class PinLocked(Forbidden):
    code = "pin_locked"


class ChipKeyWrong(Unauthenticated):
    code = "chip_key_wrong"


class KioskSessionNotFound(NotFound):
    code = "kiosk_session_not_found"


class CatalogInvalid(InvalidInput):
    code = "tariff_catalog_invalid"
