"""Signed, expiring consent links: `<offer id>.<expiry unix>.<key id>.<HMAC-SHA256>`.

The HMAC's key is the keyring's `consent_link` key named in the token, so a link made before a
rotation keeps opening its page until it expires (or the old key is retired).
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

from socialcard.proactive.errors import ExpiredLink, InvalidLink
from socialcard.security import keyring

_PURPOSE = "consent_link"


def _payload(offer_id: int | str, expiry: int | str) -> bytes:
    return f"consent-link:{offer_id}.{expiry}".encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_token(offer_id: int, *, expires_at: datetime) -> str:
    """A token that opens one offer's consent page until `expires_at`."""
    expiry = int(expires_at.timestamp())
    key_id, mac = keyring.keyset(_PURPOSE).sign(_payload(offer_id, expiry))
    return f"{offer_id}.{expiry}.{key_id}.{_b64(mac)}"


def verify_token(token: str, *, now: datetime) -> int:
    """The offer id a token opens; InvalidLink when tampered, ExpiredLink when too old."""
    parts = token.split(".")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts[:2]):
        raise InvalidLink("this link is not valid")
    offer_id, expiry, key_id, mac = parts
    try:
        raw = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
    except ValueError:
        raise InvalidLink("this link is not valid") from None
    if not keyring.keyset(_PURPOSE).verify(key_id, _payload(offer_id, expiry), raw):
        raise InvalidLink("this link is not valid")
    if int(expiry) < now.timestamp():
        expired = ExpiredLink("this link has expired")
        expired.offer_id = int(offer_id)  # genuine: the page may say why (a passed deadline)
        raise expired
    return int(offer_id)


def link_expiry(deadline_at: datetime, ttl_hours: int, now: datetime) -> datetime:
    """A link lives until the offer's deadline, and never longer than the configured TTL."""
    return min(deadline_at, now + timedelta(hours=ttl_hours))
