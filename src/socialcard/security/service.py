"""API keys (issued once, stored as a keyed hash, bound, expiring, revocable), roles, and the
hash-chained audit log of every read of personal data and every credential or money event."""

from __future__ import annotations

import getpass
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.db import add_before_commit
from socialcard.core.errors import InvalidInput, field_error
from socialcard.security import chain, keyring, repository
from socialcard.security.enums import SYSTEM_ROLE, Purpose, Role
from socialcard.security.errors import (
    ApiKeyNotFound,
    InvalidApiKey,
    InvalidKeyRequest,
    RoleNotAllowed,
    UnknownRole,
)
from socialcard.security.models import ApiKey, AuditEvent
from socialcard.security.schemas import (
    AccessRead,
    Actor,
    ApiKeyCreated,
    ApiKeyRead,
    ChainCheck,
)
from socialcard.wallet import business_day

KEY_PREFIX = "sc_"


class _AuthCache:
    """Verified keys by hash: authentication hits every request, a lookup need not."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[str, tuple[float, Actor]] = {}


_auth_cache = _AuthCache()


# --- key hashes -------------------------------------------------------------------------------


def hash_key(raw_key: str) -> str:
    """HMAC-SHA256 (hex) of a key under the current `api_key` keyring key: a stolen table
    cannot be replayed, and no secret written in the source keys it."""
    return keyring.keyset("api_key").current.mac(raw_key.encode()).hex()


def key_hashes(raw_key: str) -> list[str]:
    """The key's hash under every `api_key` keyring key (a key issued before a rotation)."""
    return [k.mac(raw_key.encode()).hex() for k in keyring.keyset("api_key").keys]


def hash_key_id() -> str:
    """The id of the keyring key that hashes new keys."""
    return keyring.keyset("api_key").current.id


