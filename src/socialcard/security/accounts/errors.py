"""Errors of staff accounts, sessions and sign-in codes."""

from __future__ import annotations

from socialcard.core.errors import Conflict, Forbidden, InvalidInput, Unauthenticated


class BadCredentials(Unauthenticated):
    code = "bad_credentials"


class AccountLocked(Unauthenticated):
    code = "account_locked"


class SessionExpired(Unauthenticated):
    code = "session_expired"


class CsrfMismatch(Forbidden):
    code = "csrf_mismatch"


class StaffExists(Conflict):
    code = "staff_exists"


class WeakPassword(InvalidInput):
    code = "weak_password"


class BadSignInCode(Unauthenticated):
    code = "bad_sign_in_code"


class NoPhone(InvalidInput):
    code = "no_phone"
