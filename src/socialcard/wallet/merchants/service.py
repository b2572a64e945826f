"""Merchants: registry with БИН check, categories from the catalog, terminals and their keys."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.errors import field_error
from socialcard.registry.identifiers import iin_check_digit
from socialcard.security import service as security_service
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor
from socialcard.wallet.enums import AccountKind
from socialcard.wallet.errors import (
    DuplicateMerchant,
    InvalidBin,
    InvalidTerminalKey,
    MerchantNotFound,
    TerminalNotFound,
    UnknownCategory,
)
from socialcard.wallet.ledger import service as ledger_service
from socialcard.wallet.merchants import repository
from socialcard.wallet.merchants.models import Merchant, Terminal
from socialcard.wallet.merchants.schemas import (
    MerchantCreate,
    MerchantRead,
    TerminalCreated,
    TerminalRead,
)
from socialcard.wallet.vouchers.catalog import load_catalog

TERMINAL_KEY_PREFIX = "sct_"
# Verified terminal keys by hash (the purchase hot path authenticates without a query);
# a revocation elsewhere takes effect within `security.auth_cache_seconds`.
_terminal_cache: dict[str, tuple[float, TerminalContext]] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class TerminalContext:
    """The authenticated terminal of a redemption request."""

    terminal_id: int
    merchant_id: int
    category: str
    licensed: bool
    merchant_account_id: int
    expires_at: datetime | None = None


def validate_bin(value: str) -> str:
    """A БИН: 12 digits, the last a check digit computed as for the ИИН (weights 1..11, 3..2).

    >>> validate_bin(make_bin("05034001234"))[:11]
    '05034001234'
    """
    if len(value) != 12 or not value.isascii() or not value.isdigit():
        raise InvalidBin("БИН must be exactly 12 digits", details=[field_error("bin", "12 digits")])
    expected = iin_check_digit(value[:11])
    if expected is None or expected != int(value[11]):
        raise InvalidBin(
            "БИН check digit does not match", details=[field_error("bin", "check digit")]
        )
    return value


def make_bin(first_eleven: str) -> str:
    """A valid БИН from 11 digits (the next serial when the first has no check digit)."""
    serial = int(first_eleven)
    while True:
        head = f"{serial:011d}"
        check = iin_check_digit(head)
        if check is not None:
            return f"{head}{check}"
        serial += 1


def merchant_account_code(merchant_id: int) -> str:
    return f"merchant:{merchant_id}"


def _read(merchant: Merchant) -> MerchantRead:
    category = load_catalog().categories.get(merchant.category)
    read = MerchantRead.model_validate(merchant)
    read.accepts = sorted(category.accepts) if category else []
    return read


def check_new_merchant(session: Session, *, data: MerchantCreate) -> None:
    """What registering the merchant would refuse (БИН, category, an existing БИН)."""
    validate_bin(data.bin)
    if data.category not in load_catalog().categories:
        raise UnknownCategory(
            f"unknown merchant category {data.category!r}; use one of "
            + ", ".join(sorted(load_catalog().categories)),
            details=[field_error("category", "unknown")],
        )
    if repository.merchant_by_bin(session, data.bin) is not None:
        raise DuplicateMerchant(
            "a merchant with this БИН exists", details=[field_error("bin", "exists")]
        )


def create_merchant(
    session: Session, *, data: MerchantCreate, actor: Actor | None = None, detail: str = ""
) -> MerchantRead:
    """Register a merchant (БИН checked, category from the catalog) with its ledger account
    (audited; from the API and the command line only as an approved request)."""
    check_new_merchant(session, data=data)
    merchant = Merchant(**data.model_dump())
    session.add(merchant)
    session.flush()
    ledger_service.ensure_account(
        session,
        code=merchant_account_code(merchant.id),
        kind=AccountKind.MERCHANT,
        merchant_id=merchant.id,
        balance_cached=False,
    )
    security_service.record_access(
        session,
        actor=actor or security_service.system_actor(),
        action="wallet.merchant.create",
        subject_type="merchant",
        subject_ids=[merchant.id],
        purpose=Purpose.ADMINISTRATION,
        detail=f"БИН {merchant.bin}, {merchant.category}{detail}",
    )
    return _read(merchant)


def get_merchant(session: Session, *, merchant_id: int) -> MerchantRead:
    merchant = repository.merchant_by_id(session, merchant_id)
    if merchant is None:
        raise MerchantNotFound(f"no merchant with id {merchant_id}")
    return _read(merchant)


def list_merchants(session: Session) -> list[MerchantRead]:
    return [_read(m) for m in repository.list_merchants(session)]


def create_terminal(
    session: Session,
    *,
    merchant_id: int,
    code: str,
    actor: Actor | None = None,
    expires_in_days: int | None = None,
) -> TerminalCreated:
    """Issue a terminal key (audited); the raw key is returned once, only its HMAC is stored."""
    if repository.merchant_by_id(session, merchant_id) is None:
        raise MerchantNotFound(f"no merchant with id {merchant_id}")
    raw = TERMINAL_KEY_PREFIX + secrets.token_urlsafe(32)
    expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    terminal = Terminal(
        merchant_id=merchant_id,
        code=code,
        key_prefix=raw[:10],
        key_hash=security_service.hash_key(raw),
        expires_at=expires_at,
    )
    session.add(terminal)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise DuplicateMerchant(
            f"terminal {code!r} exists",
            code="terminal_exists",
            details=[field_error("code", "exists")],
        ) from None
    security_service.record_access(
        session,
        actor=actor or security_service.system_actor(),
        action="wallet.terminal.create",
        subject_type="terminal",
        subject_ids=[terminal.id],
        purpose=Purpose.ADMINISTRATION,
        detail=f"merchant {merchant_id}",
    )
    return TerminalCreated(
        id=terminal.id, merchant_id=merchant_id, code=code, key=raw, expires_at=expires_at
    )


def own(actor: Actor) -> int:
    """The merchant a merchant key is bound to."""
    if actor.merchant_id is None:
        raise MerchantNotFound("this key is not bound to a merchant")
    return actor.merchant_id


def list_terminals(session: Session, *, merchant_id: int) -> list[TerminalRead]:
    """A merchant's terminals (never their keys)."""
    if repository.merchant_by_id(session, merchant_id) is None:
        raise MerchantNotFound(f"no merchant with id {merchant_id}")
    return [TerminalRead.model_validate(t) for t in repository.terminals_of(session, merchant_id)]


