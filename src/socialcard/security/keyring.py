"""The platform's symmetric secrets: one key set per purpose, each key with an id.

Every HMAC the platform makes (API- and terminal-key hashes, consent links, the SMS provider's
callbacks, one-time codes, the audit chain) takes its key from here, never from the source:

- `SOCIALCARD_SECURITY__SECRETS_FILE`: a keyring file (JSON, owner-only permissions) of
  explicit keys, made with `socialcard secrets init` and rotated with `secrets rotate`;
- else `SOCIALCARD_SECRET_KEY`: a master secret each purpose's key is derived from
  (`SOCIALCARD_SECRET_KEY_PREVIOUS`: earlier masters, comma-separated, that still verify);
- else, outside production only, a keyring file generated beside the store on its first start
  (`var/socialcard.keyring.json` next to `var/socialcard.db`), logged when it is made.

The secrets are never stored in the database: a copy of the store (a dump, a backup, a replica)
then gives no one the keys to forge a consent link, replay a key hash or re-chain the audit log.

A key set signs with its current key and verifies with every key it holds, so after a rotation
what was signed under an older key (a link, a webhook) keeps verifying until the older key is
retired. A signature carries its key id where the format allows (links, the audit chain).
Asymmetric keys (the virtual card's ES256 credentials) are not kept here.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from socialcard.core.clock import utcnow
from socialcard.core.config import Settings, get_settings
from socialcard.core.errors import AppError
from socialcard.core.logging import get_logger


def _log() -> Any:
    # A logger of the moment rather than a module-level one cached on first use: these events
    # are rare, and a cached logger keeps the output stream of the moment it was first used.
    return get_logger(__name__)


FORMAT = "socialcard-keyring/1"
# The purposes the platform signs for; a generated keyring holds a key for each.
PURPOSES: dict[str, str] = {
    "api_key": "keys the stored hashes of API keys and terminal keys",
    "consent_link": "signs the citizens' consent links",
    "sms_webhook": "checks the SMS provider's signed callbacks (shared with the provider)",
    "one_time_code": "derives the one-time codes sent by SMS",
    "audit_chain": "chains the audit log's rows",
    "card_pan": "keys the tokens of linked bank card numbers (virtual card)",
    "card_pin": "the pepper of chip-card PIN hashes (virtual card)",
    "card_token": "keys the stored hashes of chip keys and kiosk session tokens",
    "card_issuer": "encrypts the virtual card issuer's private keys on disk",
}
# Secrets that were once written in this source or its tests: never accepted in production.
KNOWN_PUBLIC = frozenset({"dev-only-secret-change-me", "dev-webhook-secret", "test-secret"})
MIN_PRODUCTION_SECRET = 32
_RECHECK_SECONDS = 2.0  # how often a running process looks for a rotated keyring file


class SecretsError(AppError):
    """The secrets are missing, unreadable or not fit for the environment."""

    code = "secrets_unavailable"
    status_code = 500
    title = "Secrets unavailable"


@dataclass(frozen=True, slots=True)
class Key:
    """One secret with its id."""

    id: str
    secret: bytes = field(repr=False)
    created_at: str = ""

    def mac(self, message: bytes) -> bytes:
        """HMAC-SHA256 of a message under this key."""
        return hmac.new(self.secret, message, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class KeySet:
    """The keys of one purpose: the current one signs, every one verifies."""

    purpose: str
    keys: tuple[Key, ...]  # the current key first

    @property
    def current(self) -> Key:
        return self.keys[0]

    def key(self, key_id: str) -> Key | None:
        """The key with this id, or None (unknown or retired)."""
        return next((k for k in self.keys if k.id == key_id), None)

    def sign(self, message: bytes) -> tuple[str, bytes]:
        """(current key id, HMAC-SHA256) of a message."""
        return self.current.id, self.current.mac(message)

    def verify(self, key_id: str, message: bytes, mac: bytes) -> bool:
        """True when `mac` is the message's HMAC under the key `key_id` of this set."""
        key = self.key(key_id)
        return key is not None and hmac.compare_digest(key.mac(message), mac)

    def verify_any(self, message: bytes, mac: bytes) -> bool:
        """True when `mac` is the message's HMAC under any key of this set (no key id sent)."""
        return any(hmac.compare_digest(k.mac(message), mac) for k in self.keys)

    def with_current(self, key: Key) -> KeySet:
        """This set with `key` in front (a secret given explicitly for the purpose)."""
        return KeySet(self.purpose, (key, *(k for k in self.keys if k.id != key.id)))


