"""Proactive tables: campaigns, offers, messages, templates, consents, inbound replies,
assignments, payment orders and operator overrides.

Idempotency lives in the unique constraints: one offer per program, entity and period; one
message per offer and kind; one consent per offer; one assignment per offer; one payment order
per assignment and period. A job that crashes and runs again can only hit these and skip.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from socialcard.core.clock import utcnow
from socialcard.core.db import Base
from socialcard.core.types import BigId, UTCDateTime


class Campaign(Base):
    """A program's campaign for one period; life-event offers join the same campaign."""

    __tablename__ = "proactive_campaign"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[str] = mapped_column(String(60))
    period: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), default="running")
    eligible: Mapped[int] = mapped_column(Integer, default=0)
    offered: Mapped[int] = mapped_column(Integer, default=0)
    skipped_receiving: Mapped[int] = mapped_column(Integer, default=0)
    skipped_pending: Mapped[int] = mapped_column(Integer, default=0)
    skipped_refused: Mapped[int] = mapped_column(Integer, default=0)
    skipped_deceased: Mapped[int] = mapped_column(Integer, default=0)
    eligible_by_region: Mapped[str] = mapped_column(Text, default="{}")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("program_id", "period"),)


class Offer(Base):
    """An offer of a benefit to a recipient, with the decision inputs that produced it."""

    __tablename__ = "proactive_offer"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("proactive_campaign.id"), index=True)
    program_id: Mapped[str] = mapped_column(String(60))
    period: Mapped[str] = mapped_column(String(10))
    entity_type: Mapped[str] = mapped_column(String(10))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    family_id: Mapped[int | None] = mapped_column(BigInteger)
    person_id: Mapped[int] = mapped_column(BigInteger, index=True)
    region_kato: Mapped[str] = mapped_column(String(9))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    program_version: Mapped[str] = mapped_column(String(20))
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    explanation: Mapped[str] = mapped_column(Text, default="{}")
    source: Mapped[str] = mapped_column(String(10), default="batch")
    status: Mapped[str] = mapped_column(String(10), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime)
    remind_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("program_id", "entity_type", "entity_id", "period"),
        Index("ix_proactive_offer_status_deadline_at", "status", "deadline_at"),
        Index("ix_proactive_offer_program_id_entity_id", "program_id", "entity_id"),
    )


class Template(Base):
    """An editable message text for a kind and language (built-in defaults apply otherwise)."""

    __tablename__ = "proactive_template"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(2))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("kind", "language"),)


class Message(Base):
    """An outbox message; `idempotency_key` is unique and is sent to the provider."""

    __tablename__ = "proactive_message"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("proactive_offer.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    person_id: Mapped[int | None] = mapped_column(BigInteger)
    phone: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(2))
    # As stored and shown to operators: a consent link or a one-time code is only a marker
    # here, filled in when the message is handed to the gateway (`secret_ref` says which).
    body: Mapped[str] = mapped_column(Text)
    secret_ref: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(10), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_message_id: Mapped[str | None] = mapped_column(String(80), index=True)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_proactive_message_status", "status"),
        # An SMS reply finds its offer by the number the offer went to.
        Index("ix_proactive_message_phone", "phone"),
    )


class InboundReply(Base):
    """An SMS reply as received; every reply is kept, also those that decide nothing."""

    __tablename__ = "proactive_inbound"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_message_id: Mapped[str] = mapped_column(String(80), unique=True)
    phone: Mapped[str] = mapped_column(String(20), index=True)
    body: Mapped[str] = mapped_column(String(500))
    outcome: Mapped[str] = mapped_column(String(10))
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("proactive_offer.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Consent(Base):
    """The citizen's (or an operator's) answer to an offer: who, when, channel, text shown."""

    __tablename__ = "proactive_consent"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("proactive_offer.id"), unique=True)
    decision: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(10))
    actor: Mapped[str] = mapped_column(String(100))
    text_shown: Mapped[str] = mapped_column(Text)
    reply: Mapped[str | None] = mapped_column(String(500))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Assignment(Base):
    """The assignment decision made on consent."""

    __tablename__ = "proactive_assignment"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("proactive_offer.id"), unique=True)
    program_id: Mapped[str] = mapped_column(String(60))
    program_version: Mapped[str] = mapped_column(String(20))
    entity_type: Mapped[str] = mapped_column(String(10))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    family_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    person_id: Mapped[int] = mapped_column(BigInteger, index=True)
    region_kato: Mapped[str] = mapped_column(String(9))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    recurring: Mapped[bool] = mapped_column(Boolean, default=False)
    from_on: Mapped[date] = mapped_column(Date)
    until_on: Mapped[date | None] = mapped_column(Date)
    legal_basis: Mapped[str] = mapped_column(Text)
    explanation: Mapped[str] = mapped_column(Text)
    destination_kind: Mapped[str] = mapped_column(String(10), default="wallet")
    iban: Mapped[str | None] = mapped_column(String(34))
    status: Mapped[str] = mapped_column(String(10), default="active")
    end_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_proactive_assignment_program_id_entity_id", "program_id", "entity_id"),
    )


class PaymentOrder(Base):
    """A payment to the social wallet or a bank account; the wallet consumes pending ones."""

    __tablename__ = "proactive_payment_order"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("proactive_assignment.id"))
    person_id: Mapped[int] = mapped_column(BigInteger, index=True)
    program_id: Mapped[str] = mapped_column(String(60))
    region_kato: Mapped[str] = mapped_column(String(9))
    period: Mapped[str] = mapped_column(String(10))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    destination_kind: Mapped[str] = mapped_column(String(10))
    iban: Mapped[str | None] = mapped_column(String(34))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    external_reference: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (
        UniqueConstraint("assignment_id", "period"),
        Index("ix_proactive_payment_order_status", "status"),
    )


class Override(Base):
    """An operator's manual decision on an offer, with the written reason."""

    __tablename__ = "proactive_override"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("proactive_offer.id"), index=True)
    action: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    actor_name: Mapped[str] = mapped_column(String(100))
    actor_key_id: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