def revoke_terminal(
    session: Session, *, terminal_id: int, actor: Actor, merchant_id: int | None = None
) -> TerminalRead:
    """Revoke a terminal's key now (audited; again is a no-op). `merchant_id` limits it to
    one merchant's terminals (a merchant key revoking its own). This process forgets the key
    at once, the others within `security.auth_cache_seconds`."""
    terminal = repository.terminal_by_id(session, terminal_id)
    if terminal is None or (merchant_id is not None and terminal.merchant_id != merchant_id):
        raise TerminalNotFound(
            f"no terminal {terminal_id}", details=[field_error("terminal_id", "unknown")]
        )
    if terminal.revoked_at is None:
        terminal.revoked_at = utcnow()
        session.flush()
        security_service.record_access(
            session,
            actor=actor,
            action="wallet.terminal.revoke",
            subject_type="terminal",
            subject_ids=[terminal.id],
            purpose=Purpose.ADMINISTRATION,
        )
    with _cache_lock:
        for digest in [d for d, (_, t) in _terminal_cache.items() if t.terminal_id == terminal_id]:
            del _terminal_cache[digest]
    return TerminalRead.model_validate(terminal)


def cached_terminal(raw_key: str) -> TerminalContext | None:
    """The terminal behind a key verified within the cache period (no I/O), else None."""
    cached = _terminal_cache.get(security_service.hash_key(raw_key))
    if cached is None or cached[0] <= time.monotonic():
        return None
    expires_at = cached[1].expires_at
    if expires_at is not None and expires_at <= utcnow():
        return None
    return cached[1]


def authenticate_terminal(session: Session, *, raw_key: str) -> TerminalContext:
    """The terminal behind a key (cached like API keys); InvalidTerminalKey when unknown,
    revoked or expired."""
    cached = cached_terminal(raw_key)
    if cached is not None:
        return cached
    now = time.monotonic()
    row = repository.terminal_context(session, security_service.key_hashes(raw_key))
    if row is None:
        raise InvalidTerminalKey("the terminal key is unknown or revoked")
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise InvalidTerminalKey("the terminal key has expired")
    context = TerminalContext(
        terminal_id=row.terminal_id,
        merchant_id=row.merchant_id,
        category=row.category,
        licensed=row.licensed,
        merchant_account_id=row.account_id,
        expires_at=row.expires_at,
    )
    ttl = get_settings().security.auth_cache_seconds
    if ttl > 0:
        with _cache_lock:
            _terminal_cache[security_service.hash_key(raw_key)] = (now + ttl, context)
    return context


def clear_terminal_cache() -> None:
    with _cache_lock:
        _terminal_cache.clear()


WEB_TERMINAL = "web"


def web_terminal(session: Session, *, merchant_id: int) -> TerminalContext:
    """The merchant's counter in the web pages: a terminal of its own (created on first use;
    its key is never shown, since staff sign in with their password instead)."""
    row = repository.terminal_context_by_code(session, merchant_id, WEB_TERMINAL)
    if row is None:
        create_terminal(session, merchant_id=merchant_id, code=WEB_TERMINAL)
        row = repository.terminal_context_by_code(session, merchant_id, WEB_TERMINAL)
    if row is None:
        raise MerchantNotFound(f"no merchant with id {merchant_id}")
    return TerminalContext(
        terminal_id=row.terminal_id,
        merchant_id=row.merchant_id,
        category=row.category,
        licensed=row.licensed,
        merchant_account_id=row.account_id,
    )


def item_categories(category: str) -> list[str]:
    """The item categories a merchant of this category sells against vouchers."""
    catalog = load_catalog()
    found = catalog.categories.get(category)
    if found is None:
        return []
    out: set[str] = set()
    for code in found.accepts:
        vtype = catalog.voucher_types[code]
        out |= set(vtype.item_categories)
        if vtype.any_item:
            out.add("food.other")
    return sorted(out)
