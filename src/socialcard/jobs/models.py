"""The job table: one row per piece of long work, its progress, owner and outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from socialcard.core.clock import utcnow
from socialcard.core.db import Base
from socialcard.core.types import BigId, UTCDateTime

# The states in which a job holds its kind's slot (see `uq_job_active_kind`).
ACTIVE = ("queued", "running")


class Job(Base):
    """A piece of long work: what it does (kind, params), who runs it (owner, heartbeat),
    how far it is (step, done, total) and how it ended (result or error)."""

    __tablename__ = "job"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    # 'registry': works over the whole registry, so at most one of its kind is active.
    scope: Mapped[str] = mapped_column(String(10), default="registry")
    label: Mapped[str] = mapped_column(String(200), default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    # queued | running | succeeded | failed | cancelled
    status: Mapped[str] = mapped_column(String(12), default="queued")
    step: Mapped[str] = mapped_column(String(40), default="")
    done: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int | None] = mapped_column(BigInteger)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(60))
    started_by: Mapped[str] = mapped_column(String(100))
    # host|boot id|pid of the process that runs (or will run) it.
    owner: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A rules run keeps its own state in its run row; the job points at it.
    rules_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("rules_run.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # At most one active whole-registry job of a kind, enforced by the store, so two
        # processes cannot both start one (the second insert or resume fails: 409).
        Index(
            "uq_job_active_kind",
            "kind",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running') AND scope = 'registry'"),
            postgresql_where=text("status IN ('queued', 'running') AND scope = 'registry'"),
        ),
        Index("ix_job_status", "status"),
        Index("ix_job_created_at", "created_at"),
    )
