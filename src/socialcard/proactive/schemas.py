"""What crosses the proactive API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CampaignRun(BaseModel):
    """Run a campaign for a program and month."""

    period: str = Field(pattern=r"^\d{4}-\d{2}$", examples=["2026-03"])


class CampaignRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    program_id: str
    period: str
    status: str
    eligible: int
    offered: int
    skipped_receiving: int
    skipped_pending: int
    skipped_refused: int
    skipped_deceased: int
    started_at: datetime
    finished_at: datetime | None


class OfferRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    campaign_id: int
    program_id: str
    period: str
    entity_type: str
    entity_id: int
    family_id: int | None
    person_id: int
    region_kato: str
    amount_minor: int
    program_version: str
    legal_basis: str
    explanation: str
    source: str
    status: str
    created_at: datetime
    deadline_at: datetime
    remind_at: datetime | None
    reminded_at: datetime | None
    decided_at: datetime | None


class OfferPage(BaseModel):
    items: list[OfferRead]
    page: int
    size: int
    total: int


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    idempotency_key: str
    offer_id: int | None
    kind: str
    language: str
    body: str
    status: str
    attempts: int
    provider_message_id: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None


class ConsentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    offer_id: int
    decision: str
    channel: str
    actor: str
    text_shown: str
    reply: str | None
    reason: str | None
    at: datetime


class AssignmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    offer_id: int
    program_id: str
    program_version: str
    entity_type: str
    entity_id: int
    person_id: int
    amount_minor: int
    recurring: bool
    from_on: date
    until_on: date | None
    legal_basis: str
    explanation: str
    destination_kind: str
    iban: str | None
    status: str
    end_reason: str | None


class PaymentOrderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    idempotency_key: str
    assignment_id: int
    person_id: int
    program_id: str
    region_kato: str
    period: str
    amount_minor: int
    destination_kind: str
    iban: str | None
    status: str
    created_at: datetime
    paid_at: datetime | None
    external_reference: str | None
    # The assignment's entity (family or person), given with pending orders for the payer.
    entity_type: str | None = None
    entity_id: int | None = None


class OverrideRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    offer_id: int
    action: str
    reason: str
    actor_name: str
    at: datetime


class OfferDetail(OfferRead):
    """An offer with its messages, consent, assignment, payment orders and overrides."""

    messages: list[MessageRead]
    consent: ConsentRead | None
    assignment: AssignmentRead | None
    payment_orders: list[PaymentOrderRead]
    overrides: list[OverrideRead]


class FunnelRow(BaseModel):
    """One campaign and region: eligible -> offered -> delivered -> answered -> assigned -> paid."""

    campaign_id: int
    program_id: str
    period: str
    region_kato: str
    eligible: int
    offered: int
    delivered: int
    pending: int
    agreed: int
    refused: int
    lapsed: int
    cancelled: int
    assigned: int
    paid: int


class OverrideCreate(BaseModel):
    """An operator's decision on an offer; the reason is kept in the audit trail."""

    action: Literal["agree", "refuse", "cancel"]
    reason: str = Field(min_length=10, max_length=2000)
    iban: str | None = Field(default=None, max_length=40)


class InboundSms(BaseModel):
    """A reply forwarded by the SMS provider."""

    id: str = Field(min_length=1, max_length=80, pattern=r"^[^\x00-\x1f]+$")
    sender: str = Field(min_length=5, max_length=20, alias="from")
    text: str = Field(max_length=500)

    model_config = ConfigDict(populate_by_name=True)


class InboundRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    provider_message_id: str
    outcome: str
    offer_id: int | None
    received_at: datetime


class DeliveryReceipt(BaseModel):
    """The provider's delivery report for one message."""

    id: str = Field(min_length=1, max_length=80)
    status: Literal["delivered", "failed"]


class TemplateRead(BaseModel):
    kind: str
    language: str
    body: str
    edited: bool


class TemplateUpdate(BaseModel):
    body: str = Field(min_length=1, max_length=1000)


class JobResult(BaseModel):
    """Counts of what a job did."""

    counts: dict[str, int]


class MarkPaid(BaseModel):
    reference: str = Field(min_length=1, max_length=100)
