"""Closed vocabularies of the card domain."""

from __future__ import annotations

from enum import StrEnum


class CardState(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class BatchState(StrEnum):
    """A pass batch's state, mirrored in its status-list entries (0, 2, 1)."""

    VALID = "valid"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class Verdict(StrEnum):
    """What a verifier answers: never more than this."""

    VALID = "valid"
    INVALID = "invalid"
    CANNOT_VERIFY = "cannot_verify"


class LinkKind(StrEnum):
    """How a bank card is known: its payment account reference or a keyed token of its PAN."""

    PAR = "par"
    PAN_TOKEN = "pan_token"  # noqa: S105 - a kind name, not a secret


class ConsentChannel(StrEnum):
    APP = "app"
    KIOSK = "kiosk"
    OFFICE = "office"
    SMS = "sms"
