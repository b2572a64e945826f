"""The verifier: a presentation and the tariff asked -> valid / invalid / cannot verify.

No database: it holds the issuer's public keys (a JWKS), the verified status lists and a replay
cache of key-binding nonces. The online API keeps one in the server process, refreshed in the
background from the published lists; the offline verifier builds one from cached files.
Failures of the presentation answer "invalid"; a missing, stale or malformed status list
answers "cannot verify" (fail closed: never "valid" without a fresh list).
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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


class Replays(Protocol):
    """A replay cache: `first_use(nonce, now)` is False for a nonce seen within its window."""

    window: float

    def first_use(self, nonce: str, now: float) -> bool: ...


_SLOT = struct.Struct("<Qd")  # a nonce's 64-bit fingerprint and the time it may be forgotten


class SharedReplayCache:
    """A replay cache every worker process of a server shares: an open-addressing table of
    nonce fingerprints in a memory-mapped file, each probe-and-insert under an exclusive
    `flock` (and a thread lock, since threads share the file description). A replay to
    another worker within the window is caught as one to the same worker is.

    Full probe windows evict their soonest-expiring entry; with 2^21 slots that needs
    millions of presentations within the window, far past what a server answers.
    """

    PROBES = 32

    def __init__(self, path: Path, *, window: float, slots: int = 1 << 21) -> None:
        self.window = window
        self.slots = slots
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        size = slots * _SLOT.size
        if os.fstat(fd).st_size != size:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size != size:
                    os.ftruncate(fd, size)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        self._fd = fd
        self._map = mmap.mmap(fd, size)
        self._lock = threading.Lock()

    def first_use(self, nonce: str, now: float) -> bool:
        """Record the nonce; False when it was already seen within the window."""
        digest = hashlib.sha256(nonce.encode("utf-8", "surrogatepass")).digest()
        fingerprint = int.from_bytes(digest[:8], "little") or 1
        start = fingerprint % self.slots
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                free = -1
                soonest, soonest_at = -1, float("inf")
                for i in range(self.PROBES):
                    slot = (start + i) % self.slots
                    seen, until = _SLOT.unpack_from(self._map, slot * _SLOT.size)
                    if seen == fingerprint and until > now:
                        return False
                    if free < 0 and (seen == 0 or until <= now):
                        free = slot
                    if seen == 0:
                        # Slots are never emptied, so nothing was ever placed past an empty one.
                        break
                    if until < soonest_at:
                        soonest, soonest_at = slot, until
                target = free if free >= 0 else soonest
                _SLOT.pack_into(self._map, target * _SLOT.size, fingerprint, now + self.window)
                return True
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


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

    def seen(self) -> dict[str, float]:
        """The nonces kept and when each may be forgotten."""
        with self._lock:
            return dict(self._seen)


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
        replay_file: Path | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.max_list_age = max_list_age
        self.keys: dict[str, ECKey] = {}
        self.lists: dict[str, statuslist.ParsedList] = {}
        self.replay: Replays = (
            SharedReplayCache(replay_file, window=replay_window)
            if replay_file is not None
            else ReplayCache(window=replay_window)
        )

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
