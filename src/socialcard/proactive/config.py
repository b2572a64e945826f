"""Proactive settings (env prefix SOCIALCARD_PROACTIVE__) and per-program campaign settings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from socialcard.proactive.errors import UnknownProgram
from socialcard.proactive.templates import OUTREACH_PREFIX

CAMPAIGNS_FILE = Path(__file__).with_name("campaigns.yaml")
OUTREACH_SETTINGS = "outreach"  # the file's key for every outreach invitation


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
    # How the demo's simulated citizens answer an offer SMS: agree, refuse, send something
    # unclear (half of those then agree after the help SMS); the rest stay silent. The defaults
    # give the published take-up: in 2025, 529.6 k offer SMS led to 276.2 k assignments without
    # an application, about 52 % (REFERENCE.md §3: baq.kz 13.01.2026; lada.kz 148250).
    demo_agree_share: float = Field(default=0.49, ge=0, le=1)
    demo_refuse_share: float = Field(default=0.10, ge=0, le=1)
    demo_unclear_share: float = Field(default=0.06, ge=0, le=1)

    @model_validator(mode="after")
    def _shares_fit(self) -> ProactiveSettings:
        if self.demo_agree_share + self.demo_refuse_share + self.demo_unclear_share > 1:
            raise ValueError("demo_agree_share + demo_refuse_share + demo_unclear_share > 1")
        return self

    def demo_answer_shares(self) -> tuple[tuple[str, float], ...]:
        """The simulated behaviours and their shares, silent last (what is left)."""
        shares = (
            ("agree", self.demo_agree_share),
            ("refuse", self.demo_refuse_share),
            ("unclear", self.demo_unclear_share),
        )
        return (*shares, ("silent", max(0.0, 1 - sum(share for _, share in shares))))


# Offers and assignments of 2025 across the country (REFERENCE.md §3): the scale a campaign's
# take-up is compared with.
PUBLISHED_TAKE_UP = {"year": 2025, "offers": 529_600, "assignments": 276_200}


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
    programs = dict(raw.get("programs") or {})
    if raw.get("outreach") is not None:
        programs[OUTREACH_SETTINGS] = raw["outreach"]
    for program_id, values in programs.items():
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
    """Every program that has campaign settings (not the outreach invitations': those are
    not benefit campaigns a job runs)."""
    found = _load(get_proactive_settings().campaigns_file)
    return {k: v for k, v in found.items() if k != OUTREACH_SETTINGS}


def campaign_settings(program_id: str) -> CampaignSettings:
    """One program's campaign settings; UnknownProgram when it has none. Every outreach
    invitation (`outreach.<segment>`) takes the file's `outreach` settings."""
    loaded = _load(get_proactive_settings().campaigns_file)
    if program_id.startswith(OUTREACH_PREFIX) and OUTREACH_SETTINGS in loaded:
        return dataclasses.replace(loaded[OUTREACH_SETTINGS], program_id=program_id)
    found = loaded.get(program_id) if program_id != OUTREACH_SETTINGS else None
    if found is None:
        raise UnknownProgram(
            f"no campaign settings for program {program_id!r}",
            details=[{"field": "program_id", "reason": "unknown program"}],
        )
    return found
