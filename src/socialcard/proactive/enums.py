"""Closed vocabularies of the proactive flow."""

from __future__ import annotations

from enum import StrEnum


class OfferStatus(StrEnum):
    PENDING = "pending"
    AGREED = "agreed"
    REFUSED = "refused"
    LAPSED = "lapsed"
    CANCELLED = "cancelled"


class MessageKind(StrEnum):
    OFFER = "offer"
    REMINDER = "reminder"
    CONFIRMATION = "confirmation"
    REFUSAL = "refusal"
    LAPSED = "lapsed"
    ENDED = "ended"
    HELP = "help"
    SIGN_IN = "sign_in"  # a one-time code for the citizen pages
    CODE = "code"  # a one-time code confirming the bank account given on the consent page
    LATE = "late"  # the reply to an answer that came after the offer's deadline


class MessageStatus(StrEnum):
    """The send-state machine: queued -> sending -> sent -> delivered (or failed); a message
    whose recipient died or whose offer no longer stands is `cancelled`, never sent."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Channel(StrEnum):
    SMS = "sms"
    LINK = "link"
    OPERATOR = "operator"
    SYSTEM = "system"


class ConsentDecision(StrEnum):
    AGREE = "agree"
    REFUSE = "refuse"


class InboundOutcome(StrEnum):
    DECIDED = "decided"
    HELP = "help"
    NO_OFFER = "no_offer"
    LATE = "late"  # an answer after the deadline: refused, with a reply saying so


class AssignmentStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class Destination(StrEnum):
    WALLET = "wallet"
    BANK = "bank"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    CANCELLED = "cancelled"  # never to be paid: the holder of a person benefit (or payee) died


class CampaignSource(StrEnum):
    BATCH = "batch"
    EVENT = "event"
