"""What crosses the card API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TARIFF_PATTERN = r"^[a-z][a-z0-9_]{2,39}$"


class CardRead(BaseModel):
    id: int
    person_id: int
    region_kato: str
    state: str
    statuses: list[str]
    statuses_period: str
    tariffs: list[str]
    chip: bool
    issued_at: datetime


class SyncResult(BaseModel):
    period: str
    run_id: int
    persons_with_status: int
    created: int
    updated: int
    lost_status: int
    batches_revoked: int


class PassIssueRequest(BaseModel):
    """The holder's public keys, one per single-use copy (the wallet app keeps the private
    keys)."""

    model_config = ConfigDict(extra="forbid")

    holder_keys: list[dict[str, Any]] = Field(min_length=1, max_length=50)


class PassBatchRead(BaseModel):
    batch_id: int
    tariffs: list[str]
    expires_at: datetime
    passes: list[str]


class VerifyRequest(BaseModel):
    """A presentation (the pass with one disclosure and a key-binding JWT) and the tariff."""

    model_config = ConfigDict(extra="forbid")

    presentation: str = Field(min_length=1, max_length=16_384)
    tariff: str = Field(pattern=TARIFF_PATTERN)


class VerifyResponse(BaseModel):
    """All a merchant learns."""

    model_config = ConfigDict(extra="forbid")

    result: Literal["valid", "invalid", "cannot_verify"]
    valid_until: datetime | None


class Consent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notice_version: str = Field(min_length=1, max_length=20)
    channel: Literal["app", "kiosk", "office", "sms"]


class BankLinkCreate(BaseModel):
    """A bank card by its payment account reference or its number (never stored)."""

    model_config = ConfigDict(extra="forbid")

    par: str | None = Field(default=None, max_length=64)
    pan: str | None = Field(default=None, max_length=64)
    consent: Consent | None = None


class BankLinkRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    card_id: int
    kind: str
    active: bool
    consent_notice_version: str
    consent_at: datetime
    consent_channel: str
    linked_at: datetime
    unlinked_at: datetime | None


class BankCheckRequest(BaseModel):
    """An acquirer's or till's question: this card, tariff X?"""

    model_config = ConfigDict(extra="forbid")

    par: str | None = Field(default=None, max_length=64)
    pan: str | None = Field(default=None, max_length=64)
    tariff: str = Field(pattern=TARIFF_PATTERN)


class BankCheckResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: Literal["yes", "no"]


class PinSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pin: str = Field(min_length=1, max_length=16)


class ChipIssued(BaseModel):
    """The chip's identifier and key, written onto the chip once (the key is not kept)."""

    card_id: int
    chip_id: str
    chip_key: str


class KioskStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chip_id: str = Field(min_length=1, max_length=32)
    chip_key: str = Field(min_length=1, max_length=64)
    pin: str = Field(min_length=1, max_length=16)


class KioskSessionStarted(BaseModel):
    token: str
    idle_timeout_seconds: int


class StatusView(BaseModel):
    code: str
    title: str


class TariffView(BaseModel):
    code: str
    title: str


class DecisionView(BaseModel):
    program_id: str
    title: str
    eligible: bool
    amount_minor: int | None
    explanation: list[str]


class KioskView(BaseModel):
    """What a kiosk shows the citizen; assembled per read, never stored."""

    card_id: int
    statuses: list[StatusView]
    tariffs: list[TariffView]
    decisions: list[DecisionView]
    offers: list[dict[str, Any]]
    wallet: dict[str, Any]


class HolderCard(BaseModel):
    """A holder's own card as their pages show it: statuses and tariffs with titles."""

    card: CardRead
    statuses: list[StatusView]
    tariffs: list[TariffView]


class PassShown(BaseModel):
    """One single-use pass copy presented with one tariff, as a QR code for a till."""

    holder: HolderCard
    tariff: TariffView
    presentation: str
    qr_svg: str
    qr_version: int
    presentation_bytes: int
    pass_expires_at: datetime
    binding_valid_seconds: int


class ListPublished(BaseModel):
    signed: int
    lists: int


class EventsProcessed(BaseModel):
    events: int
    cards_changed: int
    batches_revoked: int
