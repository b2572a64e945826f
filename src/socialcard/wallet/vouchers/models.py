"""Voucher tables: issued vouchers (a citizen key's person is on the key itself)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from socialcard.core.clock import utcnow
from socialcard.core.db import Base
from socialcard.core.types import BigId, UTCDateTime


class Voucher(Base):
    """An earmarked entitlement; its value sits on its own citizen account in the ledger."""

    __tablename__ = "wallet_voucher"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token: Mapped[str] = mapped_column(String(40), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("registry_person.id"), index=True)
    type: Mapped[str] = mapped_column(String(20))
    program_id: Mapped[str] = mapped_column(String(80))
    region_kato: Mapped[str] = mapped_column(String(9))
    period: Mapped[str] = mapped_column(String(7))
    account_id: Mapped[int] = mapped_column(ForeignKey("wallet_account.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    nominal_minor: Mapped[int] = mapped_column(BigInteger)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date, index=True)
    bound_merchant_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_merchant.id"))
    utility_account: Mapped[str | None] = mapped_column(String(40))
    fare_category: Mapped[str | None] = mapped_column(String(30))
    # Prescription lines as JSON: [{"atc": "C09AA02", "quantity": 30, "dispensed": 0}].
    prescription: Mapped[str | None] = mapped_column(Text)
    last_used_on: Mapped[date | None] = mapped_column(Date)
    uses_on_day: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The decision the voucher was issued from: the rules run, program, period and entity
    # (family key or person id) of a stored decision; a payment order's has no run.
    source_run_id: Mapped[int | None] = mapped_column(BigInteger)
    source_program_id: Mapped[str | None] = mapped_column(String(80))
    source_period: Mapped[str | None] = mapped_column(String(7))
    source_entity_type: Mapped[str | None] = mapped_column(String(6))
    source_entity_id: Mapped[int | None] = mapped_column(BigInteger)
    # The rules the voucher was valued with: the program version and the rule pack's hash of
    # the decision (its value is a variable that version of the program computed).
    rule_version: Mapped[str | None] = mapped_column(String(20))
    rule_pack_hash: Mapped[str | None] = mapped_column(String(64))
