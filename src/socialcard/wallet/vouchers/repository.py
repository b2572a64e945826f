"""Voucher queries (the locking read of a redemption lives here)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session

from socialcard.core import bulk
from socialcard.wallet.enums import PostingKind, VoucherStatus
from socialcard.wallet.ledger.models import Account, Entry, Posting
from socialcard.wallet.types import Record
from socialcard.wallet.vouchers.models import Voucher

_voucher = cast(Table, Voucher.__table__)
_account = cast(Table, Account.__table__)
_entry = cast(Table, Entry.__table__)
_posting = cast(Table, Posting.__table__)

_LOCK_COLUMNS = (
    *_voucher.c,
    _account.c.balance_minor,
    _account.c.held_minor,
    _account.c.allow_negative,
    _account.c.balance_cached,
)


_LOCKED = select(*_LOCK_COLUMNS).join(_account, _account.c.id == _voucher.c.account_id)
_LOCK_BY_TOKEN = _LOCKED.where(_voucher.c.token == bindparam("token")).with_for_update()
_LOCK_BY_ID = _LOCKED.where(_voucher.c.id == bindparam("voucher_id")).with_for_update()


def lock_voucher(
    session: Session, *, token: str | None = None, voucher_id: int | None = None
) -> Record | None:
    """A voucher joined to its account, both rows locked until commit.

    Race prevented: two redemptions of one voucher (or a redemption and its expiry) each
    reading the same balance, daily-use count or prescription and both spending it.
    """
    if token is not None:
        return session.execute(_LOCK_BY_TOKEN, {"token": token}).first()
    return session.execute(_LOCK_BY_ID, {"voucher_id": voucher_id}).first()


def voucher_by_token(session: Session, token: str) -> Record | None:
    """The voucher and its balance without a lock (balance inquiry)."""
    stmt = select(*_LOCK_COLUMNS).join(_account, _account.c.id == _voucher.c.account_id)
    return session.execute(stmt.where(_voucher.c.token == token)).first()


def insert_vouchers(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert vouchers (COPY on PostgreSQL, executemany on SQLite); ids in row order."""
    return bulk.insert_returning_ids(session, _voucher, rows)


def update_voucher(session: Session, voucher_id: int, values: dict[str, Any]) -> None:
    session.execute(update(_voucher).where(_voucher.c.id == voucher_id).values(**values))


def person_vouchers(session: Session, person_id: int) -> list[Record]:
    stmt = (
        select(*_LOCK_COLUMNS)
        .join(_account, _account.c.id == _voucher.c.account_id)
        .where(_voucher.c.person_id == person_id)
        .order_by(_voucher.c.id)
    )
    return list(session.execute(stmt).all())


def recent_vouchers(session: Session, *, limit: int) -> list[Record]:
    stmt = select(_voucher).order_by(_voucher.c.id.desc()).limit(limit)
    return list(session.execute(stmt).all())


def due_for_expiry(session: Session, *, today: date, limit: int) -> Sequence[int]:
    """Vouchers past their last day, or expired ones that still hold value (a late refund)."""
    stmt = (
        select(_voucher.c.id)
        .join(_account, _account.c.id == _voucher.c.account_id)
        .where(
            or_(
                (_voucher.c.valid_until < today)
                & (_voucher.c.status != VoucherStatus.EXPIRED.value),
                (_voucher.c.status == VoucherStatus.EXPIRED.value) & (_account.c.balance_minor > 0),
            )
        )
        .order_by(_voucher.c.id)
        .limit(limit)
    )
    return session.execute(stmt).scalars().all()


def statistics(session: Session) -> list[Record]:
    stmt = (
        select(
            _voucher.c.type,
            _voucher.c.status,
            func.count().label("vouchers"),
            func.sum(_voucher.c.nominal_minor).label("nominal_minor"),
            func.sum(_account.c.balance_minor).label("remaining_minor"),
        )
        .join(_account, _account.c.id == _voucher.c.account_id)
        .group_by(_voucher.c.type, _voucher.c.status)
        .order_by(_voucher.c.type, _voucher.c.status)
    )
    return list(session.execute(stmt).all())


