"""Keyed tokens and hashes: bank-card tokens, PIN hashes, chip keys, kiosk session tokens.

Secrets (the PAN key, the PIN pepper) come from settings or are derived from the server secret
with a fixed label; none is ever stored or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from socialcard.core.config import get_settings
from socialcard.core.errors import InvalidInput, field_error
from socialcard.security import keyring

# argon2id, RFC 9106's second recommended option (64 MiB would cost a kiosk burst too much).
_hasher = PasswordHasher(time_cost=3, memory_cost=19 * 1024, parallelism=1)


def _secret(label: str) -> bytes:
    settings = get_settings()
    explicit = {"pan": settings.card.pan_key, "pin": settings.card.pin_pepper}.get(label)
    if explicit is not None:
        return explicit.get_secret_value().encode()
    # One key per purpose from the platform's keyring (never a secret in the source). Only
    # the current key is used: a rotated PAN key means relinking, a rotated pepper new PINs.
    return keyring.keyset(f"card_{label}").current.secret


def luhn_ok(digits: str) -> bool:
    """The Luhn check of a card number."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def bank_token(*, par: str | None = None, pan: str | None = None) -> tuple[str, str]:
    """(kind, token): an HMAC-SHA256 under the PAN key of a payment account reference or of
    a card number. The input is checked without ever being echoed in an error."""
    if (par is None) == (pan is None):
        raise InvalidInput(
            "give exactly one of par and pan",
            details=[field_error("par", "exactly one of par and pan")],
        )
    if par is not None:
        if not (par.isascii() and par.isalnum() and len(par) == 29):
            raise InvalidInput(
                "par: a payment account reference is 29 letters and digits",
                details=[field_error("par", "29 letters and digits")],
            )
        kind, value = "par", par.upper()
    else:
        pan = pan or ""
        if not (pan.isascii() and pan.isdigit() and 12 <= len(pan) <= 19 and luhn_ok(pan)):
            raise InvalidInput(
                "pan: not a valid card number",
                details=[field_error("pan", "12 to 19 digits with a valid check digit")],
            )
        kind, value = "pan_token", pan
    digest = hmac.new(_secret("pan"), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return kind, digest


def check_pin_format(pin: str, *, field: str = "pin") -> None:
    if not (isinstance(pin, str) and pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 8):
        raise InvalidInput(
            f"{field}: a PIN is 4 to 8 digits", details=[field_error(field, "4 to 8 digits")]
        )


def _peppered(pin: str) -> bytes:
    return hmac.new(_secret("pin"), pin.encode(), hashlib.sha256).digest()


def hash_pin(pin: str) -> str:
    """argon2id over HMAC-SHA256(pepper, PIN): the stored hash is useless without the pepper."""
    check_pin_format(pin)
    return _hasher.hash(_peppered(pin))


def pin_matches(stored: str, pin: str) -> bool:
    """Whether a PIN matches its stored hash (constant-time inside argon2)."""
    try:
        return _hasher.verify(stored, _peppered(pin))
    except (VerificationError, InvalidHashError):
        return False


def new_secret_token() -> str:
    """A random 256-bit token (chip keys, kiosk session tokens)."""
    return secrets.token_urlsafe(32)


def keyed_hash(value: str, *, label: str) -> str:
    """HMAC-SHA256 under the server secret (what is stored of a chip key or session token)."""
    key = keyring.keyset("card_token").current.secret
    return hmac.new(key, f"{label}:{value}".encode(), hashlib.sha256).hexdigest()
