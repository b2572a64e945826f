"""Security HTTP API: API keys (admin), the audit log and its chain (auditor), maker–checker
requests, and a citizen's own access log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, status

from socialcard.core.deps import DbSession, IdQuery
from socialcard.core.http import PROBLEM_JSON, PROBLEM_RESPONSES
from socialcard.core.pagination import Page
from socialcard.security import approvals, service
from socialcard.security.deps import require_roles
from socialcard.security.enums import ApprovalStatus, Role
from socialcard.security.schemas import (
    AccessRead,
    Actor,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    ApprovalDecision,
    ApprovalRead,
    AuditEventRead,
    ChainCheck,
)

router = APIRouter(prefix="/api/v1", tags=["security"], responses=PROBLEM_RESPONSES)
Admin = Annotated[Actor, Depends(require_roles(Role.ADMIN))]
Auditor = Annotated[Actor, Depends(require_roles(Role.AUDITOR))]
Citizen = Annotated[Actor, Depends(require_roles(Role.CITIZEN))]
# Who files or decides maker–checker requests (each kind narrows it further).
Staff = Annotated[
    Actor, Depends(require_roles(Role.OPERATOR, Role.POLICY_OWNER, Role.ADMIN, Role.AUDITOR))
]
Decider = Annotated[Actor, Depends(require_roles(Role.OPERATOR, Role.POLICY_OWNER, Role.ADMIN))]
KeyId = Annotated[int, Path(ge=1, le=2**62)]
ApprovalId = Annotated[int, Path(ge=1, le=2**62)]
PageQuery = Annotated[int, Query(ge=1, le=100_000)]
SizeQuery = Annotated[int, Query(ge=1, le=200)]
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Already decided or expired", "content": {PROBLEM_JSON: {}}}
}


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
def create_api_key(body: ApiKeyCreate, session: DbSession, actor: Admin) -> ApiKeyCreated:
    """Issue an API key for a client (audited); the key is shown once. Agency keys name their
    agency and sources, merchant keys their merchant; citizen keys are not issued here."""
    return service.create_api_key(
        session,
        name=body.name,
        role=body.role.value,
        actor=actor,
        expires_in_days=body.expires_in_days,
        agency=body.agency,
        sources=body.sources,
        merchant_id=body.merchant_id,
    )


@router.get("/api-keys", response_model=Page[ApiKeyRead])
def list_api_keys(
    session: DbSession,
    actor: Admin,
    role: Role | None = None,
    include_revoked: bool = False,
    page: PageQuery = 1,
    size: SizeQuery = 50,
) -> Page[ApiKeyRead]:
    """The keys issued (never their secrets)."""
    items, total = service.list_api_keys(
        session,
        role=role.value if role else None,
        include_revoked=include_revoked,
        offset=(page - 1) * size,
        limit=size,
    )
    return Page[ApiKeyRead](items=items, page=page, size=size, total=total)


@router.post("/api-keys/{key_id}/revoke", response_model=ApiKeyRead)
def revoke_api_key(key_id: KeyId, session: DbSession, actor: Admin) -> ApiKeyRead:
    """Revoke a key (audited): refused at once by this server, everywhere within the cache
    time (`security.auth_cache_seconds`)."""
    return service.revoke_api_key(session, key_id=key_id, actor=actor)


@router.get("/audit/events", response_model=Page[AuditEventRead])
def list_audit_events(
    session: DbSession,
    _: Auditor,
    subject_type: Annotated[str | None, Query(max_length=20)] = None,
    subject_id: IdQuery = None,
    actor_key_id: IdQuery = None,
    page: PageQuery = 1,
    size: SizeQuery = 50,
) -> Page[AuditEventRead]:
    """Who read or changed whose data, when, why and with which key; newest first."""
    rows, total = service.list_audit_events(
        session,
        subject_type=subject_type,
        subject_id=subject_id,
        actor_key_id=actor_key_id,
        offset=(page - 1) * size,
        limit=size,
    )
    return Page[AuditEventRead](
        items=[AuditEventRead.model_validate(r) for r in rows], page=page, size=size, total=total
    )


@router.get("/audit/verify", response_model=ChainCheck)
def verify_audit_chain(session: DbSession, _: Auditor) -> ChainCheck:
    """Recompute the audit log's hash chain: every changed, inserted or deleted row."""
    return service.verify_audit_chain(session)


@router.get("/me/access-log", response_model=Page[AccessRead])
def my_access_log(
    session: DbSession, actor: Citizen, page: PageQuery = 1, size: SizeQuery = 50
) -> Page[AccessRead]:
    """Who read or changed my data, when and why (newest first)."""
    items, total = service.access_log(session, actor=actor, offset=(page - 1) * size, limit=size)
    return Page[AccessRead](items=items, page=page, size=size, total=total)


@router.get("/approvals", response_model=Page[ApprovalRead])
def list_approvals(
    session: DbSession,
    _: Staff,
    status: ApprovalStatus | None = None,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    page: PageQuery = 1,
    size: SizeQuery = 50,
) -> Page[ApprovalRead]:
    """Maker–checker requests, newest first."""
    items, total = approvals.list_approvals(
        session,
        status=status.value if status else None,
        kind=kind,
        offset=(page - 1) * size,
        limit=size,
    )
    return Page[ApprovalRead](items=items, page=page, size=size, total=total)


@router.get("/approvals/{approval_id}", response_model=ApprovalRead)
def get_approval(approval_id: ApprovalId, session: DbSession, _: Staff) -> ApprovalRead:
    """One request with its maker, checker and outcome."""
    return approvals.get(session, approval_id=approval_id)


@router.post("/approvals/{approval_id}/approve", response_model=ApprovalRead, responses=_CONFLICT)
def approve(approval_id: ApprovalId, session: DbSession, actor: Decider) -> ApprovalRead:
    """Approve a request made by someone of another role; it takes effect now (audited)."""
    return approvals.approve(session, actor=actor, approval_id=approval_id)


@router.post("/approvals/{approval_id}/reject", response_model=ApprovalRead, responses=_CONFLICT)
def reject(
    approval_id: ApprovalId, body: ApprovalDecision, session: DbSession, actor: Decider
) -> ApprovalRead:
    """Reject a request with a reason, or withdraw one's own (audited)."""
    return approvals.reject(session, actor=actor, approval_id=approval_id, reason=body.reason)
