"""Settings read from the environment (prefix SOCIALCARD_), one root object with nested parts."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from socialcard.card.settings import CardSettings
from socialcard.wallet.settings import WalletSettings

DEFAULT_SQLITE_PATH = Path("var") / "socialcard.db"


class ServerSettings(BaseModel):
    """Where the HTTP server listens, and what a request may carry."""

    host: str = "127.0.0.1"
    port: int = 8000
    # A request body past this many bytes is refused (413) before it is read; a route may
    # declare a larger limit (`max_body_size=`, e.g. an agency's batch of rows).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # JSON nested deeper than this is refused (422): no API body here nests past 6 levels.
    max_json_depth: int = Field(default=32, ge=4, le=512)


class DatabaseSettings(BaseModel):
    """The connection pool of each server process (`SOCIALCARD_DB__*`).

    Bounded, and failing fast: a request that finds no connection free within `pool_timeout`
    seconds answers 503 with Retry-After instead of queueing (SQLAlchemy's default is 30 s).
    """

    pool_size: int = Field(default=10, ge=1, le=200)
    max_overflow: int = Field(default=20, ge=0, le=200)
    pool_timeout: float = Field(default=2.0, gt=0, le=60)
    retry_after_seconds: float = Field(default=1.0, gt=0, le=600)


class LimitSettings(BaseModel):
    """Rate limits (`SOCIALCARD_LIMITS__*`; requests a second and burst; a rate of 0 turns a
    limit off). Kept per server process (core/ratelimit.py)."""

    # Each API key (operators, agencies, auditors, citizens) and each merchant terminal.
    api_key_rate: float = Field(default=200.0, ge=0)
    api_key_burst: float = Field(default=400.0, ge=1)
    terminal_rate: float = Field(default=200.0, ge=0)
    terminal_burst: float = Field(default=400.0, ge=1)
    # Each client address, for what carries no valid credential: requests without one
    # (consent pages, docs) and every failed authentication (401/403).
    address_rate: float = Field(default=20.0, ge=0)
    address_burst: float = Field(default=200.0, ge=1)


class RegistrySettings(BaseModel):
    """Registry knobs."""

    country: str = "KZ"
    import_batch_rows: int = Field(default=50_000, ge=100)
    page_size_max: int = Field(default=200, ge=1)


class RulesSettings(BaseModel):
    """Rules knobs: the rule pack evaluated by runs, the API and the CLI."""

    pack_path: str = "packs/kz"


class JobSettings(BaseModel):
    """Stored jobs: how often a running job's process writes its heartbeat and progress, how
    old a heartbeat of another machine's job may be before the job counts as interrupted, and
    how often a worker reads whether its job was asked to stop."""

    heartbeat_seconds: float = Field(default=2.0, gt=0)
    stale_seconds: float = Field(default=60.0, gt=0)
    cancel_poll_seconds: float = Field(default=1.0, ge=0)


class WebSettings(BaseModel):
    """The pages: cookies are Secure unless this is turned off (plain http on a LAN test)."""

    cookie_secure: bool = True


class SecuritySettings(BaseModel):
    """Secrets, keys and approvals (`SOCIALCARD_SECURITY__...`)."""

    # A keyring file of explicit secrets (see security/keyring.py); unset: SOCIALCARD_SECRET_KEY,
    # else (development only) a keyring generated beside the store on its first start.
    secrets_file: Path | None = None
    # A verified API or terminal key is trusted this long without a lookup: a revocation in
    # another process takes effect within it (in the revoking process at once).
    auth_cache_seconds: float = Field(default=30.0, ge=0, le=300)
    # PostgreSQL: how often a server process chains the committed audit rows (0: only
    # `socialcard audit verify` does); SQLite chains them as they commit.
    audit_seal_seconds: float = Field(default=1.0, ge=0, le=3600)
    # A maker's request waits this long for a checker, then lapses.
    approval_ttl_hours: int = Field(default=72, ge=1, le=24 * 90)
    # One-time codes sent by SMS (account confirmation, citizen enrolment).
    code_ttl_minutes: int = Field(default=10, ge=1, le=24 * 60)
    code_max_attempts: int = Field(default=5, ge=1, le=20)


class Settings(BaseSettings):
    """Root settings: `SOCIALCARD_DATABASE_URL` picks the store (default: SQLite under ./var)."""

    model_config = SettingsConfigDict(
        env_prefix="SOCIALCARD_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    # "production" refuses to start without explicit secrets (security/keyring.py).
    environment: Literal["development", "production"] = "development"
    # A master secret every keyring key is derived from (per purpose); no default on purpose.
    secret_key: SecretStr | None = None
    # Earlier master secrets, comma-separated: what was signed under them still verifies.
    secret_key_previous: SecretStr | None = None
    log_level: str = "INFO"
    log_json: bool = True
    server: ServerSettings = ServerSettings()
    db: DatabaseSettings = DatabaseSettings()
    limits: LimitSettings = LimitSettings()
    registry: RegistrySettings = RegistrySettings()
    rules: RulesSettings = RulesSettings()
    wallet: WalletSettings = WalletSettings()
    web: WebSettings = WebSettings()
    jobs: JobSettings = JobSettings()
    card: CardSettings = CardSettings()
    security: SecuritySettings = SecuritySettings()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (cached; tests clear the cache to override)."""
    return Settings()
