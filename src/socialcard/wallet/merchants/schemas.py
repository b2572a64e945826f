"""What crosses the API for merchants."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool


class MerchantCreate(BaseModel):
    bin: str = Field(min_length=12, max_length=12, description="БИН, 12 digits with check digit")
    name: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=30)
    region_kato: str | None = Field(default=None, min_length=9, max_length=9)
    licensed: StrictBool = False


class MerchantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    bin: str
    name: str
    category: str
    region_kato: str | None
    licensed: bool
    accepts: list[str] = []


class TerminalCreate(BaseModel):
    code: str = Field(min_length=1, max_length=40)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TerminalCreated(BaseModel):
    """A new terminal: its key is shown once and stored only as a keyed hash."""

    id: int
    merchant_id: int
    code: str
    key: str
    expires_at: datetime | None = None


class TerminalRead(BaseModel):
    """A terminal as listed (never its key)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    merchant_id: int
    code: str
    key_prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
