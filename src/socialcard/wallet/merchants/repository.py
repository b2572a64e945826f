"""Merchant queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from socialcard.wallet.ledger.models import Account
from socialcard.wallet.merchants.models import Merchant, Settlement, Terminal
from socialcard.wallet.types import Record


def merchant_by_bin(session: Session, bin_: str) -> Merchant | None:
    return session.execute(select(Merchant).where(Merchant.bin == bin_)).scalar_one_or_none()


def merchant_by_id(session: Session, merchant_id: int) -> Merchant | None:
    return session.get(Merchant, merchant_id)


def list_merchants(session: Session) -> Sequence[Merchant]:
    return session.execute(select(Merchant).order_by(Merchant.id)).scalars().all()


def terminal_context(session: Session, key_hashes: Sequence[str]) -> Record | None:
    """A live terminal with its merchant's category, by the keyed hashes of its key (one per
    keyring key that may have made it)."""
    stmt = (
        select(
            Terminal.id.label("terminal_id"),
            Merchant.id.label("merchant_id"),
            Merchant.category,
            Merchant.licensed,
            Account.id.label("account_id"),
            Terminal.expires_at,
        )
        .join(Merchant, Merchant.id == Terminal.merchant_id)
        .join(Account, (Account.merchant_id == Merchant.id) & (Account.kind == "merchant"))
        .where(Terminal.key_hash.in_(key_hashes), Terminal.revoked_at.is_(None))
    )
    return session.execute(stmt).first()


def terminal_by_id(session: Session, terminal_id: int) -> Terminal | None:
    return session.get(Terminal, terminal_id)


def terminals_of(session: Session, merchant_id: int) -> Sequence[Terminal]:
    return (
        session.execute(
            select(Terminal).where(Terminal.merchant_id == merchant_id).order_by(Terminal.id)
        )
        .scalars()
        .all()
    )


def settlement(session: Session, *, merchant_id: int, day_on: Any) -> Settlement | None:
    stmt = select(Settlement).where(
        Settlement.merchant_id == merchant_id, Settlement.day_on == day_on
    )
    return session.execute(stmt).scalar_one_or_none()


def all_settlements(session: Session) -> Sequence[Settlement]:
    return session.execute(select(Settlement).order_by(Settlement.id)).scalars().all()


def terminal_context_by_code(session: Session, merchant_id: int, code: str) -> Record | None:
    """A merchant's live terminal by its code, with what a redemption needs."""
    stmt = (
        select(
            Terminal.id.label("terminal_id"),
            Merchant.id.label("merchant_id"),
            Merchant.category,
            Merchant.licensed,
            Account.id.label("account_id"),
        )
        .join(Merchant, Merchant.id == Terminal.merchant_id)
        .join(Account, (Account.merchant_id == Merchant.id) & (Account.kind == "merchant"))
        .where(
            Terminal.merchant_id == merchant_id,
            Terminal.code == code,
            Terminal.revoked_at.is_(None),
        )
    )
    return session.execute(stmt).first()
