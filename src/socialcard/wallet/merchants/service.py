"""Merchants: registry with БИН check, categories from the catalog, terminals and their keys."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from socialcard.core.errors import field_error
from socialcard.registry.identifiers import iin_check_digit
from socialcard.security import service as security_service
from socialcard.wallet.enums import AccountKind
from socialcard.wallet.errors import (
    DuplicateMerchant,
    InvalidBin,
    InvalidTerminalKey,
    MerchantNotFound,
    UnknownCategory,
)
from socialcard.wallet.ledger import service as ledger_service
from socialcard.wallet.merchants import repository
from socialcard.wallet.merchants.models import Merchant, Terminal
from socialcard.wallet.merchants.schemas import MerchantCreate, MerchantRead, TerminalCreated
from socialcard.wallet.vouchers.catalog import load_catalog

TERMINAL_KEY_PREFIX = "sct_"
_CACHE_SECONDS = 30.0
_terminal_cache: dict[str, tuple[float, TerminalContext]] = {}


@dataclass(frozen=True, slots=True)
class TerminalContext:
    """The authenticated terminal of a redemption request."""

    terminal_id: int
    merchant_id: int
    category: str
    licensed: bool
    merchant_account_id: int


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


def create_merchant(session: Session, *, data: MerchantCreate) -> MerchantRead:
    """Register a merchant (БИН checked, category from the catalog) with its ledger account."""
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
    return _read(merchant)


def get_merchant(session: Session, *, merchant_id: int) -> MerchantRead:
    merchant = repository.merchant_by_id(session, merchant_id)
    if merchant is None:
        raise MerchantNotFound(f"no merchant with id {merchant_id}")
    return _read(merchant)


def list_merchants(session: Session) -> list[MerchantRead]:
    return [_read(m) for m in repository.list_merchants(session)]


def create_terminal(session: Session, *, merchant_id: int, code: str) -> TerminalCreated:
    """Issue a terminal key; the raw key is returned once, only its HMAC is stored."""
    if repository.merchant_by_id(session, merchant_id) is None:
        raise MerchantNotFound(f"no merchant with id {merchant_id}")
    raw = TERMINAL_KEY_PREFIX + secrets.token_urlsafe(32)
    terminal = Terminal(
        merchant_id=merchant_id,
        code=code,
        key_prefix=raw[:10],
        key_hash=security_service.hash_key(raw),
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
    return TerminalCreated(id=terminal.id, merchant_id=merchant_id, code=code, key=raw)


def cached_terminal(raw_key: str) -> TerminalContext | None:
    """The terminal behind a key if it was verified in the last 30 s (no I/O), else None."""
    cached = _terminal_cache.get(security_service.hash_key(raw_key))
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    return None


def authenticate_terminal(session: Session, *, raw_key: str) -> TerminalContext:
    """The terminal behind a key (cached 30 s, like operator keys)."""
    cached = cached_terminal(raw_key)
    if cached is not None:
        return cached
    digest = security_service.hash_key(raw_key)
    now = time.monotonic()
    row = repository.terminal_context(session, digest)
    if row is None:
        raise InvalidTerminalKey("the terminal key is unknown or revoked")
    context = TerminalContext(
        terminal_id=row.terminal_id,
        merchant_id=row.merchant_id,
        category=row.category,
        licensed=row.licensed,
        merchant_account_id=row.account_id,
    )
    _terminal_cache[digest] = (now + _CACHE_SECONDS, context)
    return context


def clear_terminal_cache() -> None:
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
