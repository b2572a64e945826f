"""What crosses the API for outreach: segments, campaigns, funnels and cases."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from socialcard.outreach.enums import CaseOutcome, ContactChannel


class SegmentCreate(BaseModel):
    """A segment: families of a scoring run by level, region, indicators held, level change."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$", description="e.g. level_e_no_work")
    title: str = Field(min_length=1, max_length=200)
    methodology_id: str | None = Field(
        default=None, max_length=100, description="None: the latest run of any methodology"
    )
    levels: list[str] = Field(default_factory=list, max_length=10)
    region: str | None = Field(default=None, description="a KATO prefix, e.g. 35 or 351010000")
    indicators: list[str] = Field(default_factory=list, max_length=50)
    worsened: bool = False
    condition: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="a family-level rule expression that must also hold, e.g."
        " count(member) filter (where member.age < 3) > 0 and family_income_avg_3m = 0",
    )


class SegmentRead(BaseModel):
    code: str
    title: str
    methodology_id: str | None
    levels: list[str]
    region: str | None
    indicators: list[str]
    worsened: bool
    condition: str | None = None
    builtin: bool
    created_by: str
    created_at: datetime | None


class CampaignStart(BaseModel):
    """Start a segment's outreach on a scoring run (default: its methodology's latest)."""

    model_config = ConfigDict(extra="forbid")

    run_id: int | None = Field(default=None, ge=1, le=2**62)


class SegmentCampaignRead(BaseModel):
    """What a segment campaign did: families in the segment, invitations, skips, cases."""

    segment_code: str
    program_id: str
    campaign_id: int
    wellbeing_run_id: int
    previous_run_id: int | None
    period: str
    families: int
    invited: int
    messages: int
    skipped: dict[str, int]
    cases_opened: int


class SegmentFunnel(BaseModel):
    """A segment's outreach: families (of the segment, with an adult to invite) -> invited ->
    delivered -> answered -> cases by outcome."""

    segment_code: str
    program_id: str
    families: int
    invited: int
    delivered: int
    pending: int
    agreed: int
    refused: int
    lapsed: int
    cancelled: int
    cases: int
    outcomes: dict[str, int]


class ContactRead(BaseModel):
    at: datetime
    channel: ContactChannel
    note: str
    by: str


class CaseRead(BaseModel):
    """A family's case: the invitation it came from, its worker, contacts, outcome, review."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    segment_code: str
    offer_id: int
    offer_status: str
    campaign_id: int
    wellbeing_run_id: int
    family_id: int
    person_id: int
    region_kato: str
    level: str
    assigned_worker: str | None
    contacts: list[ContactRead]
    outcome: CaseOutcome
    next_review_on: date | None
    created_at: datetime
    updated_at: datetime


class CasePage(BaseModel):
    items: list[CaseRead]
    page: int
    size: int
    total: int


class ContactCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: ContactChannel
    note: str = Field(default="", max_length=1000)


class CaseUpdate(BaseModel):
    """Every field optional; a contact is appended to the case's contacts."""

    model_config = ConfigDict(extra="forbid")

    assigned_worker: str | None = Field(default=None, min_length=1, max_length=100)
    contact: ContactCreate | None = None
    outcome: CaseOutcome | None = None
    next_review_on: date | None = None
