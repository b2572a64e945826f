"""Runs jobs in this process: claims a queued job, runs its kind's work with a context that
takes its progress, and records how it ended. A monitor thread writes the heartbeat and
progress of this process's running jobs every `jobs.heartbeat_seconds` (the work never
waits for that write: on SQLite a rules run holds the write lock until it commits)."""

from __future__ import annotations

import threading
import time
from typing import Any

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.db import new_session, session_scope
from socialcard.core.errors import AppError
from socialcard.core.logging import get_logger
from socialcard.jobs import process, repository, service
from socialcard.jobs.errors import JobCancelled, JobNotQueued
from socialcard.jobs.kinds import kind as kind_of
from socialcard.jobs.schemas import JobRead
from socialcard.proactive.crash import crashpoint
from socialcard.rules import service as rules_service
from socialcard.rules.schemas import RunCreate, RunRead
from socialcard.security.schemas import Actor

log = get_logger(__name__)


class Context:
    """A running job as its work sees it (see `kinds.Context`)."""

    def __init__(self, job_id: int, params: dict[str, Any], rules_run_id: int | None) -> None:
        self.job_id = job_id
        self.params = params
        self.rules_run_id = rules_run_id
        self.step = ""
        self.done = 0
        self.total: int | None = None
        self.cancelled = False
        self._polled = 0.0

    def progress(self, step: str, done: int, total: int | None = None) -> None:
        """Where the work is; also where it stops when its cancellation was requested."""
        if step != self.step:
            self.total = None
        self.step, self.done = step, done
        if total is not None:
            self.total = total
        crashpoint("job_progress")
        self.check_cancel()

    def check_cancel(self, *, force: bool = False) -> None:
        """Raise JobCancelled once a cancellation is stored (read at most every
        `jobs.cancel_poll_seconds`; the monitor also reads it)."""
        if not self.cancelled:
            interval = get_settings().jobs.cancel_poll_seconds
            if force or time.monotonic() - self._polled >= interval:
                self._polled = time.monotonic()
                with new_session() as session:
                    self.cancelled = repository.cancel_requested(session, self.job_id)
        if self.cancelled:
            raise JobCancelled


_running: dict[int, Context] = {}
_running_lock = threading.Lock()
_monitor: threading.Thread | None = None


def _beat_once() -> None:
    with _running_lock:
        contexts = list(_running.values())
    for ctx in contexts:
        try:
            # The read apart from the write: on SQLite a transaction that read cannot write
            # once another has committed meanwhile.
            with new_session() as session:
                if repository.cancel_requested(session, ctx.job_id):
                    ctx.cancelled = True
            with session_scope() as session:
                repository.beat(
                    session,
                    ctx.job_id,
                    now=utcnow(),
                    step=ctx.step[:40],
                    done=ctx.done,
                    total=ctx.total,
                )
        except Exception:  # a missed heartbeat is retried on the next beat
            log.warning("job_heartbeat_failed", job_id=ctx.job_id, exc_info=True)


def _monitor_loop() -> None:
    global _monitor
    while True:
        time.sleep(get_settings().jobs.heartbeat_seconds)
        with _running_lock:
            if not _running:
                _monitor = None
                return
        _beat_once()


def _ensure_monitor() -> None:
    global _monitor
    with _running_lock:
        if _monitor is None or not _monitor.is_alive():
            _monitor = threading.Thread(target=_monitor_loop, name="job-monitor", daemon=True)
            _monitor.start()


def run(job_id: int) -> JobRead:
    """Claim a queued job and run it here to its end (its final state returned)."""
    with session_scope() as session:
        if not repository.claim(session, job_id, owner=str(process.me()), now=utcnow()):
            process.release(job_id)
            raise JobNotQueued(f"job {job_id} is not queued")
        job = repository.by_id(session, job_id)
        if job is None:
            raise JobNotQueued(f"job {job_id} is gone")
        kind, params, rules_run_id = job.kind, dict(job.params), job.rules_run_id
    ctx = Context(job_id, params, rules_run_id)
    with _running_lock:
        _running[job_id] = ctx
    _ensure_monitor()
    log.info("job_started", job_id=job_id, kind=kind)
    status, result, error, code = "succeeded", None, None, None
    try:
        ctx.check_cancel(force=True)
        result = kind_of(kind).work(ctx)
    except JobCancelled:
        status, error, code = "cancelled", "cancelled on request", "cancelled"
    except AppError as exc:
        status, error, code = "failed", exc.message, exc.code
    except Exception as exc:  # a failed job is a state of the job, not a crash
        log.exception("job_failed", job_id=job_id, kind=kind)
        status, error, code = "failed", str(exc)[:500] or type(exc).__name__, "internal"
    finally:
        with _running_lock:
            _running.pop(job_id, None)
    return service.finish(
        job_id=job_id,
        status=status,
        step=ctx.step,
        done=ctx.done,
        total=ctx.total,
        result=result,
        error=error,
        error_code=code,
    )


def _run_quietly(job_id: int) -> None:
    try:
        run(job_id)
    except JobNotQueued:  # cancelled before this thread took it
        log.info("job_not_started", job_id=job_id)
    except Exception:  # the job's row says what happened; nothing to raise to
        log.exception("job_runner_failed", job_id=job_id)
        process.release(job_id)


def _launch(job: JobRead, background: bool) -> JobRead:
    if not background:
        return run(job.id)
    threading.Thread(target=_run_quietly, args=(job.id,), name=f"job-{job.id}", daemon=True).start()
    return job


def start(
    kind: str,
    params: dict[str, Any],
    *,
    actor: Actor | None,
    started_by: str | None = None,
    background: bool = True,
) -> JobRead:
    """Check and record a job, then run it: on a thread of this process (`background`, the
    queued job returned at once) or here to its end."""
    who = started_by or (actor.name if actor is not None else "system")
    job = service.submit(kind=kind, params=params, actor=actor, started_by=who)
    return _launch(job, background)


def resume(job_id: int, *, actor: Actor | None, background: bool = True) -> JobRead:
    """Queue a failed or cancelled job again and run it (as `start`)."""
    return _launch(service.reopen(job_id=job_id, actor=actor), background)


def start_rules_run(request: RunCreate, *, actor: Actor) -> RunRead:
    """Start a rules run as a job in the background; the queued run, naming its job."""
    job = start("rules_run", request.model_dump(), actor=actor)
    with session_scope() as session:
        run = rules_service.read_run(session, run_id=job.rules_run_id or 0)
    return run.model_copy(update={"job_id": job.id})


def wait(job_id: int, timeout: float = 60.0) -> JobRead:
    """Wait for a job to end (tests and the CLI; pages never wait)."""
    deadline = time.monotonic() + timeout
    job = service.get(job_id=job_id)
    while service.is_active(job.status) and time.monotonic() < deadline:
        time.sleep(0.05)
        job = service.get(job_id=job_id)
    return job
