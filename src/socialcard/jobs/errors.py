"""Errors of stored jobs."""

from __future__ import annotations

from socialcard.core.errors import Conflict, NotFound


class JobNotFound(NotFound):
    code = "job_not_found"


class JobAlreadyActive(Conflict):
    """Another whole-registry job of the same kind is queued or running."""

    code = "job_already_active"


class JobNotResumable(Conflict):
    """Only a failed or cancelled job is resumed."""

    code = "job_not_resumable"


class JobFinished(Conflict):
    """A finished job cannot be cancelled."""

    code = "job_finished"


class JobNotQueued(Conflict):
    """Another worker took the job first."""

    code = "job_not_queued"


class JobCancelled(Exception):
    """Raised inside a job's work when its cancellation was requested."""
