"""The verifier: a presentation and the tariff asked -> valid / invalid / cannot verify.

No database: it holds the issuer's public keys (a JWKS), the verified status lists and a replay
cache of key-binding nonces. The online API keeps one in the server process, refreshed in the
background from the published lists; the offline verifier builds one from cached files.
Failures of the presentation answer "invalid"; a missing, stale or malformed status list
answers "cannot verify" (fail closed: never "valid" without a fresh list).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from socialcard.card import sdjwt, statuslist
from socialcard.card.enums import Verdict

VCT = "urn:socialcard:pass:1"


def key_set(jwks: Mapping[str, Any]) -> dict[str, ECKey]:
    """Public P-256 keys of a JWKS by kid (anything else in it is ignored; private parts
    refused)."""
    out: dict[str, ECKey] = {}
    for entry in jwks.get("keys", []) if isinstance(jwks, Mapping) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str) or "d" in entry:
            continue
        try:
            out[entry["kid"]] = sdjwt.holder_key(
                {k: entry[k] for k in ("kty", "crv", "x", "y") if k in entry}
            )
        except (sdjwt.SdJwtError, JoseError):
            continue
    return out


class ReplayCache:
    """Nonces seen within the window; a repeat is a replay. Bounded: the oldest go first, and
    the window is longer than a key-binding JWT's accepted age, so an evicted nonce is too old
    to be accepted again anyway."""

    def __init__(self, *, window: float, max_entries: int = 2_000_000) -> None:
        self.window = window
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_use(self, nonce: str, now: float) -> bool:
        """Record the nonce; False when it was already seen within the window."""
        with self._lock:
            while self._seen:
                oldest, expiry = next(iter(self._seen.items()))
                if expiry > now and len(self._seen) < self.max_entries:
                    break
                del self._seen[oldest]
            if nonce in self._seen:
                return False
            self._seen[nonce] = now + self.window
            return True

    def __len__(self) -> int:
        return len(self._seen)


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Verdict
    valid_until: int | None
    reason: str


class Verifier:
    """Checks presentations against trusted keys, fresh status lists and a replay cache."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        max_list_age: int,
        replay_window: float = 2 * sdjwt.KB_MAX_AGE_SECONDS + 2 * sdjwt.SKEW_SECONDS,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.max_list_age = max_list_age
        self.keys: dict[str, ECKey] = {}
        self.lists: dict[str, statuslist.ParsedList] = {}
        self.replay = ReplayCache(window=replay_window)

    def set_keys(self, jwks: Mapping[str, Any]) -> None:
        """Trust exactly the keys of this JWKS."""
        self.keys = key_set(jwks)

    def load_list(self, token: str, *, uri: str | None = None) -> statuslist.ParsedList:
        """Verify a Status List Token with the trusted keys and keep it (StatusListError)."""
        parsed = statuslist.parse_token(token, issuer_key=self.keys.get, expected_uri=uri)
        current = self.lists.get(parsed.uri)
        if current is None or parsed.iat >= current.iat:
            self.lists[parsed.uri] = parsed
        return parsed

    def check(self, presentation: str, *, tariff: str, now: float | None = None) -> Outcome:
        """The answer for one presentation and tariff."""
        now = time.time() if now is None else now
        try:
            verified = sdjwt.verify(
                presentation, issuer_key=self.keys.get, now=now, audience=self.audience
            )
        except sdjwt.SdJwtError as exc:
            return Outcome(Verdict.INVALID, None, exc.reason)
        claims = verified.claims
        if claims.get("iss") != self.issuer or claims.get("vct") != VCT:
            return Outcome(Verdict.INVALID, None, "issuer_or_type")
        tariffs = claims.get("tariffs")
        if not isinstance(tariffs, dict) or tariffs.get(tariff) is not True:
            return Outcome(Verdict.INVALID, None, "tariff_not_disclosed")
        kb = verified.key_binding or {}
        if not self.replay.first_use(str(kb.get("nonce")), now):
            return Outcome(Verdict.INVALID, None, "replayed")
        reference = (claims.get("status") or {}).get("status_list")
        if not isinstance(reference, dict):
            return Outcome(Verdict.INVALID, None, "status_reference")
        idx, uri = reference.get("idx"), reference.get("uri")
        if type(idx) is not int or idx < 0 or not isinstance(uri, str):
            return Outcome(Verdict.INVALID, None, "status_reference")
        parsed = self.lists.get(uri)
        if parsed is None or not statuslist.fresh(parsed, now=now, max_age=self.max_list_age):
            return Outcome(Verdict.CANNOT_VERIFY, None, "status_list_stale")
        if idx >= parsed.status_list.size:
            return Outcome(Verdict.INVALID, None, "status_index")
        status = parsed.status_list.get(idx)
        if status == statuslist.SUSPENDED:
            return Outcome(Verdict.INVALID, None, "suspended")
        if status != statuslist.VALID:
            return Outcome(Verdict.INVALID, None, "revoked")
        return Outcome(Verdict.VALID, int(claims["exp"]), "ok")
