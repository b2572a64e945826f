"""Staff accounts with argon2id passwords, server-side browser sessions with an idle timeout
and a CSRF token, and one-time sign-in codes for citizens sent by SMS."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.errors import field_error
from socialcard.registry import service as registry_service
from socialcard.security import service as security_service
from socialcard.security.accounts import repository
from socialcard.security.accounts.errors import (
    AccountLocked,
    BadCredentials,
    BadSignInCode,
    CsrfMismatch,
    SessionExpired,
    StaffExists,
    WeakPassword,
)
from socialcard.security.accounts.models import SignInCode, StaffAccount, WebSession
from socialcard.security.enums import Role
from socialcard.security.errors import UnknownRole
from socialcard.security.schemas import Actor

# argon2id (the library's default type) with its default cost: about 50 ms per check here.
_hasher = PasswordHasher()
# Compared against when the username is unknown, so a wrong name costs what a wrong password does.
_DUMMY_HASH = _hasher.hash("not-a-password")

STAFF_ROLES = (Role.ADMIN, Role.POLICY_OWNER, Role.OPERATOR, Role.AUDITOR, Role.MERCHANT)
MIN_PASSWORD = 12
MAX_FAILURES = 5
LOCK_MINUTES = 15
STAFF_IDLE = timedelta(minutes=20)
CITIZEN_IDLE = timedelta(minutes=10)
# last_seen_at is written at most this often: a page view should not always be a write.
_TOUCH_EVERY = timedelta(seconds=60)
CODE_TTL = timedelta(minutes=5)
CODE_ATTEMPTS = 5
CODES_PER_HOUR = 5


@dataclass(frozen=True, slots=True)
class StaffRead:
    """A staff account as the pages show it (never the hash)."""

    id: int
    username: str
    display_name: str
    role: str
    merchant_id: int | None
    language: str
    disabled: bool


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who a browser session belongs to."""

    session_id: int
    kind: str
    csrf_token: str
    staff: StaffRead | None
    person_id: int | None

    @property
    def role(self) -> str:
        return self.staff.role if self.staff else Role.CITIZEN.value

    def actor(self, request_id: str | None = None) -> Actor:
        """The actor recorded in the audit log for what this session reads."""
        if self.staff is not None:
            return Actor(
                key_id=None,
                name=f"staff:{self.staff.username}",
                role=self.staff.role,
                request_id=request_id,
            )
        return Actor(
            key_id=None, name=f"citizen:{self.person_id}", role="citizen", request_id=request_id
        )


