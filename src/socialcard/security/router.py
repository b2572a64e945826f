"""Security HTTP API: issuing API keys (admin) and reading the audit log (auditor)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from socialcard.core.deps import DbSession, IdQuery
from socialcard.core.http import PROBLEM_RESPONSES
from socialcard.core.pagination import Page
from socialcard.security import service
from socialcard.security.deps import require_roles
from socialcard.security.enums import Role
from socialcard.security.schemas import Actor, ApiKeyCreated, AuditEventRead

router = APIRouter(prefix="/api/v1", tags=["security"], responses=PROBLEM_RESPONSES)


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=80)
    role: Role


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=201)
def create_api_key(
    body: ApiKeyCreate,
    session: DbSession,
    _: Annotated[Actor, Depends(require_roles(Role.ADMIN))],
) -> ApiKeyCreated:
    """Issue an API key for a client; the key is shown once."""
    return service.create_api_key(session, name=body.name, role=body.role.value)


@router.get("/audit/events", response_model=Page[AuditEventRead])
def list_audit_events(
    session: DbSession,
    _: Annotated[Actor, Depends(require_roles(Role.AUDITOR))],
    subject_type: str | None = None,
    subject_id: IdQuery = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[AuditEventRead]:
    """Who read whose data, when and why; newest first."""
    rows, total = service.list_audit_events(
        session,
        subject_type=subject_type,
        subject_id=subject_id,
        offset=(page - 1) * size,
        limit=size,
    )
    return Page[AuditEventRead](
        items=[AuditEventRead.model_validate(r) for r in rows], page=page, size=size, total=total
    )
