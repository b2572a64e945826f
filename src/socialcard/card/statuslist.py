"""IETF Token Status List: 2-bit entries, zlib, signed as a JWT (`typ: statuslist+jwt`).

Pure functions (no database, no clock). Entry `i` lives in byte `i // 4` at bits
`2 * (i % 4)` (the least significant bits first), as the draft lays them out. Values: 0 valid,
1 invalid, 2 suspended. A verifier's copy is decompressed within a bound (a compression bomb
stops at the bound, not at the end of memory) and is usable only while fresh: past its `exp`, or
older (from its `iat`) than the verifier allows, it answers "cannot verify".
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from joserfc.jwk import ECKey

from socialcard.card.sdjwt import (
    SdJwtError,
    b64decode,
    b64encode,
    check_header,
    sign_jwt,
    split_compact,
    verify_signature,
)

BITS = 2
VALID, INVALID, SUSPENDED = 0, 1, 2
TYP = "statuslist+jwt"
MIN_ENTRIES = 131_072  # the herd each status index hides in (issue 13: at least this many)
MAX_ENTRIES = 16 * 1024 * 1024  # what a verifier agrees to hold for one list
MAX_TOKEN = 8 * 1024 * 1024  # characters of a list token a verifier reads at all
_PER_BYTE = 8 // BITS


class StatusListError(Exception):
    """A list that must not be used; `reason` is a short stable code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StatusList:
    """A mutable 2-bit status list backed by a numpy byte array."""

    __slots__ = ("data", "size")

    def __init__(self, size: int, data: bytes | np.ndarray | None = None) -> None:
        if size <= 0 or size % _PER_BYTE:
            raise ValueError("the size must be a positive multiple of 4")
        self.size = size
        if data is None:
            self.data = np.zeros(size // _PER_BYTE, dtype=np.uint8)
        else:
            array = np.frombuffer(bytes(data), dtype=np.uint8).copy()
            if array.size != size // _PER_BYTE:
                raise ValueError("the data does not hold `size` entries")
            self.data = array

    def get(self, index: int) -> int:
        """The status at an index."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        return int(self.data[index >> 2] >> ((index & 3) * BITS)) & 3

    def set_many(self, indexes: np.ndarray | list[int], value: int) -> None:
        """Set many entries to one value (vectorized; repeated bytes are handled by `.at`)."""
        if value not in (VALID, INVALID, SUSPENDED, 3):
            raise ValueError("a 2-bit status is 0 to 3")
        idx = np.asarray(indexes, dtype=np.int64)
        if idx.size == 0:
            return
        if idx.min() < 0 or idx.max() >= self.size:
            raise IndexError("status index out of range")
        positions = idx >> 2
        shifts = ((idx & 3) * BITS).astype(np.uint8)
        np.bitwise_and.at(self.data, positions, ~(np.uint8(3) << shifts))
        if value:
            np.bitwise_or.at(self.data, positions, np.uint8(value) << shifts)

    def set(self, index: int, value: int) -> None:
        """Set one entry."""
        self.set_many([index], value)

    def to_bytes(self) -> bytes:
        """The raw packed entries."""
        return self.data.tobytes()

    def compressed(self) -> bytes:
        """zlib (RFC 1950) at the best compression, as the draft asks."""
        return zlib.compress(self.to_bytes(), 9)

    def counts(self) -> dict[int, int]:
        """How many entries hold each status."""
        out = dict.fromkeys((VALID, INVALID, SUSPENDED, 3), 0)
        for shift in range(0, 8, BITS):
            values = np.bincount((self.data >> shift) & 3, minlength=4)
            for v in out:
                out[v] += int(values[v])
        return out


def build_token(
    status_list: StatusList,
    *,
    uri: str,
    issuer: str,
    key: ECKey,
    kid: str,
    iat: int,
    exp: int,
    ttl: int,
) -> str:
    """The Status List Token: `sub` is the list's URI, `ttl` how long a copy may be cached."""
    payload = {
        "iss": issuer,
        "sub": uri,
        "iat": iat,
        "exp": exp,
        "ttl": ttl,
        "status_list": {"bits": BITS, "lst": b64encode(status_list.compressed())},
    }
    return sign_jwt({"alg": "ES256", "typ": TYP, "kid": kid}, payload, key)


def inflate_bounded(data: bytes, limit: int) -> bytes:
    """zlib-decompress at most `limit` bytes; more (a bomb), a bad stream or trailing bytes
    are an error. Memory stays within `limit` whatever the input."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise StatusListError("list_compression") from None
    if len(out) > limit or inflater.unconsumed_tail or not inflater.eof:
        raise StatusListError("list_size")
    if inflater.unused_data:
        raise StatusListError("list_compression")
    return out


@dataclass(frozen=True, slots=True)
class ParsedList:
    """A verified Status List Token."""

    uri: str
    iat: int
    exp: int | None
    ttl: int | None
    status_list: StatusList
    token: str


def parse_token(
    token: str,
    *,
    issuer_key: Callable[[str], ECKey | None],
    expected_uri: str | None = None,
    max_entries: int = MAX_ENTRIES,
) -> ParsedList:
    """Verify a Status List Token's signature, type and shape and decompress it (bounded)."""
    if not isinstance(token, str) or not token.isascii() or len(token) > MAX_TOKEN:
        raise StatusListError("list_size")
    try:
        parts = split_compact(token, what="list")
        check_header(parts.header, typ=TYP, what="list")
        kid = parts.header.get("kid")
        key = issuer_key(kid) if isinstance(kid, str) else None
        if key is None:
            raise StatusListError("list_kid")
        verify_signature(parts, key, what="list")
    except SdJwtError as exc:
        raise StatusListError(exc.reason) from None
    claims: Mapping[str, Any] = parts.payload
    sub, iat, exp, ttl = claims.get("sub"), claims.get("iat"), claims.get("exp"), claims.get("ttl")
    if not isinstance(sub, str) or (expected_uri is not None and sub != expected_uri):
        raise StatusListError("list_sub")
    if type(iat) is not int or (exp is not None and type(exp) is not int):
        raise StatusListError("list_time")
    if ttl is not None and (type(ttl) is not int or ttl <= 0):
        raise StatusListError("list_ttl")
    body = claims.get("status_list")
    if (
        not isinstance(body, dict)
        or body.get("bits") != BITS
        or not isinstance(body.get("lst"), str)
    ):
        raise StatusListError("list_claim")
    try:
        compressed = b64decode(body["lst"], what="list")
    except SdJwtError:
        raise StatusListError("list_encoding") from None
    raw = inflate_bounded(compressed, max_entries // _PER_BYTE)
    if not raw:
        raise StatusListError("list_size")
    return ParsedList(
        uri=sub,
        iat=iat,
        exp=exp,
        ttl=ttl,
        status_list=StatusList(len(raw) * _PER_BYTE, raw),
        token=token,
    )


def fresh(parsed: ParsedList, *, now: float, max_age: int) -> bool:
    """Usable now: not past `exp` and issued no longer than `max_age` seconds ago."""
    if parsed.exp is not None and now >= parsed.exp:
        return False
    return now - parsed.iat <= max_age
