"""Ledger tables: accounts, postings and their entries, holds, idempotency records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from socialcard.core.clock import utcnow
from socialcard.core.db import Base
from socialcard.core.types import BigId, UTCDateTime


class Account(Base):
    """A ledger account. `balance_minor` is a projection of its entries, checked by `wallet check`.

    Accounts that forbid overdraft keep the projection (`balance_cached`) so that a locked read
    decides a payment. Merchant accounts do not: every redemption credits one, and a cached
    balance there would make all of a merchant's redemptions queue on one row.
    """

    __tablename__ = "wallet_account"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    program_id: Mapped[str | None] = mapped_column(String(80))
    region_kato: Mapped[str | None] = mapped_column(String(9))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("registry_person.id"), index=True)
    benefit_type: Mapped[str | None] = mapped_column(String(30))
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_merchant.id"))
    allow_negative: Mapped[bool] = mapped_column(Boolean, default=False)
    balance_cached: Mapped[bool] = mapped_column(Boolean, default=True)
    balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    held_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Posting(Base):
    """A balanced set of entries; immutable (a correction is a reversal posting)."""

    __tablename__ = "wallet_posting"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_hold.id"), index=True)
    voucher_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_voucher.id"), index=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_merchant.id"))
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_posting.id"), unique=True)
    memo: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_wallet_posting_merchant_id_posted_at", "merchant_id", "posted_at"),)


class Entry(Base):
    """One leg of a posting: a signed amount on one account (debit negative, credit positive)."""

    __tablename__ = "wallet_entry"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    posting_id: Mapped[int] = mapped_column(ForeignKey("wallet_posting.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("wallet_account.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class Hold(Base):
    """An authorization reserving value on a citizen account until captured, voided or expired."""

    __tablename__ = "wallet_hold"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("wallet_account.id"), index=True)
    voucher_id: Mapped[int] = mapped_column(ForeignKey("wallet_voucher.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("wallet_merchant.id"))
    terminal_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_terminal.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    captured_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(12))
    lines: Mapped[str] = mapped_column(Text, default="[]")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdempotencyRecord(Base):
    """A client's idempotency key, the hash of its request and the answer given."""

    __tablename__ = "wallet_idempotency"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(100))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer, default=0)
    response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("uq_wallet_idempotency_scope_key", "scope", "key", unique=True),)