def issued_from_decisions(session: Session, period: str) -> set[tuple[str, str, int, int]]:
    """(type, source program, source entity, person) of the vouchers issued from a month's
    decisions."""
    rows = session.execute(
        select(
            _voucher.c.type,
            _voucher.c.source_program_id,
            _voucher.c.source_entity_id,
            _voucher.c.person_id,
        ).where(_voucher.c.source_period == period, _voucher.c.source_program_id.is_not(None))
    )
    return {(row[0], row[1], row[2], row[3]) for row in rows}


def summary(session: Session) -> list[Record]:
    """Per voucher type and region: counts issued, activated, redeemed and expired, and tiyn
    issued, redeemed (captures net of refunds) and returned at expiry, from the ledger."""
    redeem_kinds = (PostingKind.CAPTURE.value, PostingKind.REFUND.value)
    moved = (
        select(
            _entry.c.account_id,
            func.sum(
                case((_posting.c.kind.in_(redeem_kinds), -_entry.c.amount_minor), else_=0)
            ).label("redeemed"),
            func.sum(
                case((_posting.c.kind == PostingKind.EXPIRY.value, -_entry.c.amount_minor), else_=0)
            ).label("expired"),
        )
        .join(_posting, _posting.c.id == _entry.c.posting_id)
        .join(_voucher, _voucher.c.account_id == _entry.c.account_id)
        .where(_posting.c.kind.in_((*redeem_kinds, PostingKind.EXPIRY.value)))
        .group_by(_entry.c.account_id)
        .subquery()
    )
    redeemed = func.coalesce(moved.c.redeemed, 0)
    stmt = (
        select(
            _voucher.c.type,
            _voucher.c.region_kato,
            func.count().label("issued"),
            func.count(_voucher.c.activated_at).label("activated"),
            func.sum(case((redeemed > 0, 1), else_=0)).label("redeemed"),
            func.sum(case((_voucher.c.status == VoucherStatus.EXPIRED.value, 1), else_=0)).label(
                "expired"
            ),
            func.sum(_voucher.c.nominal_minor).label("issued_minor"),
            func.sum(redeemed).label("redeemed_minor"),
            func.sum(func.coalesce(moved.c.expired, 0)).label("expired_minor"),
            func.sum(_account.c.balance_minor).label("remaining_minor"),
        )
        .join(_account, _account.c.id == _voucher.c.account_id)
        .outerjoin(moved, moved.c.account_id == _voucher.c.account_id)
        .group_by(_voucher.c.type, _voucher.c.region_kato)
        .order_by(_voucher.c.type, _voucher.c.region_kato)
    )
    return list(session.execute(stmt).all())


def sample_holder(session: Session, *, voucher_type: str) -> int | None:
    """A person holding an unused voucher of a type (for the demo's sign-in hint)."""
    stmt = (
        select(_voucher.c.person_id)
        .where(_voucher.c.type == voucher_type, _voucher.c.status == VoucherStatus.CREATED.value)
        .order_by(_voucher.c.id)
        .limit(1)
    )
    value = session.execute(stmt).scalar()
    return int(value) if value is not None else None


def turnover(session: Session, *, region_digits: int) -> list[Record]:
    """Value redeemed (captures net of refunds) by the voucher's month, program and region."""
    region = func.substr(_voucher.c.region_kato, 1, region_digits)
    stmt = (
        select(
            _voucher.c.period,
            _voucher.c.program_id,
            region.label("region_kato"),
            func.count(func.distinct(_posting.c.id)).label("postings"),
            func.sum(-_entry.c.amount_minor).label("amount_minor"),
        )
        .join(_posting, _posting.c.id == _entry.c.posting_id)
        .join(_voucher, _voucher.c.account_id == _entry.c.account_id)
        .where(_posting.c.kind.in_((PostingKind.CAPTURE.value, PostingKind.REFUND.value)))
        .group_by(_voucher.c.period, _voucher.c.program_id, region)
        .order_by(_voucher.c.period, _voucher.c.program_id, region)
    )
    return list(session.execute(stmt).all())
