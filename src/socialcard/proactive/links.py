"""Signed, expiring consent links: `<offer id>.<expiry unix>.<HMAC-SHA256>` under the server key."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta

from socialcard.core.config import get_settings
from socialcard.proactive.errors import ExpiredLink, InvalidLink


def _sign(payload: str) -> str:
    secret = get_settings().secret_key.get_secret_value().encode()
    digest = hmac.new(secret, b"consent-link:" + payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_token(offer_id: int, *, expires_at: datetime) -> str:
    """A token that opens one offer's consent page until `expires_at`."""
    payload = f"{offer_id}.{int(expires_at.timestamp())}"
    return f"{payload}.{_sign(payload)}"


def verify_token(token: str, *, now: datetime) -> int:
    """The offer id a token opens; InvalidLink when tampered, ExpiredLink when too old."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise InvalidLink("this link is not valid")
    payload = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_sign(payload), parts[2]):
        raise InvalidLink("this link is not valid")
    if int(parts[1]) < now.timestamp():
        raise ExpiredLink("this link has expired")
    return int(parts[0])


def link_expiry(deadline_at: datetime, ttl_hours: int, now: datetime) -> datetime:
    """A link lives until the offer's deadline, and never longer than the configured TTL."""
    return min(deadline_at, now + timedelta(hours=ttl_hours))
