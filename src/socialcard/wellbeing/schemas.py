"""What crosses the API for the digital family card (well-being)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class Texts(BaseModel):
    """A text in Kazakh, Russian and English."""

    kk: str
    ru: str
    en: str


class LevelRead(BaseModel):
    """A level of the methodology: its code, names, cut-off, its source and how sure that source
    is of the name (`name_confidence`) and of the cut-off (`cut_confidence`; none for the last
    level): confirmed, reported or unconfirmed. `confirmed` when both are."""

    code: str
    name: Texts
    min_score: int | None
    confirmed: bool
    source: str = ""
    name_confidence: str = "unconfirmed"
    cut_confidence: str | None = "unconfirmed"


class LevelCount(BaseModel):
    level: str
    name: Texts
    families: int


class RunRead(BaseModel):
    """A scoring run with its counts per level."""

    id: int
    methodology_id: str
    methodology_sha256: str
    period: str
    families: int
    levels: list[LevelCount]
    timings: dict[str, float]
    started_at: datetime
    finished_at: datetime


class RunPage(BaseModel):
    items: list[RunRead]
    page: int
    size: int
    total: int


class RegionLevels(BaseModel):
    """Counts per level in one region (KATO)."""

    region_kato: str | None
    region_name: Texts | None
    families: int
    levels: dict[str, int]


class FamilyScore(BaseModel):
    """One family's result in a run."""

    model_config = ConfigDict(from_attributes=True)

    family_id: int
    region_kato: str | None
    level: str
    score: int
    economic: int
    social: int
    housing: int
    health: int
    education: int


class FamilyScorePage(BaseModel):
    run_id: int
    level: str | None
    region: str | None
    items: list[FamilyScore]
    page: int
    size: int
    total: int


class LevelChange(BaseModel):
    family_id: int
    region_kato: str | None
    from_level: str
    to_level: str
    from_score: int
    to_score: int


class Transition(BaseModel):
    from_level: str
    to_level: str
    families: int


class LevelChangePage(BaseModel):
    """Families whose level differs between a run and the previous run of its methodology."""

    run_id: int
    previous_run_id: int | None
    transitions: list[Transition]
    items: list[LevelChange]
    page: int
    size: int
    total: int


class ValueRead(BaseModel):
    """A value an indicator reads, as a number and as a citizen reads it."""

    name: str
    title: Texts
    value: int | float | bool | str | None
    text: Texts


class IndicatorCard(BaseModel):
    """One indicator on a family's card: whether it held and the points it gave, with its
    source and how sure that source is of the criterion and of its points."""

    code: str
    title: Texts
    source: str = ""
    confidence: str = "unconfirmed"
    points_confidence: str = "unconfirmed"
    expression: str
    points: int
    holds: bool | None
    points_awarded: int
    # From the registry as it is now, evaluated for the run's period (None when not computed).
    holds_now: bool | None = None
    values: list[ValueRead] = []


class DimensionCard(BaseModel):
    code: str
    title: Texts
    score: int
    indicators: list[IndicatorCard]


class FamilyCard(BaseModel):
    """A family's well-being card: level, score per dimension and every indicator, explained."""

    run_id: int
    methodology_id: str
    methodology_title: Texts
    legal_basis: Texts
    citation: str
    unverified: str
    period: str
    family_id: int
    region_kato: str | None
    level: LevelRead
    score: int
    dimensions: list[DimensionCard]
    # Why `values` may be missing: empty when they were computed from the current registry.
    values_note: str = ""


class MethodologyRead(BaseModel):
    """A methodology file as loaded: id, titles, basis, levels and indicator count."""

    id: str
    title: Texts
    default: bool
    sha256: str
    effective_from: str
    citation: str
    unverified: str
    levels: list[LevelRead]
    indicators: int


class LevelMove(BaseModel):
    """Families at `from_level` under the baseline and at `to_level` under the reform."""

    from_level: str
    to_level: str
    families: int


class ComparedMethodology(BaseModel):
    id: str
    sha256: str
    effective_from: str
    title: Texts
    levels: list[LevelCount]


_METHODOLOGY_ID = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"


class ComparisonRequest(BaseModel):
    """Two methodologies by id (each the version in force in the period; the baseline by
    default the pack's default methodology) over one period."""

    model_config = ConfigDict(extra="forbid")

    baseline: str | None = Field(default=None, max_length=100, pattern=_METHODOLOGY_ID)
    reform: str = Field(max_length=100, pattern=_METHODOLOGY_ID)
    period: str = Field(pattern=r"^\d{4}-\d{2}$", examples=["2026-03"])


class ComparisonRead(BaseModel):
    """Two methodologies scored over the same registry snapshot: counts per level under each,
    and families moving between levels. `moved`, `better` and `worse` are given when both
    share one scale of level codes (a new version of one methodology); otherwise null."""

    period: str
    families: int
    baseline: ComparedMethodology
    reform: ComparedMethodology
    moves: list[LevelMove]
    moved: int | None
    better: int | None
    worse: int | None
