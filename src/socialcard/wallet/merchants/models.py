"""Merchant tables: merchants, terminals (keys stored keyed-hashed), settlement statements."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from socialcard.core.clock import utcnow
from socialcard.core.db import Base
from socialcard.core.types import BigId, UTCDateTime


class Merchant(Base):
    """A business that accepts vouchers (a «бизнес-кошелёк»)."""

    __tablename__ = "wallet_merchant"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bin: Mapped[str] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(30))
    region_kato: Mapped[str | None] = mapped_column(String(9))
    licensed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Terminal(Base):
    """A merchant's till or АПК; its API key is kept only as an HMAC."""

    __tablename__ = "wallet_terminal"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("wallet_merchant.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    key_prefix: Mapped[str] = mapped_column(String(12))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("merchant_id", "code"),)


class Settlement(Base):
    """A merchant's daily statement as issued; `wallet check` re-derives it from the ledger."""

    __tablename__ = "wallet_settlement"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("wallet_merchant.id"))
    day_on: Mapped[date] = mapped_column(Date)
    captured_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger)
    net_minor: Mapped[int] = mapped_column(BigInteger)
    postings: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("merchant_id", "day_on"),)
