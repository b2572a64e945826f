"""Card tables: cards, PINs, status lists, pass batches, linked bank cards, kiosk sessions.

Nothing here identifies a person beyond the card's link to the registry's person id: no PIN
(an argon2id hash of a keyed HMAC), no card number (a keyed HMAC token), no private key.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from socialcard.core.clock import utcnow
from socialcard.core.db import Base
from socialcard.core.types import BigId, UTCDateTime


class Card(Base):
    """One virtual social card per person: its statuses, and its chip identity if any."""

    __tablename__ = "card_card"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("registry_person.id"), unique=True)
    region_kato: Mapped[str] = mapped_column(String(9))
    state: Mapped[str] = mapped_column(String(10), default="active")
    # The status codes held (JSON list), from the rules run of `statuses_period`.
    statuses: Mapped[str] = mapped_column(Text, default="[]")
    statuses_period: Mapped[str] = mapped_column(String(7))
    # The chip card: a public identifier and an HMAC of its key (the key itself is on the chip).
    chip_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    chip_key_hash: Mapped[str | None] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CardPin(Base):
    """A chip card's PIN: argon2id over HMAC(pepper, PIN), and the tries left."""

    __tablename__ = "card_pin"

    card_id: Mapped[int] = mapped_column(ForeignKey("card_card.id"), primary_key=True)
    pin_hash: Mapped[str] = mapped_column(String(200))
    tries_left: Mapped[int] = mapped_column(Integer)
    blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StatusListRow(Base):
    """A Token Status List: packed 2-bit entries, the allocation cursor and the signed token."""

    __tablename__ = "card_status_list"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    # Indexes are handed out in the order of a random permutation of 0..size-1 drawn from this
    # seed, so neighbouring indexes say nothing about who got them or when.
    seed: Mapped[str] = mapped_column(String(64))
    next_position: Mapped[int] = mapped_column(Integer, default=0)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    version: Mapped[int] = mapped_column(Integer, default=0)
    signed_version: Mapped[int] = mapped_column(Integer, default=-1)
    token: Mapped[str | None] = mapped_column(Text)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PassBatch(Base):
    """A batch of single-use pass copies issued together: each copy has its own holder key and
    its own status index (kept here, in copy order); the passes themselves are not kept."""

    __tablename__ = "card_pass_batch"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("card_card.id"))
    list_id: Mapped[int] = mapped_column(ForeignKey("card_status_list.id"))
    indexes: Mapped[str] = mapped_column(Text)
    tariffs: Mapped[str] = mapped_column(Text)
    kid: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(10), default="valid")
    reason: Mapped[str | None] = mapped_column(String(40))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_card_pass_batch_card_state", "card_id", "state"),)


class BankLink(Base):
    """A bank card linked to a card: a keyed token (of its PAR or PAN), never the number."""

    __tablename__ = "card_bank_link"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("card_card.id"))
    kind: Mapped[str] = mapped_column(String(10))
    token: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    consent_notice_version: Mapped[str] = mapped_column(String(20))
    consent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consent_channel: Mapped[str] = mapped_column(String(10))
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    unlinked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_card_bank_link_token", "token", "active"),)


class KioskSession(Base):
    """An open kiosk session: only who, where and when. Deleted at logout or timeout; what it
    showed is assembled per read and never stored."""

    __tablename__ = "card_kiosk_session"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("card_card.id"))
    kiosk_key_id: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
