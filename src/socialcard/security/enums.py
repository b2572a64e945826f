"""Roles and audit purposes."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    POLICY_OWNER = "policy_owner"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    MERCHANT = "merchant"
    AGENCY = "agency"
    KIOSK = "kiosk"
    # An acquirer or card processor asking "this bank card: tariff X?" (card domain).
    PAYMENT_PROVIDER = "payment_provider"
    CITIZEN = "citizen"


class Purpose(StrEnum):
    """Why an operator reads a person's data; stated on every read and kept in the audit log."""

    CASE_REVIEW = "case_review"
    CITIZEN_INQUIRY = "citizen_inquiry"
    BENEFIT_ASSIGNMENT = "benefit_assignment"
    DATA_QUALITY = "data_quality"
    AUDIT = "audit"
    CARD_SERVICE = "card_service"
    KIOSK_SESSION = "kiosk_session"
