"""Queries over API keys, the audit log and its chain head, approvals and one-time codes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from socialcard.security.models import ApiKey, Approval, AuditEvent, AuditHead, OneTimeCode

_GENESIS = "0" * 64

# --- keys -------------------------------------------------------------------------------------


def key_by_hashes(session: Session, key_hashes: Sequence[str]) -> ApiKey | None:
    """The key stored under any of these hashes (one per keyring key that may have made it)."""
    return session.scalars(select(ApiKey).where(ApiKey.key_hash.in_(key_hashes))).first()


def key_by_id(session: Session, key_id: int) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def add_key(session: Session, key: ApiKey) -> None:
    session.add(key)
    session.flush()


def list_keys(
    session: Session, *, role: str | None, include_revoked: bool, offset: int, limit: int
) -> tuple[Sequence[ApiKey], int]:
    query = select(ApiKey)
    if role is not None:
        query = query.where(ApiKey.role == role)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(ApiKey.id).offset(offset).limit(limit)).all()
    return rows, total


def person_of_key(session: Session, key_id: int) -> int | None:
    return session.scalar(select(ApiKey.person_id).where(ApiKey.id == key_id))


# --- audit log --------------------------------------------------------------------------------


def audit_events(
    session: Session,
    *,
    subject_type: str | None,
    subject_id: int | None,
    actor_key_id: int | None = None,
    actor_prefix: str | None = None,
    action_prefix: str | None = None,
    purpose: str | None = None,
    at_from: datetime | None = None,
    at_before: datetime | None = None,
    offset: int,
    limit: int,
) -> tuple[Sequence[AuditEvent], int]:
    query = select(AuditEvent)
    if subject_type is not None:
        query = query.where(AuditEvent.subject_type == subject_type)
    if subject_id is not None:
        query = query.where(AuditEvent.subject_id == subject_id)
    if actor_key_id is not None:
        query = query.where(AuditEvent.actor_key_id == actor_key_id)
    if actor_prefix:
        query = query.where(AuditEvent.actor_name.startswith(actor_prefix, autoescape=True))
    if action_prefix:
        query = query.where(AuditEvent.action.startswith(action_prefix, autoescape=True))
    if purpose is not None:
        query = query.where(AuditEvent.purpose == purpose)
    if at_from is not None:
        query = query.where(AuditEvent.at >= at_from)
    if at_before is not None:
        query = query.where(AuditEvent.at < at_before)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(AuditEvent.id.desc()).offset(offset).limit(limit)).all()
    return rows, total


def insert_audit_events(session: Session, rows: list[dict[str, Any]]) -> None:
    # Core, not the ORM's bulk insert: this runs on every read of personal data.
    session.connection().execute(_AUDIT_INSERT, rows)


_AUDIT_INSERT = insert(AuditEvent)


_ADVANCE = (
    update(AuditHead)
    .where(AuditHead.id == 1)
    .values(seq=AuditHead.seq + bindparam("n"))
    .returning(AuditHead.seq, AuditHead.row_hash)
)
_SET_HEAD_HASH = update(AuditHead).where(AuditHead.id == 1).values(row_hash=bindparam("h"))


def advance_audit_head(session: Session, count: int) -> tuple[int, str]:
    """Reserve `count` sequence numbers at the chain's end: (last reserved seq, hash before).

    The UPDATE takes the head row's lock (PostgreSQL; the write lock on SQLite) until the
    transaction ends, and reads the committed head after waiting for it, so no writer chains
    onto a stale hash. (The statements are built once: SQLite runs this on every audited
    request.)
    """
    connection = session.connection()
    row = connection.execute(_ADVANCE, {"n": count}).first()
    if row is None:  # an empty store (or one wiped by tests): the chain starts here
        dialect = session.get_bind().dialect.name
        insert_head = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(AuditHead)
        connection.execute(
            insert_head.values(id=1, seq=0, row_hash=_GENESIS).on_conflict_do_nothing()
        )
        row = connection.execute(_ADVANCE, {"n": count}).one()
    return int(row[0]), str(row[1])


def set_audit_head_hash(session: Session, row_hash: str) -> None:
    session.connection().execute(_SET_HEAD_HASH, {"h": row_hash})


def audit_head(session: Session) -> AuditHead | None:
    return session.get(AuditHead, 1)


_FIELDS = (
    "at",
    "actor_key_id",
    "actor_name",
    "actor_role",
    "action",
    "subject_type",
    "subject_id",
    "purpose",
    "request_id",
    "client_request_id",
    "detail",
)
_CHAIN_COLUMNS = [
    getattr(AuditEvent, name)
    for name in ("id", "seq", "row_mac", "key_id", "prev_hash", "row_hash", "chain_key_id")
] + [getattr(AuditEvent, name) for name in _FIELDS]


def audit_chain_rows(session: Session, chunk: int = 20_000) -> Iterator[Sequence[Any]]:
    """The sealed audit rows in chain order, a chunk at a time (keyset pagination on seq)."""
    after = -(2**62)
    while True:
        rows = session.execute(
            select(*_CHAIN_COLUMNS)
            .where(AuditEvent.seq > after)
            .order_by(AuditEvent.seq)
            .limit(chunk)
        ).all()
        if not rows:
            return
        yield rows
        after = rows[-1].seq


def unsealed_rows_full(session: Session, chunk: int = 20_000) -> Iterator[Sequence[Any]]:
    """The audit rows not sealed yet, with their fields, in id order."""
    after = -(2**62)
    while True:
        rows = session.execute(
            select(*_CHAIN_COLUMNS)
            .where(AuditEvent.seq.is_(None), AuditEvent.id > after)
            .order_by(AuditEvent.id)
            .limit(chunk)
        ).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def unsealed_audit_rows(session: Session, limit: int) -> list[tuple[int, str]]:
    """(id, row MAC) of committed rows not sealed yet, oldest id first."""
    rows = session.execute(
        select(AuditEvent.id, AuditEvent.row_mac)
        .where(AuditEvent.seq.is_(None))
        .order_by(AuditEvent.id)
        .limit(limit)
    )
    return [(int(r[0]), str(r[1])) for r in rows]


_SEAL = (
    update(AuditEvent)
    .where(AuditEvent.id == bindparam("b_id"))
    .values(
        seq=bindparam("seq"),
        prev_hash=bindparam("prev_hash"),
        row_hash=bindparam("row_hash"),
        chain_key_id=bindparam("ck"),
    )
)


def seal_audit_rows(session: Session, updates: list[dict[str, Any]]) -> None:
    session.connection().execute(_SEAL, updates)


def try_chain_lock(session: Session) -> bool:
    """The sealer's lock for this transaction (PostgreSQL: an advisory lock, False when
    another sealer holds it; SQLite: the write lock the head's UPDATE takes)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    # A sealer never waits long on the head row (held by a test's open transaction, say).
    session.execute(text("SET LOCAL lock_timeout = '5s'"))
    return bool(session.scalar(select(func.pg_try_advisory_xact_lock(_CHAIN_LOCK))))


