"""One-time codes sent by SMS to a person's registered phone (confirming a bank account,
enrolling a citizen key).

A code is six digits derived from the row's random nonce under the keyring's `one_time_code`
key: the table holds no code and no hash of one, and the outbox row that carries it holds only
a marker (the SMS text is completed when it is handed to the gateway). A code expires after
`security.code_ttl_minutes`, is used once, and dies after `security.code_max_attempts` wrong
tries; a new code for the same subject replaces the old one.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.security import keyring, repository
from socialcard.security.models import OneTimeCode

_PURPOSE = "one_time_code"


def _derive(row: OneTimeCode) -> str:
    key = keyring.keyset(_PURPOSE).key(row.key_id)
    if key is None:  # the key was retired: the code can no longer be made or checked
        return ""
    mac = key.mac(f"{row.id}:{row.nonce}:{row.purpose}:{row.subject}".encode())
    return f"{int.from_bytes(mac[:8], 'big') % 1_000_000:06d}"


def issue(
    session: Session,
    *,
    purpose: str,
    subject: str,
    person_id: int,
    payload: dict[str, Any] | None = None,
) -> int:
    """A new code for a subject (earlier open ones end); returns its id for the SMS."""
    now = utcnow()
    repository.close_codes(session, purpose=purpose, subject=subject, at=now)
    row = OneTimeCode(
        purpose=purpose,
        subject=subject,
        person_id=person_id,
        nonce=secrets.token_hex(16),
        key_id=keyring.keyset(_PURPOSE).current.id,
        payload=json.dumps(payload) if payload is not None else None,
        created_at=now,
        expires_at=now + timedelta(minutes=get_settings().security.code_ttl_minutes),
        attempts=0,
    )
    repository.add_code(session, row)
    return row.id


def code_text(session: Session, *, code_id: int) -> str:
    """The digits of a code, for the SMS that carries it (the gateway's sender only)."""
    row = repository.code_by_id(session, code_id)
    return _derive(row) if row is not None else ""


@dataclass(frozen=True)
class CodeCheck:
    """The outcome of entering a code: `reason` is None when it was right."""

    reason: str | None  # "wrong", "expired", "exhausted", "none"
    person_id: int | None = None
    payload: dict[str, Any] | None = None
    attempts_left: int = 0


def check(session: Session, *, purpose: str, subject: str, code: str) -> CodeCheck:
    """Check a code entered for a subject. A wrong try is counted in the caller's transaction,
    which must commit it: this returns the outcome rather than raising."""
    row = repository.open_code(session, purpose=purpose, subject=subject)
    if row is None:
        return CodeCheck("none")
    now = utcnow()
    limit = get_settings().security.code_max_attempts
    if row.expires_at <= now:
        row.consumed_at = now
        session.flush()
        return CodeCheck("expired")
    expected = _derive(row)
    entered = "".join(ch for ch in code if ch.isascii() and ch.isdigit())
    if expected and hmac.compare_digest(expected, entered):
        row.consumed_at = now
        session.flush()
        payload = json.loads(row.payload) if row.payload else None
        return CodeCheck(None, person_id=row.person_id, payload=payload)
    row.attempts += 1
    if row.attempts >= limit:
        row.consumed_at = now
        session.flush()
        return CodeCheck("exhausted")
    session.flush()
    return CodeCheck("wrong", attempts_left=limit - row.attempts)
