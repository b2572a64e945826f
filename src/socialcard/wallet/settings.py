"""Wallet settings (`SOCIALCARD_WALLET__...`)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator


class WalletSettings(BaseModel):
    """Knobs of the social wallet."""

    # A program budget may go negative only when this is set (an overdraft the treasury covers).
    budget_allow_negative: bool = False
    # An authorization not captured or voided within this many minutes expires.
    hold_ttl_minutes: int = Field(default=7 * 24 * 60, ge=1)
    # PostgreSQL connections of the redemption hot path per server process (redemption/fast.py):
    # more than about 16 in all makes the backends contend on a 2-core machine (measured).
    redemption_connections: int = Field(default=8, ge=1, le=200)
    # A day's statement is issued (and frozen) only this long after the day ends, so that no
    # purchase stamped before midnight can still be committing when its totals are taken.
    settlement_grace_minutes: int = Field(default=10, ge=0, le=24 * 60)
    # Settlement statements cover local business days of this IANA time zone (Kazakhstan:
    # one zone, UTC+5 since 2024-03-01; needs tzdata 2024a or later).
    business_timezone: str = "Asia/Almaty"

    @field_validator("business_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value
