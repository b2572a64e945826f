"""Outreach tables: operator-defined segments and one light case record per invited family."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from socialcard.core.clock import utcnow
from socialcard.core.db import Base
from socialcard.core.types import BigId, UTCDateTime


class Segment(Base):
    """Families of a scoring run picked by level, region, indicators held and level change."""

    __tablename__ = "outreach_segment"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Names the segment in the API and its invitations' program id (`outreach.<code>`).
    code: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    # None: the latest run of any methodology.
    methodology_id: Mapped[str | None] = mapped_column(String(100))
    levels: Mapped[list[Any]] = mapped_column(JSON)  # level codes; empty: any level
    region: Mapped[str | None] = mapped_column(String(9))  # a KATO prefix
    indicators: Mapped[list[Any]] = mapped_column(JSON)  # indicator ids that must all hold
    worsened: Mapped[bool] = mapped_column(Boolean, default=False)
    # A family-level rule expression that must also hold (`outreach.condition`), or None.
    condition: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutreachCase(Base):
    """A family invited by a segment's campaign: who works on it, contacts, outcome, review."""

    __tablename__ = "outreach_case"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    segment_code: Mapped[str] = mapped_column(String(40))
    # The invitation (a proactive offer): its consent, deadline and messages live there.
    offer_id: Mapped[int] = mapped_column(ForeignKey("proactive_offer.id"), unique=True)
    campaign_id: Mapped[int] = mapped_column(BigInteger)
    wellbeing_run_id: Mapped[int] = mapped_column(BigInteger)
    family_id: Mapped[int] = mapped_column(BigInteger, index=True)
    person_id: Mapped[int] = mapped_column(BigInteger)  # the member invited
    region_kato: Mapped[str] = mapped_column(String(9))
    level: Mapped[str] = mapped_column(String(4))
    assigned_worker: Mapped[str | None] = mapped_column(String(100))
    # Each contact: {"at", "channel", "note", "by"}, in order.
    contacts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    outcome: Mapped[str] = mapped_column(String(20), default="open")
    next_review_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_outreach_case_segment_code_outcome", "segment_code", "outcome"),)