def _read(account: StaffAccount) -> StaffRead:
    return StaffRead(
        id=account.id,
        username=account.username,
        display_name=account.display_name,
        role=account.role,
        merchant_id=account.merchant_id,
        language=account.language,
        disabled=account.disabled_at is not None,
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password(password: str) -> None:
    """WeakPassword unless the password is at least 12 characters and not all one class."""
    reason = None
    if len(password) < MIN_PASSWORD:
        reason = f"at least {MIN_PASSWORD} characters"
    elif len(password) > 256:
        reason = "at most 256 characters"
    elif password.isdigit() or password.isalpha():
        reason = "mix letters with digits or signs"
    if reason:
        raise WeakPassword(f"password: {reason}", details=[field_error("password", reason)])


def create_staff(
    session: Session,
    *,
    username: str,
    display_name: str,
    role: str,
    password: str,
    merchant_id: int | None = None,
    language: str = "ru",
) -> StaffRead:
    """Create a staff account; the password is kept only as an argon2id hash."""
    username = username.strip().lower()
    if (
        not username
        or len(username) > 60
        or not username.replace(".", "").replace("-", "").replace("_", "").isalnum()
    ):
        raise WeakPassword(
            "username: letters, digits, '.', '-' or '_', at most 60",
            code="invalid_username",
            details=[field_error("username", "letters, digits, '.', '-' or '_'")],
        )
    if role not in {r.value for r in STAFF_ROLES}:
        allowed = ", ".join(r.value for r in STAFF_ROLES)
        raise UnknownRole(
            f"role must be one of {allowed}", details=[field_error("role", "unknown role")]
        )
    if role == Role.MERCHANT.value and merchant_id is None:
        raise WeakPassword(
            "merchant staff need a merchant",
            code="merchant_required",
            details=[field_error("merchant_id", "required for the merchant role")],
        )
    check_password(password)
    account = StaffAccount(
        username=username,
        display_name=display_name.strip()[:120] or username,
        role=role,
        merchant_id=merchant_id if role == Role.MERCHANT.value else None,
        password_hash=_hasher.hash(password),
        language=language if language in ("kk", "ru", "en") else "ru",
        failed_attempts=0,
    )
    session.add(account)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise StaffExists(
            f"staff {username!r} exists", details=[field_error("username", "exists")]
        ) from None
    return _read(account)


def list_staff(session: Session) -> list[StaffRead]:
    """Every staff account, by username."""
    return [_read(a) for a in repository.list_staff(session)]


def set_disabled(session: Session, *, staff_id: int, disabled: bool) -> StaffRead:
    """Disable (or enable again) an account; its sessions end at their next request."""
    account = repository.staff_by_id(session, staff_id)
    if account is None:
        raise BadCredentials("no such staff account")
    account.disabled_at = utcnow() if disabled else None
    session.flush()
    return _read(account)


def generate_password() -> str:
    """A random password that passes check_password (shown once by the CLI and the demo)."""
    return secrets.token_urlsafe(15) + "-7"


def _new_session(
    session: Session, *, kind: str, staff_id: int | None, person_id: int | None
) -> tuple[str, SignedIn]:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = WebSession(
        token_hash=_token_hash(token),
        kind=kind,
        staff_id=staff_id,
        person_id=person_id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
    )
    session.add(row)
    session.flush()
    staff = repository.staff_by_id(session, staff_id) if staff_id is not None else None
    return token, SignedIn(
        session_id=row.id,
        kind=kind,
        csrf_token=row.csrf_token,
        staff=_read(staff) if staff else None,
        person_id=person_id,
    )


def sign_in_staff(session: Session, *, username: str, password: str) -> tuple[str, SignedIn]:
    """Check a password and open a session: (the cookie's token, who signed in).

    Five wrong passwords lock the account for 15 minutes; the answer never says whether the
    username exists.
    """
    account = repository.staff_by_username(session, username.strip().lower())
    now = utcnow()
    if account is None or account.disabled_at is not None:
        _verify(_DUMMY_HASH, password)
        raise BadCredentials("wrong username or password")
    if account.locked_until is not None and account.locked_until > now:
        raise AccountLocked("too many wrong passwords; try again later")
    if not _verify(account.password_hash, password):
        account.failed_attempts += 1
        if account.failed_attempts >= MAX_FAILURES:
            account.locked_until = now + timedelta(minutes=LOCK_MINUTES)
            account.failed_attempts = 0
        session.flush()
        raise BadCredentials("wrong username or password")
    account.failed_attempts = 0
    account.locked_until = None
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    return _new_session(session, kind="staff", staff_id=account.id, person_id=None)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def resolve(session: Session, *, token: str) -> SignedIn:
    """The live session behind a cookie; SessionExpired when unknown, ended or idle too long."""
    row = repository.session_by_hash(session, _token_hash(token))
    now = utcnow()
    if row is None or row.ended_at is not None:
        raise SessionExpired("please sign in")
    idle = STAFF_IDLE if row.kind == "staff" else CITIZEN_IDLE
    if now - row.last_seen_at > idle:
        row.ended_at = now
        session.flush()
        raise SessionExpired("the session ended after a period without activity")
    staff = None
    if row.staff_id is not None:
        account = repository.staff_by_id(session, row.staff_id)
        if account is None or account.disabled_at is not None:
            raise SessionExpired("please sign in")
        staff = _read(account)
    if now - row.last_seen_at > _TOUCH_EVERY:
        repository.touch_session(session, row.id, now)
    return SignedIn(
        session_id=row.id,
        kind=row.kind,
        csrf_token=row.csrf_token,
        staff=staff,
        person_id=row.person_id,
    )


def sign_out(session: Session, *, token: str) -> None:
    """End the session behind a cookie (nothing happens for an unknown one)."""
    row = repository.session_by_hash(session, _token_hash(token))
    if row is not None and row.ended_at is None:
        row.ended_at = utcnow()
        session.flush()


def check_csrf(signed_in: SignedIn | None, *, expected: str | None, given: str | None) -> None:
    """CsrfMismatch unless the form's token equals the session's (or the pre-session cookie's)."""
    reference = signed_in.csrf_token if signed_in is not None else expected
    if not reference or not given or not hmac.compare_digest(reference, given):
        raise CsrfMismatch("the form has expired; reload the page and try again")


def ensure_role(signed_in: SignedIn, roles: Sequence[Role]) -> None:
    """RoleNotAllowed unless the session's role is one of `roles` (admin is always allowed)."""
    security_service.ensure_role(signed_in.actor(), roles)


# --- citizens: one-time codes by SMS ---------------------------------------------------------


def _code_hash(person_id: int, code: str) -> str:
    return hmac.new(
        security_service.hash_key("sign-in-code").encode(),
        f"{person_id}:{code}".encode(),
        hashlib.sha256,
    ).hexdigest()


def request_code(
    session: Session,
    *,
    national_id: str,
    send: Callable[[int, str, str, str], None],
) -> int | None:
    """Make a one-time code for the person with this national id and hand it to
    `send(person_id, phone, language, code)`; returns the person id, or None when nobody with a
    phone has this id (the caller answers the same either way, so ids cannot be probed).

    At most five codes an hour per person.
    """
    person_id = registry_service.person_id_by_national_id(session, national_id)
    if person_id is None:
        return None
    contact = registry_service.contacts(session, [person_id]).get(person_id)
    if contact is None or not contact.phone or contact.death_on is not None:
        return None
    now = utcnow()
    if repository.codes_since(session, person_id, now - timedelta(hours=1)) >= CODES_PER_HOUR:
        return person_id
    code = f"{secrets.randbelow(1_000_000):06d}"
    session.add(
        SignInCode(
            person_id=person_id,
            code_hash=_code_hash(person_id, code),
            created_at=now,
            expires_at=now + CODE_TTL,
            attempts=0,
        )
    )
    session.flush()
    send(person_id, contact.phone, contact.language, code)
    return person_id


def sign_in_citizen(session: Session, *, national_id: str, code: str) -> tuple[str, SignedIn]:
    """Check a one-time code and open a citizen session; five wrong tries spend the code."""
    person_id = registry_service.person_id_by_national_id(session, national_id)
    row = repository.latest_code(session, person_id) if person_id is not None else None
    now = utcnow()
    if row is None or person_id is None or row.expires_at <= now or row.attempts >= CODE_ATTEMPTS:
        raise BadSignInCode("the code is wrong or has expired; ask for a new one")
    if not hmac.compare_digest(row.code_hash, _code_hash(person_id, code.strip())):
        row.attempts += 1
        session.flush()
        raise BadSignInCode("the code is wrong or has expired; ask for a new one")
    row.used_at = now
    return _new_session(session, kind="citizen", staff_id=None, person_id=person_id)


def ensure_staff(
    session: Session,
    *,
    username: str,
    role: str,
    display_name: str,
    merchant_id: int | None = None,
) -> str:
    """Create the account, or give an existing one a new password; returns the password
    (generated, to be shown once). For the demo, which may run again on the same store."""
    password = generate_password()
    account = repository.staff_by_username(session, username)
    if account is None:
        create_staff(
            session,
            username=username,
            display_name=display_name,
            role=role,
            password=password,
            merchant_id=merchant_id,
        )
        return password
    account.password_hash = _hasher.hash(password)
    account.disabled_at = None
    account.locked_until = None
    account.failed_attempts = 0
    session.flush()
    return password
