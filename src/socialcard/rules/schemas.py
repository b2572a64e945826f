"""What crosses the API (and the service interface) for rules runs, decisions and what-if."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

Lang = Literal["kk", "ru", "en"]
Scalar = str | int | float | bool | None


class RunCreate(BaseModel):
    """A request to evaluate a pack over the whole registry."""

    model_config = ConfigDict(extra="forbid")

    period: str = Field(description="The first month, YYYY-MM (or a year, YYYY).", max_length=7)
    months: int = Field(default=1, ge=1, le=24, description="Consecutive months to evaluate.")
    programs: list[str] | None = Field(default=None, description="Only these programs.")


class RunTimings(BaseModel):
    read: float
    compile: float
    evaluate: float
    write: float


class RunRead(BaseModel):
    """A stored run: what was evaluated, its state, counts and where the time went."""

    id: int
    pack_id: str
    pack_hash: str
    period: str
    months: int
    programs: list[str] | None
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    error: str | None
    families: int
    persons: int
    decisions: int
    eligible: int
    seconds: RunTimings
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    job_id: int | None = Field(
        default=None, description="The job that runs it (in the answer that started it)."
    )


class ProgramSummaryRead(BaseModel):
    """One program in one period of a run."""

    period: str
    program_id: str
    entity: str
    version: str | None
    citation: str
    parameters: dict[str, Any]
    evaluated: int
    eligible: int
    amount_minor: int


class RegionSummaryRead(BaseModel):
    period: str
    program_id: str
    region_kato: str
    evaluated: int
    eligible: int
    amount_minor: int


class RunDetail(RunRead):
    """A run with its summary by program and by region."""

    by_program: list[ProgramSummaryRead]
    by_region: list[RegionSummaryRead]


class RunPage(BaseModel):
    items: list[RunRead]
    page: int
    size: int
    total: int


class StoredDecision(BaseModel):
    """One decision of a stored run, with the values of its conditions and variables.

    `person_id` is the recipient: the person for person programs, the family head for
    family programs. `family_key` addresses the outcome row (family id, or minus the person
    id of a person without a family).
    """

    run_id: int
    period: str
    program_id: str
    entity_type: Literal["family", "person"]
    entity_id: int
    family_key: int
    family_id: int | None
    person_id: int | None
    region_kato: str | None
    eligible: bool
    amount_minor: int | None
    version: str | None
    conditions: dict[str, bool | None]
    variables: dict[str, Any]


class DecisionPage(BaseModel):
    """A page of stored decisions; pages count families (a family's matching decisions of
    its members come together), `total` the matching families."""

    items: list[StoredDecision]
    page: int
    size: int
    total: int


class ExplanationRead(BaseModel):
    """A decision in one language: one sentence per condition and the data behind it."""

    lang: Lang
    title: str
    verdict: str
    amount: str | None
    conditions: list[str]
    variables: list[tuple[str, str]]
    parameters: list[tuple[str, str]]
    version: str
    rounding: str
    legal_basis: str
    citation: str
    text: str


class ExplainedDecision(BaseModel):
    """A decision with its parameters, version, legal basis and explanation."""

    program_id: str
    title: str
    entity_type: Literal["family", "person"]
    entity_id: int
    family_id: int | None
    person_id: int | None
    period: str
    eligible: bool
    amount_minor: int | None
    version: str | None
    citation: str
    conditions: dict[str, bool | None]
    variables: dict[str, Any]
    parameters: dict[str, Any]
    explanation: ExplanationRead


class StoredDecisionExplained(ExplainedDecision):
    run_id: int
    family_key: int
    region_kato: str | None


class FamilyEvaluation(BaseModel):
    """Every program's decision for one family now (its family programs and each member's)."""

    family_id: int
    period: str
    lang: Lang
    pack_id: str
    pack_hash: str
    members: list[int]
    decisions: list[ExplainedDecision]


ParameterName = Annotated[str, Field(min_length=1, max_length=120)]
_OVERRIDE_LIMIT = 10**15


def _override_value(value: Any) -> bool | int | float | str:
    """A what-if value as sent: finite and bounded (the parameter's own declared range is
    checked by the service, which knows the parameter)."""
    if isinstance(value, bool | str) and (not isinstance(value, str) or 1 <= len(value) <= 40):
        return value
    if isinstance(value, int | float) and math.isfinite(value) and abs(value) <= _OVERRIDE_LIMIT:
        return value
    raise ValueError(
        "must be true/false, a finite number within ±10^15, or text of 1 to 40 characters"
    )


OverrideValue = Annotated[
    bool | int | float | str,
    PlainValidator(_override_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "boolean"},
                {"type": "number", "minimum": -_OVERRIDE_LIMIT, "maximum": _OVERRIDE_LIMIT},
                {"type": "string", "minLength": 1, "maxLength": 40},
            ]
        }
    ),
]


class SimulationCreate(BaseModel):
    """A what-if over the registry: parameter overrides against the pack as it is."""

    model_config = ConfigDict(extra="forbid")

    period: str = Field(max_length=7)
    overrides: dict[ParameterName, OverrideValue] = Field(
        min_length=1,
        max_length=100,
        description="parameter -> value; each within the parameter's declared range",
    )
    sample: int = Field(default=5, ge=0, le=100)


class DeltaRead(BaseModel):
    program_id: str
    region_kato: str | None
    baseline_count: int
    reform_count: int
    baseline_minor: int
    reform_minor: int
    count_change: int
    cost_change_minor: int


class ChangeRead(BaseModel):
    program_id: str
    entity_id: int
    region_kato: str | None
    baseline_eligible: bool
    reform_eligible: bool
    baseline_minor: int
    reform_minor: int
    flipped: dict[str, tuple[bool | None, bool | None]]


class SimulationRead(BaseModel):
    period: str
    overrides: dict[str, str]
    totals: list[DeltaRead]
    by_region: list[DeltaRead]
    gainers: list[ChangeRead]
    losers: list[ChangeRead]
    seconds: dict[str, float]
