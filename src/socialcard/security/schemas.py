"""What crosses the API for security."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated caller of a request."""

    key_id: int | None
    name: str
    role: str
    request_id: str | None = None


class ApiKeyCreated(BaseModel):
    """A new key: the secret is shown once and never stored."""

    id: int
    name: str
    role: str
    key: str


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor_name: str
    actor_role: str
    action: str
    subject_type: str
    subject_id: int | None
    purpose: str
    request_id: str | None
