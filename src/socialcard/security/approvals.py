"""Maker–checker: what creates money, onboards a merchant or mints a citizen key is first a
request, and takes effect only when a second person of another role approves it.

Domains register the kinds they own (`register_kind`) with who may make and who may check a
request and the function that carries it out; the approval runs that function in the
checker's transaction, so the effect and the approval commit together. Every request,
approval and rejection is audited.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.errors import field_error
from socialcard.security import repository
from socialcard.security import service as security_service
from socialcard.security.enums import ApprovalStatus, Purpose
from socialcard.security.errors import (
    ApprovalClosed,
    ApprovalNotAllowed,
    ApprovalNotFound,
    SameApprover,
)
from socialcard.security.models import Approval
from socialcard.security.schemas import Actor, ApprovalRead

# (session, payload, maker, checker) -> the result shown to the checker (JSON-able)
Execute = Callable[[Session, dict[str, Any], Actor, Actor], dict[str, Any]]
# Fields of a result that are shown once to the checker and never stored (a new key).
SECRET_FIELDS = frozenset({"key"})


@dataclass(frozen=True)
class ApprovalKind:
    """A kind of request: who may make it, who may approve it, and what approval does."""

    name: str
    makers: frozenset[str]
    checkers: frozenset[str]
    execute: Execute


_KINDS: dict[str, ApprovalKind] = {}


def register_kind(
    name: str, *, makers: set[str], checkers: set[str], execute: Execute
) -> ApprovalKind:
    """Declare a kind of request (once per process; the domain that owns the effect does)."""
    kind = ApprovalKind(name, frozenset(makers), frozenset(checkers), execute)
    _KINDS[name] = kind
    return kind


def kinds() -> dict[str, ApprovalKind]:
    """The registered kinds."""
    return dict(_KINDS)


def _kind(name: str) -> ApprovalKind:
    found = _KINDS.get(name)
    if found is None:
        raise ApprovalNotFound(f"no kind of request {name!r}")
    return found


def _read(approval: Approval, result: dict[str, Any] | None = None) -> ApprovalRead:
    fields = {name: getattr(approval, name) for name in ApprovalRead.model_fields}
    if result is None and approval.result:
        result = json.loads(approval.result)
    read = ApprovalRead.model_validate({**fields, "result": result})
    if approval.status == ApprovalStatus.PENDING and approval.expires_at <= utcnow():
        read.status = ApprovalStatus.EXPIRED.value
    return read


def request(
    session: Session, *, actor: Actor, kind: str, payload: dict[str, Any], summary: str
) -> ApprovalRead:
    """File a request (audited); nothing takes effect until a checker approves it."""
    spec = _kind(kind)
    if actor.role not in spec.makers:
        raise ApprovalNotAllowed(
            f"role {actor.role!r} may not request {kind}; makers: {', '.join(sorted(spec.makers))}"
        )
    now = utcnow()
    approval = Approval(
        kind=kind,
        status=ApprovalStatus.PENDING.value,
        summary=summary[:300],
        payload=json.dumps(payload, sort_keys=True),
        maker_key_id=actor.key_id,
        maker_name=actor.name,
        maker_role=actor.role,
        created_at=now,
        expires_at=now + timedelta(hours=get_settings().security.approval_ttl_hours),
    )
    repository.add_approval(session, approval)
    security_service.record_access(
        session,
        actor=actor,
        action=f"approval.request.{kind}",
        subject_type="approval",
        subject_ids=[approval.id],
        purpose=Purpose.ADMINISTRATION,
        detail=summary,
    )
    return _read(approval)


def _open(session: Session, approval_id: int) -> Approval:
    approval = repository.approval_for_update(session, approval_id)
    if approval is None:
        raise ApprovalNotFound(
            f"no request {approval_id}", details=[field_error("approval_id", "unknown")]
        )
    if approval.status != ApprovalStatus.PENDING:
        raise ApprovalClosed(f"request {approval_id} is already {approval.status}")
    if approval.expires_at <= utcnow():
        raise ApprovalClosed(f"request {approval_id} has expired; file it again")
    return approval


def _check_independent(approval: Approval, spec: ApprovalKind, actor: Actor) -> None:
    if actor.key_id is None or actor.key_id == approval.maker_key_id:
        raise SameApprover("the maker of a request cannot approve it")
    if actor.role == approval.maker_role:
        raise SameApprover(f"a second person of another role than {approval.maker_role} approves")
    if actor.role not in spec.checkers:
        raise ApprovalNotAllowed(
            f"role {actor.role!r} may not approve {approval.kind}; "
            f"checkers: {', '.join(sorted(spec.checkers))}"
        )


def approve(session: Session, *, actor: Actor, approval_id: int) -> ApprovalRead:
    """Approve a request and carry it out in this transaction (audited). The result is
    shown to the checker; a new key in it is shown only now."""
    approval = _open(session, approval_id)
    spec = _kind(approval.kind)
    _check_independent(approval, spec, actor)
    maker = Actor(key_id=approval.maker_key_id, name=approval.maker_name, role=approval.maker_role)
    result = spec.execute(session, json.loads(approval.payload), maker, actor)
    approval.status = ApprovalStatus.APPROVED.value
    approval.checker_key_id = actor.key_id
    approval.checker_name = actor.name
    approval.checker_role = actor.role
    approval.decided_at = utcnow()
    stored = {k: v for k, v in result.items() if k not in SECRET_FIELDS}
    approval.result = json.dumps(stored, default=str)
    session.flush()
    security_service.record_access(
        session,
        actor=actor,
        action=f"approval.approve.{approval.kind}",
        subject_type="approval",
        subject_ids=[approval.id],
        purpose=Purpose.ADMINISTRATION,
        detail=approval.summary,
    )
    return _read(approval, result)


def reject(session: Session, *, actor: Actor, approval_id: int, reason: str) -> ApprovalRead:
    """Reject a request with a reason (audited); the maker may also withdraw their own."""
    approval = _open(session, approval_id)
    spec = _kind(approval.kind)
    if actor.key_id is None or actor.key_id != approval.maker_key_id:
        _check_independent(approval, spec, actor)
    approval.status = ApprovalStatus.REJECTED.value
    approval.checker_key_id = actor.key_id
    approval.checker_name = actor.name
    approval.checker_role = actor.role
    approval.decided_at = utcnow()
    approval.reason = reason[:500]
    session.flush()
    security_service.record_access(
        session,
        actor=actor,
        action=f"approval.reject.{approval.kind}",
        subject_type="approval",
        subject_ids=[approval.id],
        purpose=Purpose.ADMINISTRATION,
        detail=reason,
    )
    return _read(approval)


def get(session: Session, *, approval_id: int) -> ApprovalRead:
    """One request."""
    approval = repository.approval_by_id(session, approval_id)
    if approval is None:
        raise ApprovalNotFound(
            f"no request {approval_id}", details=[field_error("approval_id", "unknown")]
        )
    return _read(approval)


def list_approvals(
    session: Session, *, status: str | None, kind: str | None, offset: int, limit: int
) -> tuple[list[ApprovalRead], int]:
    """Requests, newest first."""
    rows, total = repository.approvals(
        session, status=status, kind=kind, offset=offset, limit=limit, now=utcnow()
    )
    return [_read(r) for r in rows], total
