"""The issuer's ES256 keys behind one small interface (`IssuerKeys`), and a file-backed store.

A key is generated at first use and kept in a directory only its owner may read (0700/0600),
its private part PKCS#8-encrypted under a passphrase derived from the server secret, so a copy
of the directory alone does not give the key. Private keys never reach the database, a log line
or an error message. Rotation makes a new active key; the old one is retired but stays in the
published JWKS (and verifies) until every pass it signed has expired.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from socialcard.card.sdjwt import public_jwk


@dataclass(frozen=True, slots=True)
class PublicKeyInfo:
    """A published key: its id, public JWK and until when it verifies (None: active)."""

    kid: str
    jwk: dict[str, str]
    created_at: datetime
    retired_at: datetime | None
    verify_until: datetime | None


class IssuerKeys(Protocol):
    """What the card domain needs from a key store."""

    def signing_key(self, *, now: datetime) -> tuple[str, ECKey]:
        """The active key id and private key (created on first use)."""

    def public_keys(self, *, now: datetime) -> list[PublicKeyInfo]:
        """Every key that still verifies at `now` (active and retired-but-not-expired)."""

    def rotate(self, *, now: datetime, retired_keys_verify_for: timedelta) -> str:
        """Make a new active key; the previous one verifies for the given time more."""


def jwks(keys: list[PublicKeyInfo]) -> dict[str, Any]:
    """A JWK Set of public keys (RFC 7517), each with `kid`, `use` and `alg`."""
    return {"keys": [{**info.jwk, "kid": info.kid, "use": "sig", "alg": "ES256"} for info in keys]}


def _kid(key: ECKey) -> str:
    # A short id: the first 16 characters of the RFC 7638 thumbprint (96 bits) are unique
    # among a handful of keys and keep every pass and QR code shorter.
    return str(key.thumbprint())[:16]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class FileKeyStore:
    """Keys as files in one private directory; metadata in `keys.json`."""

    def __init__(self, directory: Path, *, secret: bytes) -> None:
        self.directory = directory
        # The passphrase is derived, never stored: a stolen directory without the server
        # secret gives no private key.
        self._passphrase = hmac.new(secret, b"socialcard/card/issuer-key", hashlib.sha256).digest()
        self._lock = threading.Lock()
        self._cache: dict[str, ECKey] = {}

    # -- files --

    def _meta_path(self) -> Path:
        return self.directory / "keys.json"

    def _read_meta(self) -> list[dict[str, Any]]:
        path = self._meta_path()
        if not path.exists():
            return []
        return list(json.loads(path.read_text(encoding="utf-8"))["keys"])

    def _write_private(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def _write_meta(self, entries: list[dict[str, Any]]) -> None:
        temporary = self.directory / "keys.json.tmp"
        temporary.unlink(missing_ok=True)
        self._write_private(temporary, json.dumps({"keys": entries}, indent=1).encode())
        os.replace(temporary, self._meta_path())

    def _ensure_dir(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)

    def _new_key(self, now: datetime) -> dict[str, Any]:
        private = ec.generate_private_key(ec.SECP256R1())
        key = ECKey.import_key(private)
        kid = _kid(key)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        )
        self._write_private(self.directory / f"{kid}.pem", pem)
        self._cache[kid] = key
        return {
            "kid": kid,
            "jwk": public_jwk(key),
            "created_at": _iso(now),
            "retired_at": None,
            "verify_until": None,
        }

    def _load_private(self, kid: str) -> ECKey:
        key = self._cache.get(kid)
        if key is None:
            pem = (self.directory / f"{kid}.pem").read_bytes()
            private = serialization.load_pem_private_key(pem, password=self._passphrase)
            if not isinstance(private, ec.EllipticCurvePrivateKey):
                raise TypeError("the issuer key is not an EC key")
            key = ECKey.import_key(private)
            self._cache[kid] = key
        return key

    # -- the interface --

    def signing_key(self, *, now: datetime) -> tuple[str, ECKey]:
        """The active key id and private key (created on first use)."""
        with self._lock:
            entries = self._read_meta()
            active = [e for e in entries if e["retired_at"] is None]
            if not active:
                self._ensure_dir()
                entry = self._new_key(now)
                entries.append(entry)
                self._write_meta(entries)
                active = [entry]
            kid = str(active[-1]["kid"])
            return kid, self._load_private(kid)

    def public_keys(self, *, now: datetime) -> list[PublicKeyInfo]:
        """Every key that still verifies at `now`."""
        out = []
        for entry in self._read_meta():
            until = _parse(entry["verify_until"])
            if until is not None and until <= now:
                continue
            out.append(
                PublicKeyInfo(
                    kid=str(entry["kid"]),
                    jwk=dict(entry["jwk"]),
                    created_at=_parse(entry["created_at"]) or now,
                    retired_at=_parse(entry["retired_at"]),
                    verify_until=until,
                )
            )
        return out

    def rotate(self, *, now: datetime, retired_keys_verify_for: timedelta) -> str:
        """Retire the active key (it verifies for `retired_keys_verify_for` more) and make a
        new one; returns the new key id."""
        with self._lock:
            self._ensure_dir()
            entries = self._read_meta()
            for entry in entries:
                if entry["retired_at"] is None:
                    entry["retired_at"] = _iso(now)
                    entry["verify_until"] = _iso(now + retired_keys_verify_for)
            entry = self._new_key(now)
            entries.append(entry)
            self._write_meta(entries)
            return str(entry["kid"])
