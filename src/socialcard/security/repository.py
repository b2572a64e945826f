"""Queries over API keys and the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from socialcard.security.models import ApiKey, AuditEvent


def key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()


def audit_events(
    session: Session,
    *,
    subject_type: str | None,
    subject_id: int | None,
    offset: int,
    limit: int,
) -> tuple[Sequence[AuditEvent], int]:
    query = select(AuditEvent)
    if subject_type is not None:
        query = query.where(AuditEvent.subject_type == subject_type)
    if subject_id is not None:
        query = query.where(AuditEvent.subject_id == subject_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(AuditEvent.id.desc()).offset(offset).limit(limit)).all()
    return rows, total


def insert_audit_events(session: Session, rows: list[dict[str, Any]]) -> None:
    # Core, not the ORM's bulk insert: this runs on every read of personal data.
    session.connection().execute(_AUDIT_INSERT, rows)


_AUDIT_INSERT = insert(AuditEvent)
