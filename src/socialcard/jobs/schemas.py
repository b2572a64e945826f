"""Job requests and answers: what starts a job of each kind and how its state reads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from socialcard.rules.schemas import RunCreate

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobKind = Literal["rules_run", "campaign", "scoring", "card_sync", "check"]


class RulesRunJob(RunCreate):
    """Evaluate the rule pack over the whole registry and store every decision."""

    kind: Literal["rules_run"]


class CampaignJob(BaseModel):
    """Offer a benefit program for a month to everyone eligible (idempotent)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["campaign"]
    program_id: str = Field(max_length=80)
    period: str = Field(max_length=7, description="YYYY-MM")


class ScoringJob(BaseModel):
    """Score every family's well-being for a month and store the run."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["scoring"]
    period: str = Field(max_length=7, description="YYYY-MM")
    methodology: str | None = Field(default=None, max_length=100)


class CardSyncJob(BaseModel):
    """A card for every person with a status in the month's stored rules run (bulk issuance);
    lost statuses revoke passes."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["card_sync"]
    period: str | None = Field(default=None, max_length=7, description="YYYY-MM (default: now)")


class CheckJob(BaseModel):
    """Verify the wallet ledger's invariants (reads every entry)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["check"]


JobCreate = Annotated[
    RulesRunJob | CampaignJob | ScoringJob | CardSyncJob | CheckJob, Field(discriminator="kind")
]


class JobRead(BaseModel):
    """A job's state: what it does, how far it is and how it ended."""

    id: int
    kind: str
    label: str
    params: dict[str, Any]
    status: JobStatus
    step: str
    done: int
    total: int | None
    percent: int | None = Field(description="done of total in percent, when the total is known")
    result: dict[str, Any] | None
    error: str | None
    error_code: str | None
    started_by: str
    attempts: int
    rules_run_id: int | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None


class JobPage(BaseModel):
    items: list[JobRead]
    page: int
    size: int
    total: int
