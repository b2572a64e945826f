"""Security errors."""

from __future__ import annotations

from socialcard.core.errors import (
    BusinessRuleViolation,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
)


class MissingApiKey(Unauthenticated):
    code = "api_key_missing"


class InvalidApiKey(Unauthenticated):
    code = "api_key_invalid"


class RoleNotAllowed(Forbidden):
    code = "role_not_allowed"


class UnknownRole(InvalidInput):
    code = "unknown_role"


class InvalidKeyRequest(InvalidInput):
    code = "invalid_key_request"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"


class SourceNotAllowed(Forbidden):
    code = "source_not_allowed"


class AgencyMismatch(Forbidden):
    code = "agency_mismatch"


class ApprovalNotFound(NotFound):
    code = "approval_not_found"


class ApprovalClosed(Conflict):
    code = "approval_closed"


class SameApprover(Forbidden):
    code = "approver_not_independent"


class ApprovalNotAllowed(Forbidden):
    code = "approval_not_allowed"


class CodeRefused(BusinessRuleViolation):
    """A one-time code that is wrong, expired or used up."""

    code = "code_refused"