def system_actor(name: str | None = None) -> Actor:
    """The actor of a command-line job (no key): the operating-system user who ran it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        user = "unknown"
    return Actor(key_id=None, name=(name or f"cli:{user}")[:80], role=SYSTEM_ROLE)


# --- issuing ----------------------------------------------------------------------------------


def _expiry(expires_in_days: int | None) -> datetime | None:
    return utcnow() + timedelta(days=expires_in_days) if expires_in_days else None


def _check_binding(
    role: str,
    *,
    agency: str | None,
    sources: Sequence[str] | None,
    merchant_id: int | None,
) -> str | None:
    """The bound source list of an agency key; InvalidKeyRequest naming what is wrong."""
    if role == Role.AGENCY:
        from socialcard.registry.ingestion.sources import SOURCES

        if not agency:
            raise InvalidKeyRequest(
                "an agency key names its agency", details=[field_error("agency", "required")]
            )
        if not sources:
            raise InvalidKeyRequest(
                "an agency key names the sources it may push",
                details=[field_error("sources", "required")],
            )
        unknown = sorted(set(sources) - set(SOURCES))
        if unknown:
            raise InvalidKeyRequest(
                f"unknown source(s) {unknown}; the sources are: {', '.join(SOURCES)}",
                details=[field_error("sources", "unknown source")],
            )
        return ",".join(sorted(set(sources)))
    if agency is not None or sources:
        raise InvalidKeyRequest(
            "only an agency key names an agency and sources",
            details=[
                field_error("agency" if agency is not None else "sources", "agency keys only")
            ],
        )
    if role == Role.MERCHANT and merchant_id is None:
        raise InvalidKeyRequest(
            "a merchant key names its merchant", details=[field_error("merchant_id", "required")]
        )
    if role != Role.MERCHANT and merchant_id is not None:
        raise InvalidKeyRequest(
            "only a merchant key names a merchant",
            details=[field_error("merchant_id", "merchant keys only")],
        )
    return None


def create_api_key(
    session: Session,
    *,
    name: str,
    role: str,
    actor: Actor | None = None,
    expires_in_days: int | None = None,
    agency: str | None = None,
    sources: Sequence[str] | None = None,
    merchant_id: int | None = None,
) -> ApiKeyCreated:
    """Issue a key for a client with a role (audited); the raw key is returned once.

    Citizen keys are not issued here: only through the citizen's enrolment or an approved
    request (`issue_citizen_key`).
    """
    if role not in {r.value for r in Role}:
        raise UnknownRole(
            f"unknown role {role!r}; use one of {', '.join(r.value for r in Role)}",
            details=[{"field": "role", "reason": "unknown role"}],
        )
    if role == Role.CITIZEN:
        raise InvalidKeyRequest(
            "citizen keys are issued only by the citizen's enrolment or an approved request",
            details=[field_error("role", "citizen keys are not issued here")],
        )
    bound_sources = _check_binding(role, agency=agency, sources=sources, merchant_id=merchant_id)
    if role == Role.MERCHANT and merchant_id is not None:
        from socialcard.wallet.merchants import service as merchant_service

        merchant_service.get_merchant(session, merchant_id=merchant_id)
    return _issue(
        session,
        actor=actor or system_actor(),
        name=name,
        role=role,
        expires_at=_expiry(expires_in_days),
        agency=agency,
        sources=bound_sources,
        merchant_id=merchant_id,
    )


def issue_citizen_key(
    session: Session, *, person_id: int, actor: Actor, expires_in_days: int | None = 365
) -> ApiKeyCreated:
    """A citizen key bound to one person (callers: enrolment by code, an approved request)."""
    created = _issue(
        session,
        actor=actor,
        name=f"citizen-{person_id}",
        role=Role.CITIZEN.value,
        expires_at=_expiry(expires_in_days),
        person_id=person_id,
    )
    record_access(
        session,
        actor=actor,
        action="security.citizen_key.create",
        subject_type="person",
        subject_ids=[person_id],
        purpose=Purpose.ADMINISTRATION,
        detail=f"api key {created.id}",
    )
    return created


def _issue(
    session: Session,
    *,
    actor: Actor,
    name: str,
    role: str,
    expires_at: datetime | None,
    person_id: int | None = None,
    merchant_id: int | None = None,
    agency: str | None = None,
    sources: str | None = None,
) -> ApiKeyCreated:
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name,
        role=role,
        key_prefix=raw[:10],
        key_hash=hash_key(raw),
        hash_key_id=hash_key_id(),
        expires_at=expires_at,
        person_id=person_id,
        merchant_id=merchant_id,
        agency=agency,
        sources=sources,
    )
    repository.add_key(session, key)
    record_access(
        session,
        actor=actor,
        action="security.api_key.create",
        subject_type="api_key",
        subject_ids=[key.id],
        purpose=Purpose.ADMINISTRATION,
        detail=f"role {role}" + (f", agency {agency}: {sources}" if agency else ""),
    )
    return ApiKeyCreated(id=key.id, name=name, role=role, key=raw, expires_at=expires_at)


def list_api_keys(
    session: Session,
    *,
    role: str | None = None,
    include_revoked: bool = False,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[ApiKeyRead], int]:
    """Keys (never their secrets), oldest first."""
    rows, total = repository.list_keys(
        session, role=role, include_revoked=include_revoked, offset=offset, limit=limit
    )
    return [ApiKeyRead.model_validate(r) for r in rows], total


def revoke_api_key(session: Session, *, key_id: int, actor: Actor) -> ApiKeyRead:
    """Revoke a key now (audited; again is a no-op). This process forgets it at once, the
    others within `security.auth_cache_seconds`."""
    key = repository.key_by_id(session, key_id)
    if key is None:
        raise ApiKeyNotFound(f"no API key {key_id}", details=[field_error("key_id", "unknown")])
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
        record_access(
            session,
            actor=actor,
            action="security.api_key.revoke",
            subject_type="api_key",
            subject_ids=[key.id],
            purpose=Purpose.ADMINISTRATION,
        )
    forget_key(key.id)
    return ApiKeyRead.model_validate(key)


# --- authentication ---------------------------------------------------------------------------


def _usable(actor: Actor) -> bool:
    return actor.expires_at is None or actor.expires_at > utcnow()


def cached_actor(
    *, raw_key: str, request_id: str | None = None, client_request_id: str | None = None
) -> Actor | None:
    """The actor behind a key verified within the cache period, or None (no I/O)."""
    cached = _auth_cache.entries.get(hash_key(raw_key))
    if cached is None or cached[0] <= time.monotonic() or not _usable(cached[1]):
        return None
    return replace(cached[1], request_id=request_id, client_request_id=client_request_id)


def authenticate(
    session: Session,
    *,
    raw_key: str,
    request_id: str | None = None,
    client_request_id: str | None = None,
) -> Actor:
    """The actor behind a raw key; InvalidApiKey when unknown, revoked or expired."""
    actor = cached_actor(
        raw_key=raw_key, request_id=request_id, client_request_id=client_request_id
    )
    if actor is not None:
        return actor
    key = repository.key_by_hashes(session, key_hashes(raw_key))
    if key is None or key.revoked_at is not None:
        raise InvalidApiKey("the API key is unknown or revoked")
    actor = Actor(
        key_id=key.id,
        name=key.name,
        role=key.role,
        person_id=key.person_id,
        merchant_id=key.merchant_id,
        agency=key.agency,
        sources=frozenset(key.sources.split(",")) if key.sources else frozenset(),
        expires_at=key.expires_at,
    )
    if not _usable(actor):
        raise InvalidApiKey("the API key has expired")
    ttl = get_settings().security.auth_cache_seconds
    if ttl > 0:
        with _auth_cache.lock:
            _auth_cache.entries[hash_key(raw_key)] = (time.monotonic() + ttl, actor)
    return replace(actor, request_id=request_id, client_request_id=client_request_id)


def forget_key(key_id: int) -> None:
    """Drop a key from this process's cache (it was revoked here)."""
    with _auth_cache.lock:
        for digest in [d for d, (_, a) in _auth_cache.entries.items() if a.key_id == key_id]:
            del _auth_cache.entries[digest]


