"""What crosses the API for the wallet as a whole."""

from __future__ import annotations

from pydantic import BaseModel, Field, StrictInt


class CheckRead(BaseModel):
    """The result of `wallet check`: every broken invariant, one line each."""

    ok: bool
    problems: list[str]
    counts: dict[str, int]


class CitizenKeyCreate(BaseModel):
    person_id: StrictInt = Field(gt=0, le=2**62)
