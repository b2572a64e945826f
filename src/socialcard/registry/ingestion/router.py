"""Agency batch API: agencies push rows of a declared source; operators read batch results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status

from socialcard.core.deps import DbSession
from socialcard.core.http import PROBLEM_JSON, PROBLEM_RESPONSES
from socialcard.registry.ingestion import service
from socialcard.registry.ingestion.schemas import (
    BatchCreate,
    BatchResult,
    QuarantinePage,
    SourceRead,
)
from socialcard.security.deps import require_roles
from socialcard.security.enums import Purpose, Role
from socialcard.security.schemas import Actor

router = APIRouter(prefix="/api/v1/sources", tags=["ingestion"])

BatchId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Agency = Annotated[Actor, Depends(require_roles(Role.AGENCY))]
Reader = Annotated[Actor, Depends(require_roles(Role.AGENCY, Role.OPERATOR))]

_ERRORS: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    409: {
        "description": "Batch key already used for different content",
        "content": {PROBLEM_JSON: {}},
    },
    413: {"description": "Too many rows in one batch", "content": {PROBLEM_JSON: {}}},
}


@router.get("", response_model=list[SourceRead], responses=PROBLEM_RESPONSES)
def list_sources(actor: Reader) -> list[SourceRead]:
    """The declared sources: their columns, types, required flags and default agency."""
    return service.list_sources()


@router.post(
    "/{source}/batches",
    response_model=BatchResult,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "A resend: the original result"}, **_ERRORS},
    # Up to MAX_API_ROWS rows of a few hundred bytes each; other bodies stay at 1 MiB.
    max_body_size=16 * 1024 * 1024,
)
def submit_batch(
    source: str,
    body: BatchCreate,
    response: Response,
    session: DbSession,
    actor: Agency,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> BatchResult:
    """Load a batch of rows (201); the same batch again returns the original result (200)."""
    result, created = service.submit_batch(
        session,
        source=source,
        rows=body.rows,
        batch_key=body.batch_key,
        idempotency_key=idempotency_key,
        agency=body.agency,
        actor=actor,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return result


@router.get("/{source}/batches/{batch_id}", response_model=BatchResult, responses=PROBLEM_RESPONSES)
def get_batch(source: str, batch_id: BatchId, session: DbSession, actor: Reader) -> BatchResult:
    """A batch: its counts, status and rejected rows (an agency sees only its own)."""
    return service.get_batch(session, source=source, batch_id=batch_id, actor=actor)


@router.get(
    "/{source}/batches/{batch_id}/quarantine",
    response_model=QuarantinePage,
    responses=PROBLEM_RESPONSES,
)
def batch_quarantine(
    source: str,
    batch_id: BatchId,
    session: DbSession,
    actor: Reader,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
    purpose: Annotated[
        Purpose | None,
        Query(description="Why the rows are read (operators; kept in the audit log)."),
    ] = None,
) -> QuarantinePage:
    """The batch's quarantined rows, each with the field, the reason and the row as sent
    (an agency its own batches; an operator states a purpose and the read is audited)."""
    return service.batch_quarantine(
        session,
        source=source,
        batch_id=batch_id,
        page=page,
        size=size,
        actor=actor,
        purpose=purpose,
    )
