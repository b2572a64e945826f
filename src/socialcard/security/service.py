"""API keys (issued once, stored as a keyed hash) and the audit log of personal-data access."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.db import add_before_commit
from socialcard.security import repository
from socialcard.security.enums import Purpose, Role
from socialcard.security.errors import InvalidApiKey, RoleNotAllowed, UnknownRole
from socialcard.security.models import ApiKey, AuditEvent
from socialcard.security.schemas import Actor, ApiKeyCreated

KEY_PREFIX = "sc_"
# Authentication hits every request; a short cache of verified key hashes saves a query each
# time. Revocation takes effect within this many seconds.
_AUTH_CACHE_SECONDS = 30.0
_auth_cache: dict[str, tuple[float, Actor]] = {}


def hash_key(raw_key: str) -> str:
    """HMAC-SHA256 of a key under the server secret: a stolen table cannot be replayed."""
    secret = get_settings().secret_key.get_secret_value().encode()
    return hmac.new(secret, raw_key.encode(), hashlib.sha256).hexdigest()


def create_api_key(session: Session, *, name: str, role: str) -> ApiKeyCreated:
    """Issue a key for a client with a role; the raw key is returned once."""
    if role not in {r.value for r in Role}:
        raise UnknownRole(
            f"unknown role {role!r}; use one of {', '.join(r.value for r in Role)}",
            details=[{"field": "role", "reason": "unknown role"}],
        )
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, role=role, key_prefix=raw[:10], key_hash=hash_key(raw))
    session.add(key)
    session.flush()
    return ApiKeyCreated(id=key.id, name=name, role=role, key=raw)


def cached_actor(*, raw_key: str, request_id: str | None = None) -> Actor | None:
    """The actor behind a key verified within the cache period, or None (no I/O)."""
    cached = _auth_cache.get(hash_key(raw_key))
    if cached is None or cached[0] <= time.monotonic():
        return None
    return replace(cached[1], request_id=request_id)


def authenticate(session: Session, *, raw_key: str, request_id: str | None = None) -> Actor:
    """The actor behind a raw key; InvalidApiKey when unknown or revoked."""
    actor = cached_actor(raw_key=raw_key, request_id=request_id)
    if actor is not None:
        return actor
    digest = hash_key(raw_key)
    key = repository.key_by_hash(session, digest)
    if key is None or key.revoked_at is not None:
        raise InvalidApiKey("the API key is unknown or revoked")
    actor = Actor(key_id=key.id, name=key.name, role=key.role)
    _auth_cache[digest] = (time.monotonic() + _AUTH_CACHE_SECONDS, actor)
    return replace(actor, request_id=request_id)


def clear_auth_cache() -> None:
    """Forget cached keys (after a revocation, and between tests)."""
    _auth_cache.clear()


def ensure_role(actor: Actor, allowed: Sequence[Role]) -> None:
    """RoleNotAllowed unless the actor's role is one of `allowed` (admin is always allowed)."""
    if actor.role != Role.ADMIN and actor.role not in allowed:
        raise RoleNotAllowed(f"role {actor.role!r} may not do this")


def record_access(
    session: Session,
    *,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_ids: Sequence[int],
    purpose: Purpose,
) -> None:
    """Write one audit row per person whose data the actor read or changed."""
    if not subject_ids:
        return
    at = utcnow()
    rows: list[dict[str, object]] = [
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
        }
        for subject_id in subject_ids
    ]
    pending: list[dict[str, object]] = session.info.setdefault("pending_audit", [])
    pending.extend(rows)
    # Written in one multi-row insert when the unit of work commits (see add_before_commit):
    # the audit rows commit or roll back with the read they record.
    add_before_commit(session, "audit", flush_audit)


def flush_audit(session: Session) -> None:
    """Insert the audit rows recorded in this session (normally run at commit)."""
    rows = session.info.pop("pending_audit", [])
    if rows:
        repository.insert_audit_events(session, rows)


def list_audit_events(
    session: Session,
    *,
    subject_type: str | None,
    subject_id: int | None,
    offset: int,
    limit: int,
) -> tuple[Sequence[AuditEvent], int]:
    """Audit rows, newest first."""
    return repository.audit_events(
        session, subject_type=subject_type, subject_id=subject_id, offset=offset, limit=limit
    )
