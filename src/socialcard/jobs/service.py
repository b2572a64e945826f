"""Stored jobs: submit (checked, recorded, at most one active whole-registry job of a kind),
read, cancel, resume, and recover the jobs a dead process left running.

The work itself runs in `worker.py`; this module only reads and writes job rows, each
function in a transaction of its own (a job's state must be visible to other processes as
soon as it changes).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.db import session_scope
from socialcard.core.logging import get_logger
from socialcard.jobs import process, repository
from socialcard.jobs.errors import (
    JobAlreadyActive,
    JobFinished,
    JobNotFound,
    JobNotResumable,
)
from socialcard.jobs.kinds import kind as kind_of
from socialcard.jobs.models import ACTIVE, Job
from socialcard.jobs.schemas import JobPage, JobRead
from socialcard.rules import service as rules_service
from socialcard.security import service as security_service
from socialcard.security.schemas import Actor

log = get_logger(__name__)
FINISHED = ("succeeded", "failed", "cancelled")
INTERRUPTED = "interrupted"


def to_read(job: Job) -> JobRead:
    percent = None
    if job.total:
        percent = min(100, int(100 * job.done / job.total))
    return JobRead(
        id=job.id,
        kind=job.kind,
        label=job.label,
        params=job.params,
        status=job.status,  # type: ignore[arg-type]
        step=job.step,
        done=job.done,
        total=job.total,
        percent=percent,
        result=job.result,
        error=job.error,
        error_code=job.error_code,
        started_by=job.started_by,
        attempts=job.attempts,
        rules_run_id=job.rules_run_id,
        cancel_requested=job.cancel_requested_at is not None,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        heartbeat_at=job.heartbeat_at,
    )


def _flush_guarded(session: Session, kind: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        raise JobAlreadyActive(
            f"a {kind} job over the whole registry is already queued or running",
            details=[{"field": "kind", "reason": "one active job of this kind at a time"}],
        ) from None


def submit(*, kind: str, params: dict[str, Any], actor: Actor | None, started_by: str) -> JobRead:
    """Check a request, record its job as queued and owned by this process (committed).

    409 when a job of the kind is already queued or running (the store's unique index
    decides, so two processes cannot both start one); jobs of dead processes are recovered
    first so that they do not hold the slot."""
    spec = kind_of(kind)
    if actor is not None:
        security_service.ensure_role(actor, spec.roles)
    recover()
    with session_scope() as session:
        prepared = spec.prepare(session, params, started_by)
        now = utcnow()
        job = Job(
            kind=kind,
            scope="registry",
            label=prepared.label[:200],
            params=prepared.params,
            status="queued",
            step="",
            done=0,
            started_by=started_by[:100],
            owner=str(process.me()),
            heartbeat_at=now,
            attempts=1,
            rules_run_id=prepared.rules_run_id,
            created_at=now,
        )
        session.add(job)
        _flush_guarded(session, kind)
        process.adopt(job.id)
        read = to_read(job)
    log.info("job_queued", job_id=read.id, kind=kind, started_by=started_by)
    return read


def get(*, job_id: int) -> JobRead:
    with session_scope() as session:
        job = repository.by_id(session, job_id)
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        return to_read(job)


def list_jobs(
    *, kind: str | None = None, status: str | None = None, page: int = 1, size: int = 50
) -> JobPage:
    """Jobs newest first."""
    with session_scope() as session:
        rows, total = repository.page(
            session, kind=kind, status=status, offset=(page - 1) * size, limit=size
        )
        return JobPage(items=[to_read(j) for j in rows], page=page, size=size, total=total)


def latest(*, kind: str, status: str = "succeeded") -> JobRead | None:
    with session_scope() as session:
        job = repository.latest(session, kind=kind, status=status)
        return to_read(job) if job is not None else None


def _load_for(session: Session, job_id: int, actor: Actor | None) -> Job:
    job = repository.by_id(session, job_id)
    if job is None:
        raise JobNotFound(f"no job with id {job_id}")
    if actor is not None:
        security_service.ensure_role(actor, kind_of(job.kind).roles)
    return job


def cancel(*, job_id: int, actor: Actor | None) -> JobRead:
    """Store a cancellation: a queued job is cancelled at once, a running one stops at its
    next chunk (its worker reads the request)."""
    recover()
    with session_scope() as session:
        job = _load_for(session, job_id, actor)
        if job.status in FINISHED:
            raise JobFinished(f"job {job_id} has already ended ({job.status})")
        now = utcnow()
        job.cancel_requested_at = now
        if job.status == "queued":
            job.status = "cancelled"
            job.finished_at = now
            kind_of(job.kind).stopped(session, job)
        session.flush()
        read = to_read(job)
    log.info("job_cancel_requested", job_id=job_id, status=read.status)
    return read


def reopen(*, job_id: int, actor: Actor | None) -> JobRead:
    """Queue a failed or cancelled job again, owned by this process (its work restarts:
    every kind is re-runnable). 409 unless it ended so, or when another job of its kind is
    active."""
    recover()
    with session_scope() as session:
        job = _load_for(session, job_id, actor)
        if job.status not in ("failed", "cancelled"):
            raise JobNotResumable(f"job {job_id} is {job.status}; only a failed or cancelled job")
        now = utcnow()
        job.status = "queued"
        job.attempts += 1
        job.step, job.done, job.total = "", 0, None
        job.result = job.error = job.error_code = None
        job.cancel_requested_at = job.started_at = job.finished_at = None
        job.owner = str(process.me())
        job.heartbeat_at = now
        _flush_guarded(session, job.kind)
        kind_of(job.kind).resumed(session, job)
        process.adopt(job.id)
        read = to_read(job)
    log.info("job_resumed", job_id=job_id, attempt=read.attempts)
    return read


def finish(
    *,
    job_id: int,
    status: str,
    step: str,
    done: int,
    total: int | None,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    error_code: str | None = None,
) -> JobRead:
    """Record how a job this process ran ended."""
    try:
        with session_scope() as session:
            job = repository.by_id(session, job_id)
            if job is None:
                raise JobNotFound(f"no job with id {job_id}")
            job.status = status
            job.step, job.done, job.total = step, done, total
            job.result = result
            job.error = error[:2000] if error else None
            job.error_code = error_code
            job.finished_at = job.heartbeat_at = utcnow()
            if status != "succeeded":
                kind_of(job.kind).stopped(session, job)
            session.flush()
            read = to_read(job)
    finally:
        process.release(job_id)
    log.info("job_finished", job_id=job_id, status=status, error_code=error_code)
    return read


def recover() -> list[int]:
    """Mark failed (and resumable) every queued or running job whose process is gone; the
    ids so marked. Called when a server starts, before a job is started and by the CLI.
    Rules runs left queued or running by no active job are marked failed too."""
    stale = get_settings().jobs.stale_seconds
    marked: list[int] = []
    with session_scope() as session:
        now = utcnow()
        for job in repository.active(session):
            if process.is_alive(job.id, job.owner, job.heartbeat_at, now=now, stale=stale):
                continue
            job.status = "failed"
            job.error = "interrupted: the process running the job stopped; resume it"
            job.error_code = INTERRUPTED
            job.finished_at = now
            kind_of(job.kind).stopped(session, job)
            marked.append(job.id)
        session.flush()
        owned = {j.rules_run_id for j in repository.active(session) if j.rules_run_id}
        orphans = rules_service.fail_unowned_runs(session, owned=owned)
    for job_id in marked:
        log.warning("job_interrupted", job_id=job_id)
    for run_id in orphans:
        log.warning("rules_run_interrupted", run_id=run_id)
    return marked


def is_active(status: str) -> bool:
    return status in ACTIVE
