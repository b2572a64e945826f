"""Registry HTTP API for operators: persons, families, search, regions."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from socialcard.core.deps import DbSession, IdPath
from socialcard.core.http import PROBLEM_RESPONSES
from socialcard.registry import service
from socialcard.registry.schemas import FactRead, FamilyRead, PersonDetail, PersonPage, RegionRead
from socialcard.security.deps import require_roles
from socialcard.security.enums import Purpose, Role
from socialcard.security.schemas import Actor

router = APIRouter(prefix="/api/v1", tags=["registry"], responses=PROBLEM_RESPONSES)
Operator = Annotated[Actor, Depends(require_roles(Role.OPERATOR))]
PurposeQuery = Annotated[Purpose, Query(description="Why the data is read; kept in the audit log.")]


@router.get("/persons", response_model=PersonPage)
def search_persons(
    session: DbSession,
    actor: Operator,
    purpose: PurposeQuery,
    national_id: Annotated[str | None, Query(max_length=20)] = None,
    name: Annotated[str | None, Query(min_length=2, max_length=100)] = None,
    region: Annotated[str | None, Query(max_length=9, description="KATO code or prefix")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> PersonPage:
    """Search persons by national identifier, name prefix and region."""
    return service.search_persons(
        session,
        actor=actor,
        purpose=purpose,
        national_id=national_id,
        name=name,
        region=region,
        page=page,
        size=size,
    )


@router.get("/persons/{person_id}", response_model=PersonDetail)
def get_person(
    person_id: IdPath,
    session: DbSession,
    actor: Operator,
    purpose: PurposeQuery,
    on: date | None = None,
) -> PersonDetail:
    """A person with their current family and the facts in force on a date (default today)."""
    return service.get_person(session, person_id=person_id, actor=actor, purpose=purpose, on=on)


@router.get("/persons/{person_id}/facts", response_model=list[FactRead])
def get_person_facts(
    person_id: IdPath, session: DbSession, actor: Operator, purpose: PurposeQuery
) -> list[FactRead]:
    """Every fact recorded for a person, with provenance and supersession."""
    return service.person_fact_history(session, person_id=person_id, actor=actor, purpose=purpose)


@router.get("/families/{family_id}", response_model=FamilyRead)
def get_family(
    family_id: IdPath,
    session: DbSession,
    actor: Operator,
    purpose: PurposeQuery,
    on: date | None = None,
    include_past: bool = False,
) -> Response:
    """A family with its members and each member's facts in force on a date."""
    family = service.get_family(
        session,
        family_id=family_id,
        actor=actor,
        purpose=purpose,
        on=on,
        include_past=include_past,
    )
    # The hot read path: the schema is already validated, so serialise it once, directly.
    return Response(family.model_dump_json(), media_type="application/json")


@router.get("/regions", response_model=list[RegionRead])
def list_regions() -> list[RegionRead]:
    """The regions (KATO) known to the registry."""
    return service.list_regions()
