"""Roles, audit purposes and approval states."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """Who a key speaks for (DESIGN.md); each role sees only its own."""

    ADMIN = "admin"  # issues and revokes keys, approves onboarding; reads no personal data
    POLICY_OWNER = "policy_owner"  # rules, simulations, approves money creation
    OPERATOR = "operator"  # regional office: registry, campaigns, requests money and merchants
    AUDITOR = "auditor"  # reads the audit trail and the ledger
    MERCHANT = "merchant"  # one merchant's own terminals
    AGENCY = "agency"  # pushes its own sources' data
    PAYMENT_PROVIDER = "payment_provider"  # a bank: pays transfers, asks a card's tariffs
    KIOSK = "kiosk"  # a public kiosk (the card domain)
    CITIZEN = "citizen"  # one person's own wallet and access log


# Not a role a key can hold: the audit log's actor for the command line and jobs.
SYSTEM_ROLE = "system"


class Purpose(StrEnum):
    """Why data is read or changed; stated on every read of personal data and kept in the
    audit log."""

    CASE_REVIEW = "case_review"
    CITIZEN_INQUIRY = "citizen_inquiry"
    BENEFIT_ASSIGNMENT = "benefit_assignment"
    DATA_QUALITY = "data_quality"
    AUDIT = "audit"
    CARD_SERVICE = "card_service"
    KIOSK_SESSION = "kiosk_session"
    POLICY_ANALYSIS = "policy_analysis"
    PAYMENT = "payment"
    ADMINISTRATION = "administration"
    SELF_SERVICE = "self_service"


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
