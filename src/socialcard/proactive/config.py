"""Proactive settings (env prefix SOCIALCARD_PROACTIVE__) and per-program campaign settings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from socialcard.proactive.errors import UnknownProgram

CAMPAIGNS_FILE = Path(__file__).with_name("campaigns.yaml")


class ProactiveSettings(BaseSettings):
    """Gateway choice and knobs of the proactive flow."""

    model_config = SettingsConfigDict(
        env_prefix="SOCIALCARD_PROACTIVE__", env_file=".env", extra="ignore"
    )

    # The rule pack; unset means the rules domain's `SOCIALCARD_RULES__PACK_PATH`.
    pack_path: Path | None = None
    campaigns_file: Path = CAMPAIGNS_FILE
    gateway: Literal["file", "http"] = "file"
    outbox_file: Path = Path("var") / "sms-outbox.jsonl"
    sms_url: str = "http://127.0.0.1:9900"
    # The provider's API key for the HTTP gateway; no default (the gateway refuses to start).
    sms_api_key: SecretStr | None = None
    sms_timeout_seconds: float = Field(default=5.0, gt=0)
    sms_max_attempts: int = Field(default=5, ge=1)
    sms_backoff_seconds: float = Field(default=0.2, ge=0)
    sms_rate_per_second: float = Field(default=1000.0, gt=0)
    sms_concurrency: int = Field(default=16, ge=1)
    # Messages per request: 1 = POST /messages each; more = POST /messages/batch (per-message
    # idempotency keys and answers). Providers' bulk APIs take hundreds per call.
    sms_batch_size: int = Field(default=1, ge=1, le=1000)
    # Callbacks (delivery receipts, inbound replies) carry an HMAC of the body. The secret the
    # provider was given; unset: the keyring's `sms_webhook` key (`socialcard secrets show`).
    webhook_secret: SecretStr | None = None
    public_base_url: str = "http://127.0.0.1:8000"
    link_ttl_hours: int = Field(default=24 * 7, ge=1)
    chunk_size: int = Field(default=20_000, ge=1)
    # Fault injection for the crash tests: the named point kills the process with SIGKILL.
    crash_at: str | None = None


@lru_cache(maxsize=1)
def get_proactive_settings() -> ProactiveSettings:
    """The proactive settings (cached; tests clear the cache)."""
    return ProactiveSettings()


@dataclass(frozen=True)
class CampaignSettings:
    """How a program's offers behave."""

    program_id: str
    consent_days: int
    reminder_days_before: int
    on_silence: Literal["lapse"]
    cooloff_days: int
    recurring: bool


_KEYS = ("consent_days", "reminder_days_before", "on_silence", "cooloff_days", "recurring")


@lru_cache(maxsize=4)
def _load(path: Path) -> dict[str, CampaignSettings]:
    raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    defaults: dict[str, Any] = raw.get("defaults") or {}
    out: dict[str, CampaignSettings] = {}
    for program_id, values in (raw.get("programs") or {}).items():
        merged = {**defaults, **(values or {})}
        unknown = set(merged) - set(_KEYS)
        if unknown:
            raise ValueError(f"{path}: {program_id}: unknown keys {sorted(unknown)}")
        if merged.get("on_silence") != "lapse":
            raise ValueError(f"{path}: {program_id}: on_silence must be 'lapse'")
        out[program_id] = CampaignSettings(
            program_id=program_id,
            consent_days=int(merged["consent_days"]),
            reminder_days_before=int(merged["reminder_days_before"]),
            on_silence="lapse",
            cooloff_days=int(merged["cooloff_days"]),
            recurring=bool(merged["recurring"]),
        )
    return out


def all_campaign_settings() -> dict[str, CampaignSettings]:
    """Every program that has campaign settings."""
    return _load(get_proactive_settings().campaigns_file)


def campaign_settings(program_id: str) -> CampaignSettings:
    """One program's campaign settings; UnknownProgram when it has none."""
    found = all_campaign_settings().get(program_id)
    if found is None:
        raise UnknownProgram(
            f"no campaign settings for program {program_id!r}",
            details=[{"field": "program_id", "reason": "unknown program"}],
        )
    return found
