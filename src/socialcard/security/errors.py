"""Security errors."""

from __future__ import annotations

from socialcard.core.errors import Forbidden, InvalidInput, Unauthenticated


class MissingApiKey(Unauthenticated):
    code = "api_key_missing"


class InvalidApiKey(Unauthenticated):
    code = "api_key_invalid"


class RoleNotAllowed(Forbidden):
    code = "role_not_allowed"


class UnknownRole(InvalidInput):
    code = "unknown_role"
