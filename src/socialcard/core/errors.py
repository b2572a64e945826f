"""The error base class every domain raises, and its problem+json rendering."""

from __future__ import annotations

import math
from typing import Any


class AppError(Exception):
    """An expected failure with a stable code and a message safe to show."""

    code: str = "error"
    status_code: int = 400
    title: str = "Bad request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or []
        # Sent with the problem (e.g. Retry-After on 429 and 503).
        self.headers = headers or {}

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """Render as an RFC 9457 problem document."""
        problem: dict[str, Any] = {
            "type": f"https://socialcard.example/problems/{self.code}",
            "title": self.title,
            "status": self.status_code,
            "detail": self.message,
            "code": self.code,
        }
        if instance:
            problem["instance"] = instance
        if self.details:
            problem["errors"] = self.details
        return problem


class InvalidInput(AppError):
    """Input that names a field and the reason it is wrong."""

    code = "invalid_input"
    status_code = 422
    title = "Invalid input"


class NotFound(AppError):
    code = "not_found"
    status_code = 404
    title = "Not found"


class Conflict(AppError):
    code = "conflict"
    status_code = 409
    title = "Conflict"


class BusinessRuleViolation(AppError):
    code = "business_rule_violation"
    status_code = 409
    title = "Business rule violated"


class Forbidden(AppError):
    code = "forbidden"
    status_code = 403
    title = "Forbidden"


class Unauthenticated(AppError):
    code = "unauthenticated"
    status_code = 401
    title = "Unauthenticated"


class PayloadTooLarge(AppError):
    code = "payload_too_large"
    status_code = 413
    title = "Payload too large"


class TooManyRequests(AppError):
    """A rate limit was reached; `Retry-After` says when to try again."""

    code = "rate_limited"
    status_code = 429
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(
            message, code=code, headers={"Retry-After": retry_after_header(retry_after)}
        )


class ServiceUnavailable(AppError):
    """The service is saturated (no database connection free in time); retry shortly."""

    code = "service_unavailable"
    status_code = 503
    title = "Service unavailable"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(
            message, code=code, headers={"Retry-After": retry_after_header(retry_after)}
        )


def retry_after_header(seconds: float) -> str:
    """`Retry-After` in whole seconds, at least 1 (RFC 9110 allows no fractions)."""
    return str(max(1, math.ceil(seconds)))


def field_error(field: str, reason: str, **extra: Any) -> dict[str, Any]:
    """One entry of a problem's `errors` list."""
    return {"field": field, "reason": reason, **extra}
