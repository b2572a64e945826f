"""What crosses the API for security."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from socialcard.security.enums import Role

AGENCY_NAME_PATTERN = r"^[a-z0-9_.\-]{1,40}$"


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated caller of a request, with what its key is bound to."""

    key_id: int | None
    name: str
    role: str
    request_id: str | None = None
    client_request_id: str | None = None
    person_id: int | None = None  # citizen keys
    merchant_id: int | None = None  # merchant keys
    agency: str | None = None  # agency keys: the agency it speaks for
    sources: frozenset[str] = field(default_factory=frozenset)  # agency keys: what it may push
    expires_at: datetime | None = None


class ApiKeyCreate(BaseModel):
    """A key to issue. Agency keys name their agency and sources; merchant keys their
    merchant. Citizen keys are not issued here (enrolment or an approved request)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    role: Role
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    agency: str | None = Field(default=None, pattern=AGENCY_NAME_PATTERN)
    sources: list[str] | None = Field(default=None, max_length=20)
    merchant_id: int | None = Field(default=None, ge=1, le=2**62)


class ApiKeyCreated(BaseModel):
    """A new key: the secret is shown once and never stored."""

    id: int
    name: str
    role: str
    key: str
    expires_at: datetime | None = None


class ApiKeyRead(BaseModel):
    """A key as listed (never the secret)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: str
    key_prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    person_id: int | None
    merchant_id: int | None
    agency: str | None
    sources: str | None


class AuditEventRead(BaseModel):
    """An audit row as an auditor sees it, with the key that acted and the chain fields."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    seq: int | None  # None until the row is sealed into the chain
    at: datetime
    actor_key_id: int | None
    actor_name: str
    actor_role: str
    action: str
    subject_type: str
    subject_id: int | None
    purpose: str
    request_id: str | None
    client_request_id: str | None
    detail: str | None
    row_mac: str
    row_hash: str | None


class AccessRead(BaseModel):
    """One read or change of my data, as the citizen sees it."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor_name: str
    actor_role: str
    action: str
    purpose: str


class ChainCheck(BaseModel):
    """The outcome of checking the audit chain: rows chained, rows not sealed yet, problems."""

    ok: bool
    rows: int
    pending: int = 0
    problems: list[str]


class ApprovalRead(BaseModel):
    """A maker–checker request."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    status: str
    summary: str
    maker_key_id: int | None
    maker_name: str
    maker_role: str
    created_at: datetime
    expires_at: datetime
    checker_key_id: int | None
    checker_name: str | None
    checker_role: str | None
    decided_at: datetime | None
    reason: str | None
    result: dict[str, Any] | None = None


class ApprovalDecision(BaseModel):
    """A checker's rejection (with its reason)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500)
