"""Settings read from the environment (prefix SOCIALCARD_), one root object with nested parts."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from socialcard.card.settings import CardSettings
from socialcard.wallet.settings import WalletSettings

DEFAULT_SQLITE_PATH = Path("var") / "socialcard.db"


class ServerSettings(BaseModel):
    """Where the HTTP server listens."""

    host: str = "127.0.0.1"
    port: int = 8000


class RegistrySettings(BaseModel):
    """Registry knobs."""

    country: str = "KZ"
    import_batch_rows: int = Field(default=50_000, ge=100)
    page_size_max: int = Field(default=200, ge=1)


class RulesSettings(BaseModel):
    """Rules knobs: the rule pack evaluated by runs, the API and the CLI."""

    pack_path: str = "packs/kz"


class Settings(BaseSettings):
    """Root settings: `SOCIALCARD_DATABASE_URL` picks the store (default: SQLite under ./var)."""

    model_config = SettingsConfigDict(
        env_prefix="SOCIALCARD_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    # Keys API-key hashes and other HMACs. Override in production; the default is for a laptop.
    secret_key: SecretStr = SecretStr("dev-only-secret-change-me")
    log_level: str = "INFO"
    log_json: bool = True
    server: ServerSettings = ServerSettings()
    registry: RegistrySettings = RegistrySettings()
    rules: RulesSettings = RulesSettings()
    wallet: WalletSettings = WalletSettings()
    card: CardSettings = CardSettings()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (cached; tests clear the cache to override)."""
    return Settings()
