"""Well-being tables: a scoring run and one result row per family."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from socialcard.core.clock import utcnow
from socialcard.core.db import Base
from socialcard.core.types import BigId, UTCDateTime


class WellbeingRun(Base):
    """One scoring of the whole registry for a period under one methodology version."""

    __tablename__ = "wellbeing_run"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    methodology_id: Mapped[str] = mapped_column(String(100), index=True)
    methodology_sha256: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(7))
    families: Mapped[int] = mapped_column(Integer)
    # Level code -> number of families, in the methodology's order (best first).
    level_counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The methodology as scored (titles, indicators, points, cut-offs): old runs stay explainable.
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Seconds per step: snapshot, load, evaluate, write.
    timings: Mapped[dict[str, Any]] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WellbeingResult(Base):
    """A family's score in a run: per dimension, total, level and which indicators held."""

    __tablename__ = "wellbeing_result"

    # No foreign key on purpose: a run writes a million rows at once, and the per-row
    # referential check tripled the COPY time on PostgreSQL (measured 5.9 s -> 2.4 s for
    # 300,000 rows). The service writes a run and its rows in one transaction.
    run_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    family_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    region_kato: Mapped[str | None] = mapped_column(String(9))
    level: Mapped[str] = mapped_column(String(4))
    score: Mapped[int] = mapped_column(Integer)
    economic: Mapped[int] = mapped_column(Integer)
    social: Mapped[int] = mapped_column(Integer)
    housing: Mapped[int] = mapped_column(Integer)
    health: Mapped[int] = mapped_column(Integer)
    education: Mapped[int] = mapped_column(Integer)
    # One character per indicator in the run's definition order: 1 holds, 0 not, - unknown.
    indicators: Mapped[str] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_wellbeing_result_run_id_level_family_id", "run_id", "level", "family_id"),
    )
