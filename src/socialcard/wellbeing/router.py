"""Well-being HTTP API: runs, counts per level and region, family lists, changes, cards."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse

from socialcard.core.config import get_settings
from socialcard.core.deps import DbSession, StreamingDbSession
from socialcard.core.http import PROBLEM_JSON, PROBLEM_RESPONSES
from socialcard.security.deps import require_roles
from socialcard.security.enums import Purpose, Role
from socialcard.security.schemas import Actor
from socialcard.wellbeing import service
from socialcard.wellbeing.schemas import (
    ComparisonRead,
    ComparisonRequest,
    FamilyCard,
    FamilyScorePage,
    LevelChangePage,
    MethodologyRead,
    RegionLevels,
    RunPage,
    RunRead,
)

router = APIRouter(prefix="/api/v1/wellbeing", tags=["wellbeing"], responses=PROBLEM_RESPONSES)
Reader = Annotated[Actor, Depends(require_roles(Role.OPERATOR, Role.POLICY_OWNER))]
Operator = Annotated[Actor, Depends(require_roles(Role.OPERATOR))]
PurposeQuery = Annotated[Purpose, Query(description="Why the data is read; kept in the audit log.")]
LevelQuery = Annotated[str | None, Query(max_length=4, description="A level code, e.g. E.")]
RegionQuery = Annotated[str | None, Query(max_length=9, description="KATO code or prefix.")]
PageQuery = Annotated[int, Query(ge=1, le=1_000_000)]
SizeQuery = Annotated[int, Query(ge=1, le=200)]
RunId = Annotated[int, Path(ge=1, le=2**62)]
FamilyId = Annotated[int, Path(ge=1, le=2**62)]
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Methodology invalid or not in force", "content": {PROBLEM_JSON: {}}}
}


@router.get("/methodologies", response_model=list[MethodologyRead], responses=CONFLICT)
def list_methodologies(actor: Reader) -> list[MethodologyRead]:
    """The well-being methodologies of the rule pack, checked, with their levels."""
    return service.list_methodologies()


@router.post("/comparisons", response_model=ComparisonRead, responses=CONFLICT)
def compare(body: ComparisonRequest, actor: Reader) -> ComparisonRead:
    """Two methodologies over the registry for a period: counts per level under each and the
    families moving between levels (counts only; nothing stored)."""
    return service.compare_registry(
        database_url=get_settings().database_url,
        baseline=body.baseline,
        reform=body.reform,
        period=body.period,
    )


@router.get("/runs", response_model=RunPage)
def list_runs(
    session: DbSession,
    actor: Reader,
    methodology_id: Annotated[str | None, Query(max_length=100)] = None,
    page: PageQuery = 1,
    size: SizeQuery = 50,
) -> RunPage:
    """Scoring runs, newest first, each with its counts per level."""
    return service.list_runs(session, methodology_id=methodology_id, page=page, size=size)


@router.get("/runs/{run_id}", response_model=RunRead)
def get_run(run_id: RunId, session: DbSession, actor: Reader) -> RunRead:
    """A run: methodology and its hash, period, and the number of families in each level."""
    return service.get_run(session, run_id=run_id)


@router.get("/runs/{run_id}/regions", response_model=list[RegionLevels])
def region_counts(run_id: RunId, session: DbSession, actor: Reader) -> list[RegionLevels]:
    """Families per level in each region of a run."""
    return service.region_counts(session, run_id=run_id)


@router.get("/runs/{run_id}/families", response_model=FamilyScorePage)
def list_families(
    run_id: RunId,
    session: DbSession,
    actor: Operator,
    purpose: PurposeQuery,
    level: LevelQuery = None,
    region: RegionQuery = None,
    page: PageQuery = 1,
    size: SizeQuery = 50,
) -> FamilyScorePage:
    """Families of a run in a level (and region), by family id; every read is audited."""
    return service.list_families(
        session,
        run_id=run_id,
        actor=actor,
        purpose=purpose,
        level=level,
        region=region,
        page=page,
        size=size,
    )


@router.get(
    "/runs/{run_id}/families.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV, streamed"}},
)
def export_families(
    run_id: RunId,
    session: DbSession,
    reader: StreamingDbSession,
    actor: Operator,
    purpose: PurposeQuery,
    level: LevelQuery = None,
    region: RegionQuery = None,
) -> StreamingResponse:
    """The families of a run in a level (and region) as CSV, streamed; every member of every
    family is audited, and the audit is committed before the first byte is sent."""
    lines = service.export_families_csv(
        session,
        run_id=run_id,
        actor=actor,
        purpose=purpose,
        reader=reader,
        level=level,
        region=region,
    )
    name = f"wellbeing-run-{run_id}-{level or 'all'}.csv"
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/runs/{run_id}/changes", response_model=LevelChangePage)
def level_changes(
    run_id: RunId,
    session: DbSession,
    actor: Operator,
    purpose: PurposeQuery,
    page: PageQuery = 1,
    size: SizeQuery = 50,
) -> LevelChangePage:
    """Families whose level changed since the previous run of the same methodology."""
    return service.level_changes(
        session, run_id=run_id, actor=actor, purpose=purpose, page=page, size=size
    )


@router.get("/families/{family_id}", response_model=FamilyCard)
def family_card(
    family_id: FamilyId,
    session: DbSession,
    actor: Operator,
    purpose: PurposeQuery,
    run_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> FamilyCard:
    """A family's card: level, score per dimension, each indicator with its points (kk/ru/en)."""
    return service.family_card(
        session, family_id=family_id, actor=actor, purpose=purpose, run_id=run_id
    )
