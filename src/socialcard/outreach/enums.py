"""Closed vocabularies of outreach."""

from __future__ import annotations

from enum import StrEnum


class CaseOutcome(StrEnum):
    """Where a family's case stands after the invitation (`open` until a worker records one)."""

    OPEN = "open"
    REACHED = "reached"  # the worker spoke with the family
    NOT_REACHED = "not_reached"
    SUPPORTED = "supported"  # support arranged (a benefit applied for, a service given)
    REFERRED = "referred"  # passed to another body (health, education, employment)
    DECLINED = "declined"  # the family declined help
    CLOSED = "closed"  # nothing more to do


class ContactChannel(StrEnum):
    PHONE = "phone"
    VISIT = "visit"
    OFFICE = "office"
    SMS = "sms"