def clear_auth_cache() -> None:
    """Forget cached keys (between tests)."""
    with _auth_cache.lock:
        _auth_cache.entries.clear()


def ensure_role(actor: Actor, allowed: Iterable[Role | str]) -> None:
    """RoleNotAllowed unless the actor's role is one of `allowed`. No role is implied: an
    admin issues keys, it does not read personal data or move money."""
    if actor.role not in {str(r) for r in allowed}:
        raise RoleNotAllowed(f"role {actor.role!r} may not do this")


# --- the audit log ----------------------------------------------------------------------------


def record_access(
    session: Session,
    *,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_ids: Iterable[int],
    purpose: Purpose,
    detail: str | None = None,
) -> None:
    """Write one audit row per subject whose data the actor read or changed.

    The rows are chained and inserted when the unit of work commits (see add_before_commit):
    they commit or roll back with what they record.
    """
    ids = list(subject_ids)
    if not ids:
        return
    at = utcnow()
    pending: list[dict[str, object]] = session.info.setdefault("pending_audit", [])
    pending.extend(
        {
            "at": at,
            "actor_key_id": actor.key_id,
            "actor_name": actor.name,
            "actor_role": actor.role,
            "action": action,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "purpose": purpose.value,
            "request_id": actor.request_id,
            "client_request_id": actor.client_request_id,
            "detail": detail[:300] if detail else None,
        }
        for subject_id in ids
    )
    add_before_commit(session, "audit", flush_audit)


def flush_audit(session: Session) -> None:
    """Insert the audit rows recorded in this session (normally run at commit), MAC'd and,
    where the store allows it cheaply, chained (security/chain.py)."""
    rows = session.info.pop("pending_audit", [])
    if rows:
        chain.append(session, rows)


def list_audit_events(
    session: Session,
    *,
    subject_type: str | None,
    subject_id: int | None,
    actor_key_id: int | None = None,
    actor_prefix: str | None = None,
    action_prefix: str | None = None,
    purpose: Purpose | None = None,
    on_or_after: date | None = None,
    on_or_before: date | None = None,
    offset: int,
    limit: int,
) -> tuple[Sequence[AuditEvent], int]:
    """Audit rows, newest first; filtered by subject, acting key, actor (a name's start, e.g.
    `staff:` or `citizen:42`), action (its start), purpose and local calendar days (the
    business time zone's, both ends included)."""
    if on_or_after is not None and on_or_before is not None and on_or_before < on_or_after:
        raise InvalidInput(
            "date_to: before date_from", details=[field_error("date_to", "before date_from")]
        )
    return repository.audit_events(
        session,
        subject_type=subject_type,
        subject_id=subject_id,
        actor_key_id=actor_key_id,
        actor_prefix=actor_prefix or None,
        action_prefix=action_prefix or None,
        purpose=purpose.value if purpose is not None else None,
        at_from=business_day.day_bounds(on_or_after)[0] if on_or_after else None,
        at_before=business_day.day_bounds(on_or_before)[1] if on_or_before else None,
        offset=offset,
        limit=limit,
    )


def access_log(
    session: Session, *, actor: Actor, offset: int, limit: int
) -> tuple[list[AccessRead], int]:
    """Who read or changed the calling citizen's data, newest first (the citizen's own key)."""
    person_id = citizen_person(actor)
    rows, total = repository.audit_events(
        session, subject_type="person", subject_id=person_id, offset=offset, limit=limit
    )
    return [AccessRead.model_validate(r) for r in rows], total


def citizen_person(actor: Actor) -> int:
    """The person a citizen key is bound to (RoleNotAllowed for any other key)."""
    if actor.role != Role.CITIZEN or actor.person_id is None:
        raise RoleNotAllowed("only a citizen key bound to a person may do this")
    return actor.person_id


def person_of_key(session: Session, key_id: int) -> int | None:
    """The person a (citizen) key is bound to, or None."""
    return repository.person_of_key(session, key_id)


def verify_audit_chain(session: Session) -> ChainCheck:
    """Check the audit log's chain: every changed, inserted or deleted row is reported."""
    return chain.verify(session)


def seal_audit(session: Session) -> int:
    """Chain the committed audit rows not chained yet (all of them); returns how many."""
    total = 0
    while sealed := chain.seal_pending(session):
        total += sealed
    return total


def start_audit_sealer() -> chain.Sealer | None:
    """The background sealer of a server process (PostgreSQL; None where commits seal)."""
    interval = get_settings().security.audit_seal_seconds
    if interval <= 0 or get_settings().database_url.startswith("sqlite"):
        return None
    return chain.Sealer(interval).start()