@dataclass(frozen=True)
class Keyring:
    """Every purpose's key set and where they came from."""

    source: str  # "file" | "environment" | "generated"
    path: Path | None
    sets: dict[str, KeySet]
    master: tuple[bytes, ...] = field(default=(), repr=False)  # environment: current first

    def keyset(self, purpose: str) -> KeySet:
        """The key set of a purpose (derived on demand from a master secret, once)."""
        found = self.sets.get(purpose)
        if found is not None:
            return found
        if self.master:
            # Kept: every request hashes its key under `api_key`.
            derived = self.sets[purpose] = _derived(purpose, self.master)
            return derived
        raise SecretsError(
            f"the keyring {self.path} has no key for {purpose!r}; "
            f"run `socialcard secrets rotate {purpose}`"
        )


# --- where the secrets live -------------------------------------------------------------------


def default_keyring_path(database_url: str) -> Path:
    """The generated keyring's place: beside an SQLite store, else under ./var/keyring/."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        db = Path(url.database)
        return db.with_name(db.stem + ".keyring.json")
    name = f"{url.get_backend_name()}-{url.host or 'local'}-{url.port or ''}-{url.database or ''}"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return Path("var") / "keyring" / f"{safe}.json"


def _derived(purpose: str, masters: tuple[bytes, ...]) -> KeySet:
    keys = []
    for master in masters:
        secret = hmac.new(master, b"socialcard-keyring:" + purpose.encode(), hashlib.sha256)
        digest = secret.digest()
        keys.append(Key(id="m" + hashlib.sha256(digest).hexdigest()[:10], secret=digest))
    return KeySet(purpose, tuple(keys))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key(purpose: str) -> dict[str, str]:
    """A fresh 256-bit key entry for a keyring file."""
    return {
        "id": f"{purpose[:2]}{utcnow():%Y%m%d}{secrets.token_hex(3)}",
        "secret": _b64(secrets.token_bytes(32)),
        "created_at": utcnow().isoformat(timespec="seconds"),
    }


def _parse(path: Path, data: Any) -> dict[str, KeySet]:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SecretsError(f"{path} is not a socialcard keyring ({FORMAT})")
    sets: dict[str, KeySet] = {}
    for purpose, entry in (data.get("purposes") or {}).items():
        keys = [
            Key(
                id=str(k["id"]), secret=_unb64(str(k["secret"])), created_at=k.get("created_at", "")
            )
            for k in entry.get("keys", [])
        ]
        current = entry.get("current")
        ordered = sorted(keys, key=lambda k: (k.id != current, k.created_at))
        if not ordered or ordered[0].id != current:
            raise SecretsError(f"{path}: purpose {purpose!r} has no current key {current!r}")
        if any(len(k.secret) < 16 for k in keys):
            raise SecretsError(f"{path}: purpose {purpose!r} has a key shorter than 128 bits")
        sets[purpose] = KeySet(purpose, tuple(ordered))
    return sets


def _check_permissions(path: Path, *, production: bool) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077 == 0:
        return
    if production:
        raise SecretsError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
    os.chmod(path, 0o600)
    _log().warning("keyring_permissions_tightened", path=str(path), was=f"{mode:o}")


def _read_file(path: Path, *, production: bool) -> dict[str, KeySet]:
    try:
        _check_permissions(path, production=production)
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SecretsError(f"the keyring file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise SecretsError(f"the keyring file {path} cannot be read: {exc}") from None
    return _parse(path, data)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the keyring file (generation and rotation, across processes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def write_keyring_file(path: Path, data: dict[str, Any]) -> None:
    """Write a keyring file atomically with owner-only permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def new_keyring_data() -> dict[str, Any]:
    """A keyring with a fresh key for every purpose."""
    purposes = {}
    for purpose in PURPOSES:
        key = new_key(purpose)
        purposes[purpose] = {"current": key["id"], "keys": [key]}
    return {"format": FORMAT, "purposes": purposes}


def _generate(path: Path) -> None:
    with _locked(path):
        if path.exists():  # another process made it first
            return
        write_keyring_file(path, new_keyring_data())
    _log().warning(
        "secrets_generated",
        path=str(path),
        purposes=sorted(PURPOSES),
        note="development keyring made on first start; production needs explicit secrets",
    )


def _masters(settings: Settings) -> tuple[bytes, ...]:
    if settings.secret_key is None:
        return ()
    current = settings.secret_key.get_secret_value()
    older = settings.secret_key_previous.get_secret_value() if settings.secret_key_previous else ""
    return tuple(s.encode() for s in [current, *older.split(",")] if s.strip())


