"""Queries of the job table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from socialcard.jobs.models import ACTIVE, Job


def add(session: Session, job: Job) -> None:
    session.add(job)
    session.flush()


def by_id(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def cancel_requested(session: Session, job_id: int) -> bool:
    """Whether a cancellation of the job is stored (a read, never a lock)."""
    return session.scalar(select(Job.cancel_requested_at).where(Job.id == job_id)) is not None


def claim(session: Session, job_id: int, *, owner: str, now: datetime) -> bool:
    """Take a queued job for this process (False when another worker took it first)."""
    taken = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(status="running", owner=owner, heartbeat_at=now, started_at=now)
    )
    return bool(taken.rowcount)  # type: ignore[attr-defined]


def beat(
    session: Session,
    job_id: int,
    *,
    now: datetime,
    step: str,
    done: int,
    total: int | None,
) -> None:
    """A running job's heartbeat and progress."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(ACTIVE))
        .values(heartbeat_at=now, step=step, done=done, total=total)
    )


def active(session: Session) -> Sequence[Job]:
    """Jobs queued or running, oldest first."""
    return session.scalars(select(Job).where(Job.status.in_(ACTIVE)).order_by(Job.id)).all()


def page(
    session: Session,
    *,
    kind: str | None,
    status: str | None,
    offset: int,
    limit: int,
) -> tuple[Sequence[Job], int]:
    """Jobs newest first, filtered by kind and status, and how many match."""
    query = select(Job)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if status is not None:
        query = query.where(Job.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Job.id.desc()).offset(offset).limit(limit)).all()
    return rows, int(total)


def latest(session: Session, *, kind: str, status: str) -> Job | None:
    """The newest job of a kind in a status."""
    return session.scalars(
        select(Job).where(Job.kind == kind, Job.status == status).order_by(Job.id.desc()).limit(1)
    ).first()
