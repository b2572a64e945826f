"""Outreach HTTP API: segments, their campaigns and funnels, and the families' cases."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from socialcard.core.deps import DbSession
from socialcard.core.http import PROBLEM_JSON, PROBLEM_RESPONSES
from socialcard.outreach import service
from socialcard.outreach.enums import CaseOutcome
from socialcard.outreach.schemas import (
    CampaignStart,
    CasePage,
    CaseRead,
    CaseUpdate,
    SegmentCampaignRead,
    SegmentCreate,
    SegmentFunnel,
    SegmentRead,
)
from socialcard.security.deps import require_roles
from socialcard.security.enums import Purpose, Role
from socialcard.security.schemas import Actor

router = APIRouter(prefix="/api/v1/outreach", tags=["outreach"], responses=PROBLEM_RESPONSES)
Operator = Annotated[Actor, Depends(require_roles(Role.OPERATOR))]
PurposeQuery = Annotated[Purpose, Query(description="Why the data is read; kept in the audit log.")]
Code = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{1,39}$")]
CaseId = Annotated[int, Path(ge=1, le=2**62)]
PageQuery = Annotated[int, Query(ge=1, le=1_000_000)]
SizeQuery = Annotated[int, Query(ge=1, le=200)]
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The segment code is taken", "content": {PROBLEM_JSON: {}}}
}


@router.get("/segments", response_model=list[SegmentRead])
def list_segments(session: DbSession, actor: Operator) -> list[SegmentRead]:
    """The built-in segments (level worsened since the previous run) and the operators'."""
    return service.list_segments(session)


@router.post("/segments", response_model=SegmentRead, status_code=201, responses=CONFLICT)
def create_segment(body: SegmentCreate, session: DbSession, actor: Operator) -> SegmentRead:
    """Define a segment: level codes, a region (KATO prefix), indicators that must all hold,
    and whether the level must have worsened since the previous run."""
    return service.create_segment(session, payload=body, actor=actor)


@router.get("/segments/{code}", response_model=SegmentRead)
def get_segment(code: Code, session: DbSession, actor: Operator) -> SegmentRead:
    """One segment."""
    return service.get_segment(session, code=code)


@router.post("/segments/{code}/campaigns", response_model=SegmentCampaignRead)
def start_campaign(
    code: Code, body: CampaignStart, session: DbSession, actor: Operator, purpose: PurposeQuery
) -> SegmentCampaignRead:
    """Invite the segment's families to a family support centre by SMS in their language
    (through the proactive outbox, consent and deadline) and open a case for each; again on
    the same run it invites no one twice."""
    return service.start_campaign(
        session, code=code, run_id=body.run_id, actor=actor, purpose=purpose
    )


@router.get("/segments/{code}/funnel", response_model=SegmentFunnel)
def funnel(code: Code, session: DbSession, actor: Operator) -> SegmentFunnel:
    """Families -> invited -> delivered -> agreed/refused/lapsed -> cases by outcome."""
    return service.funnel(session, code=code)


@router.get("/cases", response_model=CasePage)
def list_cases(
    session: DbSession,
    actor: Operator,
    purpose: PurposeQuery,
    segment: Annotated[str | None, Query(max_length=40)] = None,
    outcome: CaseOutcome | None = None,
    family_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    page: PageQuery = 1,
    size: SizeQuery = 50,
) -> CasePage:
    """Cases of a segment, an outcome or a family (the families shown are audited)."""
    return service.list_cases(
        session,
        actor=actor,
        purpose=purpose,
        segment_code=segment,
        outcome=outcome,
        family_id=family_id,
        page=page,
        size=size,
    )


@router.get("/cases/{case_id}", response_model=CaseRead)
def get_case(
    case_id: CaseId, session: DbSession, actor: Operator, purpose: PurposeQuery
) -> CaseRead:
    """One case: its invitation's status, worker, contacts, outcome and next review."""
    return service.get_case(session, case_id=case_id, actor=actor, purpose=purpose)


@router.patch("/cases/{case_id}", response_model=CaseRead)
def update_case(
    case_id: CaseId,
    body: CaseUpdate,
    session: DbSession,
    actor: Operator,
    purpose: PurposeQuery,
) -> CaseRead:
    """Assign a worker, add a contact, set the outcome or the next review date."""
    return service.update_case(session, case_id=case_id, payload=body, actor=actor, purpose=purpose)