def load_keyring(settings: Settings | None = None) -> Keyring:
    """Read the keyring the settings point at (generating it in development when none is)."""
    settings = settings or get_settings()
    production = settings.environment == "production"
    explicit = settings.security.secrets_file
    if explicit is not None:
        return Keyring("file", explicit, _read_file(explicit, production=production))
    masters = _masters(settings)
    if masters:
        if production:
            for master in masters:
                text = master.decode(errors="replace")
                if text in KNOWN_PUBLIC or len(master) < MIN_PRODUCTION_SECRET:
                    raise SecretsError(
                        "SOCIALCARD_SECRET_KEY is a public or short secret; production needs "
                        f"at least {MIN_PRODUCTION_SECRET} random characters"
                    )
        return Keyring("environment", None, {}, master=masters)
    if production:
        raise SecretsError(
            "production needs explicit secrets: set SOCIALCARD_SECURITY__SECRETS_FILE (made with "
            "`socialcard secrets init --file PATH`) or SOCIALCARD_SECRET_KEY"
        )
    path = default_keyring_path(settings.database_url)
    if not path.exists():
        _generate(path)
    return Keyring("generated", path, _read_file(path, production=False))


class _Cache:
    """The loaded keyring, re-read when its file changes (a rotation by another process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keyring: Keyring | None = None
        self.mtime: float | None = None
        self.checked = 0.0


_cache = _Cache()


def _mtime(keyring: Keyring) -> float | None:
    if keyring.path is None:
        return None
    try:
        return keyring.path.stat().st_mtime
    except OSError:
        return None


def get_keyring() -> Keyring:
    """The process's keyring (cached; a rotated file is picked up within two seconds)."""
    keyring = _cache.keyring
    now = time.monotonic()
    if keyring is not None and (keyring.path is None or now - _cache.checked < _RECHECK_SECONDS):
        return keyring
    with _cache.lock:
        keyring = _cache.keyring
        if keyring is not None and keyring.path is not None:
            _cache.checked = now
            if _mtime(keyring) == _cache.mtime:
                return keyring
        keyring = load_keyring()
        _cache.keyring, _cache.mtime, _cache.checked = keyring, _mtime(keyring), now
        return keyring


def keyset(purpose: str) -> KeySet:
    """The current key set of a purpose."""
    return get_keyring().keyset(purpose)


def clear_keyring_cache() -> None:
    """Forget the loaded keyring (tests, and after changing the settings)."""
    with _cache.lock:
        _cache.keyring, _cache.mtime, _cache.checked = None, None, 0.0


# --- rotation (keyring files) -----------------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    """A key as `secrets show` lists it (never the secret)."""

    purpose: str
    id: str
    created_at: str
    current: bool


def _file_of(keyring: Keyring) -> Path:
    if keyring.path is None:
        raise SecretsError(
            "the secrets come from SOCIALCARD_SECRET_KEY: rotate by moving it to "
            "SOCIALCARD_SECRET_KEY_PREVIOUS and setting a new one"
        )
    return keyring.path


def rotate(purpose: str, keyring: Keyring | None = None) -> KeyInfo:
    """Add a new current key to a purpose of the keyring file; the older keys still verify."""
    path = _file_of(keyring or get_keyring())
    with _locked(path):
        data = json.loads(path.read_text(encoding="utf-8"))
        entry = data.setdefault("purposes", {}).setdefault(purpose, {"keys": []})
        key = new_key(purpose)
        entry["keys"].append(key)
        entry["current"] = key["id"]
        write_keyring_file(path, data)
    clear_keyring_cache()
    _log().warning("secret_rotated", purpose=purpose, key_id=key["id"])
    return KeyInfo(purpose, key["id"], key["created_at"], True)


def retire(purpose: str, key_id: str, keyring: Keyring | None = None) -> None:
    """Remove an older key: what it signed stops verifying. The current key cannot be retired."""
    path = _file_of(keyring or get_keyring())
    with _locked(path):
        data = json.loads(path.read_text(encoding="utf-8"))
        entry = (data.get("purposes") or {}).get(purpose)
        if entry is None or all(k["id"] != key_id for k in entry["keys"]):
            raise SecretsError(f"no key {key_id!r} for {purpose!r} in {path}")
        if entry["current"] == key_id:
            raise SecretsError(f"{key_id!r} is the current key of {purpose!r}; rotate first")
        entry["keys"] = [k for k in entry["keys"] if k["id"] != key_id]
        write_keyring_file(path, data)
    clear_keyring_cache()
    _log().warning("secret_retired", purpose=purpose, key_id=key_id)


def describe(keyring: Keyring | None = None) -> list[KeyInfo]:
    """Every key of the keyring by purpose (ids and dates only)."""
    keyring = keyring or get_keyring()
    purposes = sorted(set(PURPOSES) | set(keyring.sets))
    return [
        KeyInfo(purpose, key.id, key.created_at, index == 0)
        for purpose in purposes
        for index, key in enumerate(keyring.keyset(purpose).keys)
    ]


def check_startup() -> Keyring:
    """Load the keyring now (a server refuses to start without usable secrets)."""
    clear_keyring_cache()
    keyring = get_keyring()
    _log().info("secrets_loaded", source=keyring.source, path=str(keyring.path or ""))
    return keyring
