"""Jobs HTTP API: start long work (202 and the job's URL), read its progress, cancel, resume."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response, status

from socialcard.core.deps import IdPath
from socialcard.core.http import PROBLEM_JSON, PROBLEM_RESPONSES
from socialcard.jobs import service, worker
from socialcard.jobs.schemas import JobCreate, JobKind, JobPage, JobRead, JobStatus
from socialcard.security.deps import require_roles
from socialcard.security.enums import Role
from socialcard.security.schemas import Actor

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=PROBLEM_RESPONSES)
# Who may start, cancel or resume a job is decided per kind (jobs.kinds); these are the union.
Starter = Annotated[Actor, Depends(require_roles(Role.OPERATOR, Role.POLICY_OWNER))]
# A job's progress and counts hold no person's data.
Reader = Annotated[Actor, Depends(require_roles(Role.OPERATOR, Role.POLICY_OWNER, Role.AUDITOR))]
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "Another job of the kind is active, or the job's state forbids it",
        "content": {PROBLEM_JSON: {}},
    },
}
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted; the job's URL in Location",
        "headers": {"Location": {"schema": {"type": "string"}, "description": "The job's URL"}},
    },
    **CONFLICT,
}


def location(job_id: int) -> str:
    """The URL of a job's progress."""
    return f"/api/v1/jobs/{job_id}"


@router.post("", response_model=JobRead, status_code=status.HTTP_202_ACCEPTED, responses=ACCEPTED)
def start_job(
    body: Annotated[JobCreate, Body(discriminator="kind")], response: Response, actor: Starter
) -> JobRead:
    """Start a rules run, a campaign, a well-being scoring or the ledger check in the
    background: 202 with the job; poll its Location. 409 while another of the kind runs."""
    job = worker.start(body.kind, body.model_dump(exclude={"kind"}), actor=actor)
    response.headers["Location"] = location(job.id)
    return job


@router.get("", response_model=JobPage)
def list_jobs(
    actor: Reader,
    kind: JobKind | None = None,
    job_status: Annotated[JobStatus | None, Query(alias="status")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JobPage:
    """Jobs newest first, filtered by kind and status."""
    return service.list_jobs(kind=kind, status=job_status, page=page, size=size)


@router.get("/{job_id}", response_model=JobRead)
def get_job(job_id: IdPath, actor: Reader) -> JobRead:
    """A job's status, step, progress (done of total) and result or error."""
    return service.get(job_id=job_id)


@router.post(
    "/{job_id}/cancel",
    response_model=JobRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=ACCEPTED,
)
def cancel_job(job_id: IdPath, response: Response, actor: Starter) -> JobRead:
    """Ask a job to stop: a queued job is cancelled at once, a running one at its next
    chunk (status `cancelled`). 409 when it has already ended."""
    job = service.cancel(job_id=job_id, actor=actor)
    response.headers["Location"] = location(job.id)
    return job


@router.post(
    "/{job_id}/resume",
    response_model=JobRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=ACCEPTED,
)
def resume_job(job_id: IdPath, response: Response, actor: Starter) -> JobRead:
    """Run a failed (an interrupted one included) or cancelled job again from the start of
    its work (every kind is re-runnable). 409 unless it failed or was cancelled."""
    job = worker.resume(job_id, actor=actor)
    response.headers["Location"] = location(job.id)
    return job
