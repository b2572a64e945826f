"""Long jobs started from the console (a campaign, a well-being scoring) run in a thread of
their own; the page that started them shows their progress and never waits for them.

Rules runs keep their own state in the store (rules.router.execute_in_background); the jobs
here keep theirs in this process, which is where the console's server runs them. A job that
dies with the process is simply started again: campaigns and scoring are safe to re-run.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.db import session_scope
from socialcard.core.errors import AppError
from socialcard.core.logging import get_logger
from socialcard.proactive import jobs as proactive_jobs
from socialcard.reports import service as reports_service
from socialcard.wallet import service as wallet_service
from socialcard.wellbeing import service as wellbeing_service

log = get_logger(__name__)
_MAX_KEPT = 100


@dataclass
class Job:
    """A background job's state, as its progress page shows it."""

    id: int
    kind: str
    label: str
    started_by: str
    status: str = "running"  # running | succeeded | failed
    step: str = ""
    done: int = 0
    total: int | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_code: str | None = None
    started_at: Any = field(default_factory=utcnow)
    finished_at: Any = None

    @property
    def percent(self) -> int | None:
        if not self.total:
            return None
        return min(100, int(100 * self.done / self.total))


_jobs: dict[int, Job] = {}
_ids = itertools.count(1)
_lock = threading.Lock()


def get(job_id: int) -> Job | None:
    with _lock:
        return _jobs.get(job_id)


def recent() -> list[Job]:
    with _lock:
        return sorted(_jobs.values(), key=lambda j: j.id, reverse=True)


def _start(kind: str, label: str, started_by: str, work: Callable[[Job], dict[str, Any]]) -> Job:
    job = Job(id=next(_ids), kind=kind, label=label, started_by=started_by)
    with _lock:
        _jobs[job.id] = job
        for old in sorted(_jobs)[:-_MAX_KEPT]:
            del _jobs[old]

    def body() -> None:
        try:
            job.result = work(job)
            job.status = "succeeded"
        except AppError as exc:
            job.status, job.error, job.error_code = "failed", exc.message, exc.code
        except Exception as exc:  # a failed job is a state of the job, not a crash
            log.exception("web_job_failed", job_id=job.id, kind=kind)
            job.status, job.error, job.error_code = "failed", type(exc).__name__, "internal"
        finally:
            job.finished_at = utcnow()
            reports_service.clear_cache()

    threading.Thread(target=body, name=f"web-job-{job.id}", daemon=True).start()
    return job


def start_campaign(*, program_id: str, period: str, started_by: str) -> Job:
    """Run a program's campaign for a month (offers and their SMS) in the background."""

    def work(job: Job) -> dict[str, Any]:
        job.step = "offers"

        def progress(done: int) -> None:
            job.done = done

        campaign = proactive_jobs.run_campaign(
            program_id=program_id, period=period, progress=progress
        )
        job.total = job.done = campaign.eligible
        return {"campaign_id": campaign.id, "offered": campaign.offered}

    return _start("campaign", f"{program_id} {period}", started_by, work)


def start_scoring(*, methodology: str | None, period: str, started_by: str) -> Job:
    """Score every family's well-being for a month in the background."""

    def work(job: Job) -> dict[str, Any]:
        loaded = wellbeing_service.load(methodology, period=period)

        def progress(step: str, done: int, total: int) -> None:
            job.step, job.done, job.total = step, done, total

        with session_scope() as session:
            run = wellbeing_service.score_registry(
                session,
                database_url=get_settings().database_url,
                methodology=loaded,
                period=period,
                progress=progress,
            )
        return {"run_id": run.id, "families": run.families}

    return _start("scoring", f"{methodology or 'default'} {period}", started_by, work)


def wait(job_id: int, timeout: float = 60.0) -> Job | None:
    """Wait for a job to finish (tests and the CLI; pages never wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get(job_id)
        if job is None or job.status != "running":
            return job
        time.sleep(0.05)
    return get(job_id)


_last_check: dict[str, Any] = {}


def start_wallet_check(*, started_by: str) -> Job:
    """Verify the ledger's invariants (reads every entry: seconds on a large store)."""

    def work(job: Job) -> dict[str, Any]:
        job.step = "check"
        with session_scope() as session:
            result = wallet_service.check(session)
        _last_check.update(result=result, at=utcnow())
        return {"ok": result.ok, "problems": len(result.problems)}

    return _start("check", "wallet", started_by, work)


def last_wallet_check() -> dict[str, Any]:
    """The last check's result and time ({} when none ran in this process)."""
    return dict(_last_check)
