"""Card settings (`SOCIALCARD_CARD__...`)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class CardSettings(BaseModel):
    """Knobs of the virtual social card."""

    # The issuer's public base URL: the passes' `iss` and the status lists' URIs start with it.
    # Short on purpose: every character is in each QR code.
    issuer: str = "http://127.0.0.1:8000"
    # The audience a key-binding JWT names: this platform's verifiers.
    audience: str = "socialcard"
    # Where the issuer's ES256 keys live (a private directory; see card/keys.py).
    key_dir: str = "var/keys/card"
    # Passes: valid for days, issued in batches of single-use copies.
    pass_days: int = Field(default=7, ge=1, le=90)
    batch_size: int = Field(default=4, ge=1, le=50)
    # Selectively disclosable tariffs are padded with decoys to a multiple of this.
    digests_at_least: int = Field(default=4, ge=1, le=16)
    # Status lists: entries per list (at least 131,072, the herd an index hides in).
    list_size: int = Field(default=1_048_576, ge=131_072, le=16 * 1024 * 1024)
    list_ttl_seconds: int = Field(default=30, ge=1)
    list_exp_seconds: int = Field(default=86_400, ge=60)
    # The revocation job re-signs an unchanged list this often, so verifiers see it fresh.
    list_republish_seconds: int = Field(default=300, ge=10)
    # A verifier answers "cannot verify" with a list older (from its iat) than this.
    online_max_age_seconds: int = Field(default=900, ge=10)
    offline_max_age_seconds: int = Field(default=3_600, ge=10)
    # The online verifier's replay cache, shared by the server's worker processes (a
    # memory-mapped file); empty: one cache per process.
    replay_file: str | None = "var/card-replay.bin"
    # The online verifier re-reads the published lists this often.
    refresh_seconds: float = Field(default=5.0, gt=0)
    # The revocation job polls the registry's event outbox this often.
    watch_interval_seconds: float = Field(default=2.0, gt=0)
    # Secrets: the PIN pepper and the bank-card token key. When unset they are the keyring's
    # current `card_pin` / `card_pan` keys (security/keyring.py), never written anywhere.
    pin_pepper: SecretStr | None = None
    pan_key: SecretStr | None = None
    pin_tries: int = Field(default=3, ge=1, le=10)
    # The version of the notice a citizen consents to when linking a bank card.
    consent_notice_version: str = "2026-12"
    kiosk_idle_seconds: int = Field(default=120, ge=5)
    # Requests per minute, per card, per kiosk and per client address.
    rate_per_card: int = Field(default=10, ge=1)
    rate_per_kiosk: int = Field(default=120, ge=1)
    rate_per_address: int = Field(default=60, ge=1)
    # Extra tariff catalogue files (a region's own tariffs and providers).
    tariff_files: tuple[str, ...] = ()
