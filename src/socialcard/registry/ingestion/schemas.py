"""What crosses the API for ingestion: batches, their rejected rows and the declared sources."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from socialcard.core.pagination import Page

BATCH_KEY_PATTERN = r"^[A-Za-z0-9._:\-]{1,100}$"
AGENCY_PATTERN = r"^[a-z0-9_.\-]{1,40}$"


class BatchCreate(BaseModel):
    """A batch of rows from an agency's system. Sending the same batch_key again is a no-op."""

    model_config = ConfigDict(extra="forbid")

    batch_key: str | None = Field(
        default=None,
        pattern=BATCH_KEY_PATTERN,
        description="the client's key for this batch (or send the Idempotency-Key header)",
    )
    agency: str | None = Field(
        default=None,
        pattern=AGENCY_PATTERN,
        description="the sending agency; the source's default agency when absent",
    )
    rows: list[dict[str, Any]] = Field(description="the rows, one JSON object each")


class RejectedRow(BaseModel):
    """A quarantined row: its number in the batch, the field and the reason."""

    row_number: int
    field: str
    reason: str


class BatchResult(BaseModel):
    """A batch and what happened to its rows."""

    id: int
    source: str
    agency: str
    batch_key: str
    status: str
    rows_total: int
    rows_accepted: int
    rows_rejected: int
    error: str | None
    received_at: datetime
    rejected: list[RejectedRow] = Field(
        description="rejected rows in row order (the first ones; the quarantine has them all)"
    )
    rejected_truncated: bool = False


class QuarantinedRowRead(BaseModel):
    """A quarantined row with the row as it was sent."""

    model_config = ConfigDict(from_attributes=True)

    row_number: int
    field: str
    reason: str
    raw: Any
    created_at: datetime


QuarantinePage = Page[QuarantinedRowRead]


class FieldRead(BaseModel):
    name: str
    type: str
    required: bool
    description: str


class SourceRead(BaseModel):
    """A declared source: its columns and what its rows become."""

    name: str
    kind: str
    fact_kind: str | None
    default_agency: str
    description: str
    fields: list[FieldRead]