_CHAIN_LOCK = 0x5C_A0D17  # an arbitrary, fixed advisory-lock key for the audit chain


# --- approvals --------------------------------------------------------------------------------


def add_approval(session: Session, approval: Approval) -> None:
    session.add(approval)
    session.flush()


def approval_for_update(session: Session, approval_id: int) -> Approval | None:
    # Row lock: two checkers approving the same request at once must not both execute it.
    return session.scalars(
        select(Approval).where(Approval.id == approval_id).with_for_update()
    ).first()


def approval_by_id(session: Session, approval_id: int) -> Approval | None:
    return session.get(Approval, approval_id)


def approvals(
    session: Session,
    *,
    status: str | None,
    kind: str | None,
    offset: int,
    limit: int,
    now: datetime,
) -> tuple[Sequence[Approval], int]:
    query = select(Approval)
    # An open request past its time is expired, though its row still says pending.
    if status == "pending":
        query = query.where(Approval.status == "pending", Approval.expires_at > now)
    elif status == "expired":
        query = query.where(Approval.status == "pending", Approval.expires_at <= now)
    elif status is not None:
        query = query.where(Approval.status == status)
    if kind is not None:
        query = query.where(Approval.kind == kind)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Approval.id.desc()).offset(offset).limit(limit)).all()
    return rows, total


# --- one-time codes ---------------------------------------------------------------------------


def add_code(session: Session, code: OneTimeCode) -> None:
    session.add(code)
    session.flush()


def open_code(session: Session, *, purpose: str, subject: str) -> OneTimeCode | None:
    """The newest unused code of a subject, locked (attempts are counted one at a time)."""
    return session.scalars(
        select(OneTimeCode)
        .where(
            OneTimeCode.purpose == purpose,
            OneTimeCode.subject == subject,
            OneTimeCode.consumed_at.is_(None),
        )
        .order_by(OneTimeCode.id.desc())
        .limit(1)
        .with_for_update()
    ).first()


def close_codes(session: Session, *, purpose: str, subject: str, at: datetime) -> None:
    session.execute(
        update(OneTimeCode)
        .where(
            OneTimeCode.purpose == purpose,
            OneTimeCode.subject == subject,
            OneTimeCode.consumed_at.is_(None),
        )
        .values(consumed_at=at)
    )


def code_by_id(session: Session, code_id: int) -> OneTimeCode | None:
    return session.get(OneTimeCode, code_id)
