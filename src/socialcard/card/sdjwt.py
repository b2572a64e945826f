"""SD-JWT (RFC 9901) with key binding, for SD-JWT VC passes (`typ: dc+sd-jwt`), on joserfc.

Pure functions: no database, no settings, no clock (callers pass `now`). What it does:

- issue: an issuer-signed JWT whose selectively disclosable claims are object properties
  (disclosures `[salt, name, value]`), padded with decoy digests so their count says little;
- present: the SD-JWT with a chosen subset of disclosures and a key-binding JWT (`kb+jwt`:
  `iat`, `aud`, `nonce`, `sd_hash`) signed by the holder key named in `cnf`;
- verify: the checks of RFC 9901 section 7 (signature, algorithm, digests found once, every
  disclosure referenced, no claim overwritten, no `_sd`/`...` names) plus time, `cnf` and the
  key-binding JWT, with strict parsing (canonical base64url, UTF-8, no duplicate JSON keys).

Only ES256 is accepted, and keys are never taken from a token's header (`jwk`, `jku`, `x5u`,
`x5c` are refused): the issuer key comes from the verifier's trusted set by `kid`, the holder
key from the signed `cnf` claim.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

ALG = "ES256"
SD_ALG = "sha-256"
PASS_TYP = "dc+sd-jwt"  # noqa: S105 - a media type
KB_TYP = "kb+jwt"
# Header parameters that would let a token choose its own key or change how it is processed.
FORBIDDEN_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64"})
_B64 = re.compile(r"[A-Za-z0-9_-]*")
# Bounds that keep a hostile presentation cheap to reject (a QR code holds under 3 KB).
MAX_PRESENTATION = 16_384
MAX_DISCLOSURES = 64
SKEW_SECONDS = 60
KB_MAX_AGE_SECONDS = 60


class SdJwtError(Exception):
    """A token that must be rejected; `reason` is a short stable code (safe to log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- encoding --------------------------------------------------------------------------------


def b64encode(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64_VALUE = {
    c: i
    for i, c in enumerate(string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_")
}


def b64decode(text: str, *, what: str) -> bytes:
    """Strict base64url: the alphabet only, no padding, and canonical (the spare bits of the
    last character are zero), so no two spellings of one value exist (a flipped spare bit is
    a different token, not the same one)."""
    rest = len(text) % 4
    if rest == 1 or not _B64.fullmatch(text):
        raise SdJwtError(f"{what}_encoding")
    # 2 leftover characters carry 4 spare bits, 3 carry 2 (RFC 4648 section 3.5).
    if rest and _B64_VALUE[text[-1]] & (0x0F if rest == 2 else 0x03):
        raise SdJwtError(f"{what}_encoding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-rest % 4))
    except (binascii.Error, ValueError):
        raise SdJwtError(f"{what}_encoding") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SdJwtError("duplicate_json_member")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise SdJwtError("json_constant")


def strict_json(raw: bytes, *, what: str) -> Any:
    """JSON from UTF-8 bytes, refusing duplicate members, NaN/Infinity and lone surrogates."""
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
        # A lone surrogate escaped as \\udXXX decodes to a str that is not valid Unicode; only
        # text with such an escape can hold one, so only that text pays for the check.
        if b"\\ud" in raw.lower():
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except SdJwtError:
        raise
    except (UnicodeError, ValueError, RecursionError):
        raise SdJwtError(f"{what}_json") from None
    return value


def compact_json(value: Any) -> bytes:
    """The JSON text we sign: no spaces, UTF-8 (orjson: the issuer signs millions of these)."""
    return orjson.dumps(value)


def sd_digest(text: str) -> str:
    """base64url(SHA-256(ASCII text)): the digest of a disclosure or of an SD-JWT."""
    return b64encode(hashlib.sha256(text.encode("ascii")).digest())


def new_salt() -> str:
    """128 random bits, as RFC 9901 recommends."""
    return b64encode(secrets.token_bytes(16))


@dataclass(frozen=True, slots=True)
class Disclosure:
    """One object-property disclosure: its encoded form, digest, name and value."""

    encoded: str
    digest: str
    name: str
    value: Any


def make_disclosure(name: str, value: Any, *, salt: str | None = None) -> Disclosure:
    """A disclosure `[salt, name, value]` and its digest."""
    encoded = b64encode(compact_json([salt or new_salt(), name, value]))
    return Disclosure(encoded=encoded, digest=sd_digest(encoded), name=name, value=value)


# --- JWS on joserfc ----------------------------------------------------------------------------


def sign_jwt(header: Mapping[str, Any], payload: Mapping[str, Any], key: ECKey) -> str:
    """A compact JWS signed with ES256."""
    return jws.serialize_compact(dict(header), compact_json(payload), key, algorithms=[ALG])


@dataclass(frozen=True, slots=True)
class CompactParts:
    """A compact JWS split and decoded, not yet verified."""

    token: str
    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def split_compact(token: str, *, what: str) -> CompactParts:
    """Decode a compact JWS strictly (three canonical base64url parts, JSON objects)."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise SdJwtError(f"{what}_format")
    header = strict_json(b64decode(parts[0], what=what), what=what)
    payload = strict_json(b64decode(parts[1], what=what), what=what)
    signature = b64decode(parts[2], what=what)
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise SdJwtError(f"{what}_format")
    if len(signature) != 64:  # ES256: r and s, 32 bytes each (RFC 7518 3.4)
        raise SdJwtError(f"{what}_signature")
    return CompactParts(
        token=token,
        header=header,
        payload=payload,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=signature,
    )


def check_header(header: Mapping[str, Any], *, typ: str, what: str) -> None:
    """Algorithm, type and no header parameter that could pick a key."""
    if header.get("alg") != ALG:
        raise SdJwtError(f"{what}_alg")
    if header.get("typ") != typ:
        raise SdJwtError(f"{what}_typ")
    if FORBIDDEN_HEADERS.intersection(header):
        raise SdJwtError(f"{what}_header")


def verify_signature(parts: CompactParts, key: ECKey, *, what: str) -> None:
    """The ES256 signature of a strictly parsed compact JWS under a joserfc key.

    The token was already split, decoded and its header checked (ES256 only), so the check is
    the one ECDSA verification on the key object joserfc holds; running the token through
    joserfc's generic deserializer again would parse everything a second time (it measured
    as much as the elliptic-curve work itself on the merchants' hot path). Tests check that
    joserfc's own `deserialize_compact` agrees on every token we accept.
    """
    public = key.public_key
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise SdJwtError(f"{what}_key")
    r = int.from_bytes(parts.signature[:32], "big")
    s = int.from_bytes(parts.signature[32:], "big")
    try:
        public.verify(encode_dss_signature(r, s), parts.signing_input, _ECDSA)
    except InvalidSignature:
        raise SdJwtError(f"{what}_signature") from None


_ECDSA = ec.ECDSA(hashes.SHA256())


def holder_key(jwk: Any) -> ECKey:
    """A public P-256 key from a `cnf.jwk` member (a private key there is refused)."""
    if not isinstance(jwk, dict) or set(jwk) - {"kty", "crv", "x", "y", "kid", "use", "alg"}:
        raise SdJwtError("cnf")
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise SdJwtError("cnf")
    if not all(isinstance(jwk.get(c), str) for c in ("x", "y")):
        raise SdJwtError("cnf")
    x, y = (b64decode(jwk[c], what="cnf") for c in ("x", "y"))
    if len(x) != 32 or len(y) != 32:
        raise SdJwtError("cnf")
    try:
        # cryptography checks that the point is on the curve (an invalid-curve key is refused).
        public = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        ).public_key()
        return ECKey.import_key(public)
    except (JoseError, ValueError, TypeError):
        raise SdJwtError("cnf") from None


def public_jwk(key: ECKey) -> dict[str, str]:
    """The public members of an EC key, in the order RFC 7638 thumbprints use."""
    full = key.as_dict(private=False)
    return {"crv": str(full["crv"]), "kty": "EC", "x": str(full["x"]), "y": str(full["y"])}


# --- issuing and presenting -------------------------------------------------------------------


def issue(
    *,
    claims: Mapping[str, Any],
    disclosable: tuple[str, Mapping[str, Any]],
    key: ECKey,
    kid: str,
    digests_at_least: int = 4,
) -> tuple[str, list[Disclosure]]:
    """Sign an SD-JWT: `claims` always visible, and in the object named `disclosable[0]` every
    property selectively disclosable; decoy digests pad that object to `digests_at_least`
    (rounded up to a multiple of it) and the digests are sorted, so neither their number nor
    their order reveals anything. Returns `<jwt>~<d1>~...~<dN>~` and the disclosures."""
    name, members = disclosable
    disclosures = [make_disclosure(k, v) for k, v in members.items()]
    digests = [d.digest for d in disclosures]
    step = max(1, digests_at_least)
    target = max(step, -(-len(digests) // step) * step)
    digests.extend(sd_digest(new_salt()) for _ in range(target - len(digests)))
    payload = dict(claims)
    payload[name] = {"_sd": sorted(digests)}
    payload["_sd_alg"] = SD_ALG
    token = sign_jwt({"alg": ALG, "typ": PASS_TYP, "kid": kid}, payload, key)
    return combine(token, [d.encoded for d in disclosures]), disclosures


def combine(token: str, disclosures: Iterable[str], kb_jwt: str = "") -> str:
    """`<jwt>~<d1>~...~<dN>~[<kb-jwt>]`."""
    return "~".join([token, *disclosures, kb_jwt])


def present(
    sd_jwt: str,
    *,
    disclose: Iterable[str],
    holder: ECKey,
    audience: str,
    nonce: str,
    iat: int,
) -> str:
    """The holder's presentation: only the disclosures named in `disclose` (by claim name),
    and a key-binding JWT over them signed with the holder key."""
    token, encoded, _ = split_presentation(sd_jwt)
    wanted = set(disclose)
    kept = []
    for text in encoded:
        value = strict_json(b64decode(text, what="disclosure"), what="disclosure")
        if isinstance(value, list) and len(value) == 3 and value[1] in wanted:
            kept.append(text)
    body = combine(token, kept)
    kb_payload = {"iat": iat, "aud": audience, "nonce": nonce, "sd_hash": sd_digest(body)}
    return body + sign_jwt({"alg": ALG, "typ": KB_TYP}, kb_payload, holder)


# --- verifying --------------------------------------------------------------------------------


def split_presentation(text: str) -> tuple[str, list[str], str]:
    """The issuer JWT, the disclosures and the key-binding JWT ('' when absent)."""
    if not isinstance(text, str) or not text.isascii() or len(text) > MAX_PRESENTATION:
        raise SdJwtError("presentation_size")
    parts = text.split("~")
    if len(parts) < 2:
        raise SdJwtError("presentation_format")
    token, disclosures, kb = parts[0], parts[1:-1], parts[-1]
    if len(disclosures) > MAX_DISCLOSURES or not all(disclosures):
        raise SdJwtError("presentation_format")
    return token, disclosures, kb


@dataclass(frozen=True, slots=True)
class Verified:
    """What a verified presentation says."""

    header: dict[str, Any]
    claims: dict[str, Any]
    key_binding: dict[str, Any] | None


def _decode_disclosure(text: str) -> list[Any]:
    value = strict_json(b64decode(text, what="disclosure"), what="disclosure")
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise SdJwtError("disclosure_format")
    if not isinstance(value[0], str):
        raise SdJwtError("disclosure_format")
    if len(value) == 3 and (not isinstance(value[1], str) or value[1] in ("_sd", "...")):
        raise SdJwtError("disclosure_name")
    return value


def _process(node: Any, found: dict[str, list[Any]], seen: set[str], used: set[str]) -> Any:
    """RFC 9901 7.1 step 3: replace digests by their disclosed claims, recursively."""
    if isinstance(node, list):
        out_list = []
        for element in node:
            if isinstance(element, dict) and "..." in element:
                if len(element) != 1 or not isinstance(element["..."], str):
                    raise SdJwtError("array_digest")
                digest = element["..."]
                if digest in seen:
                    raise SdJwtError("digest_repeated")
                seen.add(digest)
                disclosure = found.get(digest)
                if disclosure is None:
                    continue  # a decoy or an undisclosed element
                if len(disclosure) != 2:
                    raise SdJwtError("disclosure_kind")
                used.add(digest)
                out_list.append(_process(disclosure[1], found, seen, used))
            else:
                out_list.append(_process(element, found, seen, used))
        return out_list
    if not isinstance(node, dict):
        return node
    out = {k: _process(v, found, seen, used) for k, v in node.items() if k != "_sd"}
    digests = node.get("_sd", [])
    if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests):
        raise SdJwtError("sd_member")
    for digest in digests:
        if digest in seen:
            raise SdJwtError("digest_repeated")
        seen.add(digest)
        disclosure = found.get(digest)
        if disclosure is None:
            continue
        if len(disclosure) != 3:
            raise SdJwtError("disclosure_kind")
        name = disclosure[1]
        if name in out:
            raise SdJwtError("claim_overwritten")
        used.add(digest)
        out[name] = _process(disclosure[2], found, seen, used)
    return out


def _number(value: Any) -> float | None:
    """A finite JSON number (not a bool) as a float, else None."""
    if type(value) in (int, float) and value == value and abs(value) < 1e15:
        return float(value)
    return None


def check_times(claims: Mapping[str, Any], *, now: float, skew: int = SKEW_SECONDS) -> None:
    """`exp` required and not passed, `iat` not in the future, `nbf` reached (each with skew)."""
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    nbf = _number(claims.get("nbf"))
    if exp is None or iat is None or ("nbf" in claims and nbf is None):
        raise SdJwtError("time_claims")
    if now > exp + skew:
        raise SdJwtError("expired")
    if iat > now + skew or (nbf is not None and nbf > now + skew):
        raise SdJwtError("not_yet_valid")


def verify(
    presentation: str,
    *,
    issuer_key: Callable[[str], ECKey | None],
    now: float,
    audience: str | None,
    require_key_binding: bool = True,
    skew: int = SKEW_SECONDS,
    kb_max_age: int = KB_MAX_AGE_SECONDS,
) -> Verified:
    """Verify an SD-JWT (VC) presentation as RFC 9901 section 7 says; raise SdJwtError.

    `issuer_key(kid)` gives the trusted key for a key id or None (unknown: rejected).
    """
    token, encoded, kb_jwt = split_presentation(presentation)
    issued = split_compact(token, what="jwt")
    check_header(issued.header, typ=PASS_TYP, what="jwt")
    kid = issued.header.get("kid")
    if not isinstance(kid, str):
        raise SdJwtError("kid_missing")
    key = issuer_key(kid)
    if key is None:
        raise SdJwtError("kid_unknown")
    verify_signature(issued, key, what="jwt")
    if issued.payload.get("_sd_alg", SD_ALG) != SD_ALG:
        raise SdJwtError("sd_alg")

    found: dict[str, list[Any]] = {}
    for text in encoded:
        digest = sd_digest(text)
        if digest in found:
            raise SdJwtError("disclosure_repeated")
        found[digest] = _decode_disclosure(text)
    seen: set[str] = set()
    used: set[str] = set()
    claims = _process(issued.payload, found, seen, used)
    if len(used) != len(found):
        raise SdJwtError("disclosure_unreferenced")
    claims.pop("_sd_alg", None)
    check_times(claims, now=now, skew=skew)
    cnf = claims.get("cnf")
    if not isinstance(cnf, dict) or "jwk" not in cnf:
        raise SdJwtError("cnf")
    holder = holder_key(cnf["jwk"])

    if not kb_jwt:
        if require_key_binding:
            raise SdJwtError("kb_missing")
        return Verified(header=issued.header, claims=claims, key_binding=None)
    kb = split_compact(kb_jwt, what="kb")
    check_header(kb.header, typ=KB_TYP, what="kb")
    verify_signature(kb, holder, what="kb")
    kb_iat = _number(kb.payload.get("iat"))
    if kb_iat is None or abs(now - kb_iat) > kb_max_age:
        raise SdJwtError("kb_iat")
    if audience is not None and kb.payload.get("aud") != audience:
        raise SdJwtError("kb_aud")
    nonce = kb.payload.get("nonce")
    if not isinstance(nonce, str) or not 16 <= len(nonce) <= 128:
        raise SdJwtError("kb_nonce")
    if kb.payload.get("sd_hash") != sd_digest(combine(token, encoded)):
        raise SdJwtError("kb_sd_hash")
    return Verified(header=issued.header, claims=claims, key_binding=kb.payload)
