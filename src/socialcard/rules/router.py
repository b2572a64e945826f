"""Rules HTTP API: stored runs and their decisions, one family's eligibility, what-if."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response, status

from socialcard.core.deps import DbSession
from socialcard.core.http import PROBLEM_JSON, PROBLEM_RESPONSES
from socialcard.jobs import worker as jobs_worker
from socialcard.rules import service
from socialcard.rules.schemas import (
    DecisionPage,
    FamilyEvaluation,
    Lang,
    RunCreate,
    RunDetail,
    RunPage,
    RunRead,
    SimulationCreate,
    SimulationRead,
    StoredDecisionExplained,
)
from socialcard.security.deps import require_roles
from socialcard.security.enums import Purpose, Role
from socialcard.security.schemas import Actor

router = APIRouter(prefix="/api/v1", tags=["rules"], responses=PROBLEM_RESPONSES)
Starter = Annotated[Actor, Depends(require_roles(Role.OPERATOR, Role.POLICY_OWNER))]
# Runs and their counts by program and region: no person in them.
Reader = Annotated[Actor, Depends(require_roles(Role.OPERATOR, Role.POLICY_OWNER, Role.AUDITOR))]
# Decisions hold persons' data: a purpose and an audit row per person on every read.
DecisionReader = Annotated[Actor, Depends(require_roles(Role.OPERATOR, Role.AUDITOR))]
Operator = Annotated[Actor, Depends(require_roles(Role.OPERATOR))]
PolicyOwner = Annotated[Actor, Depends(require_roles(Role.POLICY_OWNER))]
PurposeQuery = Annotated[Purpose, Query(description="Why the data is read; kept in the audit log.")]
PeriodQuery = Annotated[str, Query(max_length=7, description="YYYY-MM (or YYYY)")]
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Cannot evaluate", "content": {PROBLEM_JSON: {}}}
}


@router.post(
    "/rules/runs",
    response_model=RunRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=CONFLICT,
)
def start_run(body: RunCreate, response: Response, actor: Starter) -> RunRead:
    """Evaluate the pack over the whole registry and store every decision (a job in the
    background): 202 with the run, its job's URL in Location; poll GET /rules/runs/{id} or
    the job. 409 while another rules run is queued or running."""
    run = jobs_worker.start_rules_run(body, actor=actor)
    response.headers["Location"] = f"/api/v1/jobs/{run.job_id}"
    return run


@router.get("/rules/runs", response_model=RunPage)
def list_runs(
    session: DbSession,
    actor: Reader,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RunPage:
    """Stored runs, newest first."""
    return service.list_runs(session, page=page, size=size)


@router.get("/rules/runs/{run_id}", response_model=RunDetail)
def get_run(
    run_id: Annotated[int, Path(ge=1, le=2**62)], session: DbSession, actor: Reader
) -> RunDetail:
    """A run's status, timings and summary by program and by region."""
    return service.get_run(session, run_id=run_id)


@router.get("/rules/runs/{run_id}/decisions", response_model=DecisionPage)
def list_decisions(
    run_id: Annotated[int, Path(ge=1, le=2**62)],
    session: DbSession,
    actor: DecisionReader,
    purpose: PurposeQuery,
    program: Annotated[str | None, Query(max_length=80)] = None,
    eligible: bool | None = None,
    region: Annotated[str | None, Query(max_length=9, description="KATO code or prefix")] = None,
    period: Annotated[str | None, Query(max_length=7)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DecisionPage:
    """Stored decisions, filtered by program, eligibility and region; pages of families
    (audited per member)."""
    return service.list_decisions(
        session,
        run_id=run_id,
        actor=actor,
        purpose=purpose,
        program_id=program,
        eligible=eligible,
        region=region,
        period=period,
        page=page,
        size=size,
    )


@router.get(
    "/rules/runs/{run_id}/families/{family_key}/decisions/{program_id}",
    response_model=StoredDecisionExplained,
)
def get_decision(
    run_id: Annotated[int, Path(ge=1, le=2**62)],
    family_key: Annotated[int, Path(ge=-(2**62), le=2**62)],
    program_id: Annotated[str, Path(max_length=80)],
    session: DbSession,
    actor: DecisionReader,
    purpose: PurposeQuery,
    person_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    period: Annotated[str | None, Query(max_length=7)] = None,
    lang: Lang = "ru",
) -> StoredDecisionExplained:
    """One stored decision with its explanation in kk, ru or en (audited per member)."""
    return service.explain_decision(
        session,
        run_id=run_id,
        actor=actor,
        purpose=purpose,
        family_key=family_key,
        program_id=program_id,
        person_id=person_id,
        period=period,
        lang=lang,
    )


@router.get(
    "/families/{family_id}/eligibility", response_model=FamilyEvaluation, responses=CONFLICT
)
def family_eligibility(
    family_id: Annotated[int, Path(ge=1, le=2**62)],
    session: DbSession,
    actor: Operator,
    period: PeriodQuery,
    purpose: PurposeQuery,
    lang: Lang | None = None,
) -> Response:
    """Evaluate one family now: every program's decision with conditions, values,
    parameters, version, legal basis and explanation (default: the head's language)."""
    result = service.family_eligibility(
        session, family_id=family_id, period=period, actor=actor, purpose=purpose, lang=lang
    )
    return Response(result.model_dump_json(), media_type="application/json")


@router.post("/rules/simulations", response_model=SimulationRead, responses=CONFLICT)
def simulate(
    body: SimulationCreate,
    session: DbSession,
    actor: PolicyOwner,
    purpose: Annotated[
        Purpose, Query(description="Why the sample of gainers and losers is read (audited).")
    ] = Purpose.POLICY_ANALYSIS,
) -> SimulationRead:
    """What-if over the registry: counts and monthly cost by program and region, baseline
    against reform, with gainers and losers and why (the sample is an audited read)."""
    return service.simulate_registry(
        session,
        period=body.period,
        overrides=body.overrides,
        actor=actor,
        purpose=purpose,
        sample=body.sample,
    )
