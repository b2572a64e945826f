"""Security tables: API keys (stored keyed-hashed, bound to what they may touch), the
hash-chained audit log, maker–checker approvals and one-time codes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from socialcard.core.clock import utcnow
from socialcard.core.db import Base
from socialcard.core.types import BigId, UTCDateTime


class ApiKey(Base):
    """A client's API key. Only an HMAC-SHA256 of the key (keyring purpose `api_key`) is kept.

    A key is bound to what its role may touch: a citizen key to one person, a merchant key to
    one merchant, an agency key to its agency name and the sources it may push.
    """

    __tablename__ = "security_api_key"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(20))
    key_prefix: Mapped[str] = mapped_column(String(12))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash_key_id: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("registry_person.id"), index=True)
    merchant_id: Mapped[int | None] = mapped_column(BigInteger)
    agency: Mapped[str | None] = mapped_column(String(40))
    sources: Mapped[str | None] = mapped_column(String(400))  # comma-separated source names


class AuditEvent(Base):
    """Who read or changed whose data, when and why; one row per subject.

    `row_mac` is an HMAC of the row's fields (keyring purpose `audit_chain`, key `key_id`).
    Sealed rows form a chain in `seq` order: `row_hash` is an HMAC over the previous row's hash,
    the seq and the row's MAC (key `chain_key_id`); see security/chain.py for who seals when.
    """

    __tablename__ = "security_audit_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_key_id: Mapped[int | None] = mapped_column(ForeignKey("security_api_key.id"))
    actor_name: Mapped[str] = mapped_column(String(80))
    actor_role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(60))
    subject_type: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[int | None] = mapped_column(BigInteger)
    purpose: Mapped[str] = mapped_column(String(30))
    request_id: Mapped[str | None] = mapped_column(String(40))
    client_request_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(300))
    row_mac: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(24))
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    row_hash: Mapped[str | None] = mapped_column(String(64))
    chain_key_id: Mapped[str | None] = mapped_column(String(24))

    __table_args__ = (
        Index("ix_security_audit_event_subject", "subject_type", "subject_id"),
        Index("ix_security_audit_event_at", "at"),
        # The sealer's work list: the rows not chained yet.
        Index(
            "ix_security_audit_event_unsealed",
            "id",
            postgresql_where=text("seq IS NULL"),
            sqlite_where=text("seq IS NULL"),
        ),
    )


class AuditHead(Base):
    """The chain's last row (one row, id 1): its lock keeps the chain linear across writers,
    and it shows when rows were cut off the end."""

    __tablename__ = "security_audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    row_hash: Mapped[str] = mapped_column(String(64))


class Approval(Base):
    """A maker's request (money creation, merchant onboarding, a citizen key) that a second
    person of another role approves or rejects before it takes effect."""

    __tablename__ = "security_approval"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12), index=True)
    summary: Mapped[str] = mapped_column(String(300))
    payload: Mapped[str] = mapped_column(Text)
    maker_key_id: Mapped[int | None] = mapped_column(ForeignKey("security_api_key.id"))
    maker_name: Mapped[str] = mapped_column(String(80))
    maker_role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checker_key_id: Mapped[int | None] = mapped_column(ForeignKey("security_api_key.id"))
    checker_name: Mapped[str | None] = mapped_column(String(80))
    checker_role: Mapped[str | None] = mapped_column(String(20))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(500))
    result: Mapped[str | None] = mapped_column(Text)


class OneTimeCode(Base):
    """A one-time code sent by SMS to a person's registered phone.

    The code is not stored: it is derived from the row's nonce under a keyring key
    (`key_id`), so neither the table nor the stored SMS body reveals it.
    """

    __tablename__ = "security_one_time_code"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(30))
    subject: Mapped[str] = mapped_column(String(80))
    person_id: Mapped[int] = mapped_column(BigInteger)
    nonce: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(24))
    payload: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_security_one_time_code_subject", "purpose", "subject"),)
