"""Ledger queries. The hot paths use Core statements: a redemption is a handful of round trips."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, case, event, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, SessionTransaction

from socialcard.core import bulk
from socialcard.core.clock import utcnow
from socialcard.core.db import is_sqlite
from socialcard.wallet.enums import HoldStatus, PostingKind
from socialcard.wallet.ledger.models import Account, Entry, Hold, IdempotencyRecord, Posting
from socialcard.wallet.types import Record

_account = cast(Table, Account.__table__)
_posting = cast(Table, Posting.__table__)
_entry = cast(Table, Entry.__table__)
_hold = cast(Table, Hold.__table__)
_idem = cast(Table, IdempotencyRecord.__table__)


def begin_write(session: Session) -> None:
    """Take the store's write lock before the first read of a money movement.

    Race prevented (SQLite): two redemptions each reading the same balance before either
    writes. SQLite has no row locks; `BEGIN IMMEDIATE` takes the database write lock up front
    (waiting out `busy_timeout`), so reads that decide a payment see the latest committed
    state and the later upgrade to a write can never fail with SQLITE_BUSY. PostgreSQL takes
    row locks instead (lock_account, lock_voucher_and_account).
    """
    if not is_sqlite(session):
        return
    connection = session.connection()
    driver = connection.connection.driver_connection
    if driver is not None and not driver.in_transaction:
        # Threads of this process queue on a mutex rather than in SQLite's busy handler, which
        # polls with sleeps of up to 100 ms and so turns contention into seconds-long tails.
        # If the mutex is not free within the busy timeout, SQLite's own waiting takes over.
        if _WRITE_MUTEX.acquire(timeout=30):
            session.info["wallet_write_mutex"] = True
        connection.exec_driver_sql("BEGIN IMMEDIATE")


_WRITE_MUTEX = threading.Lock()


@event.listens_for(Session, "after_transaction_end")
def _release_write_mutex(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None and session.info.pop("wallet_write_mutex", False):
        _WRITE_MUTEX.release()


def _insert_ignoring_conflict(session: Session, table: Any, values: dict[str, Any]) -> Any:
    factory = sqlite_insert if is_sqlite(session) else pg_insert
    return factory(table).values(**values).on_conflict_do_nothing()


# Statements on the redemption path are built once: building one per call (and its cache key)
# cost more than running it on SQLite.
_CLAIM = {
    "sqlite": sqlite_insert(_idem).on_conflict_do_nothing().returning(_idem.c.id),
    "postgresql": pg_insert(_idem).on_conflict_do_nothing().returning(_idem.c.id),
}
_STORE_RESPONSE = (
    update(_idem)
    .where(_idem.c.id == bindparam("record_id"))
    .values(status_code=bindparam("code"), response=bindparam("answer"))
)
_INSERT_HOLD = insert(_hold).returning(_hold.c.id)
_INSERT_POSTING = insert(_posting).returning(_posting.c.id)
_CHANGE_BALANCE = (
    update(_account)
    .where(_account.c.id == bindparam("account"))
    .values(
        balance_minor=_account.c.balance_minor + bindparam("balance_delta"),
        held_minor=_account.c.held_minor + bindparam("held_delta"),
    )
)


def claim_idempotency(session: Session, *, scope: str, key: str, request_hash: str) -> int | None:
    """Insert the key's record; None when it already exists.

    Race prevented (PostgreSQL): two requests with one key at once. The second insert waits on
    the unique index until the first commits, then does nothing and replays its answer.
    """
    stmt = _CLAIM["sqlite" if is_sqlite(session) else "postgresql"]
    values = {"scope": scope, "key": key, "request_hash": request_hash, "status_code": 0}
    return session.execute(stmt, values).scalar_one_or_none()


def idempotency_record(session: Session, *, scope: str, key: str) -> Record | None:
    stmt = select(_idem.c.request_hash, _idem.c.status_code, _idem.c.response).where(
        _idem.c.scope == scope, _idem.c.key == key
    )
    return session.execute(stmt).first()


def store_idempotency_response(
    session: Session, *, record_id: int, status_code: int, response: str
) -> None:
    session.execute(
        _STORE_RESPONSE, {"record_id": record_id, "code": status_code, "answer": response}
    )


# --- bulk (funding a batch of orders): statements built once, run as executemany ----------------

_CLAIM_MANY = sqlite_insert(_idem).on_conflict_do_nothing().returning(_idem.c.key, _idem.c.id)
_RELEASE_CLAIM = _idem.delete().where(_idem.c.id == bindparam("record_id"))
# PostgreSQL: a whole batch in one statement, its values as arrays (executemany would be a
# round trip per row).
_CLAIM_MANY_PG = text(
    """
    INSERT INTO wallet_idempotency (scope, key, request_hash, status_code, created_at)
    SELECT :scope, k, h, 0, :created_at
    FROM unnest(CAST(:keys AS TEXT[]), CAST(:hashes AS TEXT[])) AS x(k, h)
    ON CONFLICT DO NOTHING
    RETURNING key, id
    """
)
_STORE_RESPONSES_PG = text(
    """
    UPDATE wallet_idempotency AS i SET status_code = 200, response = x.answer
    FROM unnest(CAST(:ids AS BIGINT[]), CAST(:answers AS TEXT[])) AS x(id, answer)
    WHERE i.id = x.id
    """
)
_RELEASE_CLAIMS_PG = text("DELETE FROM wallet_idempotency WHERE id = ANY(CAST(:ids AS BIGINT[]))")
_CHANGE_BALANCES_PG = text(
    """
    UPDATE wallet_account AS a SET balance_minor = a.balance_minor + x.delta
    FROM unnest(CAST(:ids AS BIGINT[]), CAST(:deltas AS BIGINT[])) AS x(id, delta)
    WHERE a.id = x.id
    """
)


def claim_idempotency_many(
    session: Session, *, scope: str, claims: Sequence[tuple[str, str]]
) -> dict[str, int]:
    """Insert the records of (key, request hash) pairs; key -> record id of those inserted.

    Keys already present are left out of the answer (see claim_idempotency for the race). The
    caller sorts the keys so two batches claim in one order and cannot deadlock.
    """
    if not claims:
        return {}
    now = utcnow()
    if is_sqlite(session):
        rows = [
            {"scope": scope, "key": k, "request_hash": h, "status_code": 0, "created_at": now}
            for k, h in claims
        ]
        return {row.key: row.id for row in session.execute(_CLAIM_MANY, rows)}
    values = {
        "scope": scope,
        "keys": [k for k, _ in claims],
        "hashes": [h for _, h in claims],
        "created_at": now,
    }
    return {row.key: row.id for row in session.execute(_CLAIM_MANY_PG, values)}


def idempotency_records(session: Session, *, scope: str, keys: Sequence[str]) -> dict[str, Record]:
    """The stored records of keys (request hash and answer), by key; absent keys are left out."""
    found: dict[str, Record] = {}
    for start in range(0, len(keys), 1000):
        stmt = select(_idem.c.key, _idem.c.request_hash, _idem.c.response).where(
            _idem.c.scope == scope, _idem.c.key.in_(keys[start : start + 1000])
        )
        found.update((row.key, row) for row in session.execute(stmt))
    return found


def store_idempotency_responses(session: Session, answers: Sequence[tuple[int, str]]) -> None:
    """Record the answers (record id, JSON) of claimed keys, status 200."""
    if not answers:
        return
    if is_sqlite(session):
        session.execute(
            _STORE_RESPONSE, [{"record_id": r, "code": 200, "answer": a} for r, a in answers]
        )
        return
    session.execute(
        _STORE_RESPONSES_PG, {"ids": [r for r, _ in answers], "answers": [a for _, a in answers]}
    )


def release_idempotency(session: Session, record_ids: Sequence[int]) -> None:
    """Drop claims whose request was refused, so a retry runs afresh (as a rollback would)."""
    if not record_ids:
        return
    if is_sqlite(session):
        session.execute(_RELEASE_CLAIM, [{"record_id": r} for r in record_ids])
        return
    session.execute(_RELEASE_CLAIMS_PG, {"ids": list(record_ids)})


def insert_accounts(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert accounts; their ids in the order of `rows`."""
    return bulk.insert_returning_ids(session, _account, rows)


def insert_postings(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert postings; their ids in the order of `rows`."""
    return bulk.insert_returning_ids(session, _posting, rows)


def insert_entries_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        columns = ("posting_id", "account_id", "amount_minor")
        bulk.copy_rows(session, "wallet_entry", columns, ([r[c] for c in columns] for r in rows))


def change_balances(session: Session, deltas: dict[int, int]) -> None:
    """Move the cached balances of accounts by their deltas, one update per account."""
    if not deltas:
        return
    ordered = sorted(deltas.items())
    if is_sqlite(session):
        session.execute(
            _CHANGE_BALANCE,
            [{"account": a, "balance_delta": d, "held_delta": 0} for a, d in ordered],
        )
        return
    session.execute(
        _CHANGE_BALANCES_PG, {"ids": [a for a, _ in ordered], "deltas": [d for _, d in ordered]}
    )


def account_by_code(session: Session, code: str) -> Record | None:
    return session.execute(select(_account).where(_account.c.code == code)).first()


def account_by_id(session: Session, account_id: int) -> Record | None:
    return session.execute(select(_account).where(_account.c.id == account_id)).first()


def insert_account_if_absent(session: Session, values: dict[str, Any]) -> None:
    session.execute(_insert_ignoring_conflict(session, _account, values))


def lock_account(session: Session, account_id: int) -> Record | None:
    """The account row, locked until commit.

    Race prevented: two debits of one account (a budget paying two benefits, a wallet paying
    two purchases) each reading the same balance and both passing the overdraft check.
    """
    stmt = select(_account).where(_account.c.id == account_id).with_for_update()
    return session.execute(stmt).first()


def insert_posting(session: Session, values: dict[str, Any]) -> int:
    return int(session.execute(_INSERT_POSTING, values).scalar_one())


def insert_entries(session: Session, rows: list[dict[str, Any]]) -> None:
    session.execute(insert(_entry), rows)


def change_balance(
    session: Session, *, account_id: int, balance_delta: int, held_delta: int
) -> None:
    session.execute(
        _CHANGE_BALANCE,
        {"account": account_id, "balance_delta": balance_delta, "held_delta": held_delta},
    )


def insert_hold(session: Session, values: dict[str, Any]) -> int:
    return int(session.execute(_INSERT_HOLD, values).scalar_one())


# Capturing an open hold on PostgreSQL: posting, entries, balance and hold in one round trip.
_CAPTURE_HOLD_PG = text(
    """
    WITH p AS (
        INSERT INTO wallet_posting (kind, posted_at, hold_id, voucher_id, merchant_id)
        VALUES ('capture', :now, :hold_id, :voucher_id, :merchant_id)
        RETURNING id
    ), e AS (
        INSERT INTO wallet_entry (posting_id, account_id, amount_minor)
        SELECT p.id, x.account_id, x.amount_minor
        FROM p, (VALUES (CAST(:account_id AS BIGINT), CAST(-:amount AS BIGINT)),
                        (CAST(:merchant_account_id AS BIGINT), CAST(:amount AS BIGINT)))
             AS x(account_id, amount_minor)
    ), a AS (
        UPDATE wallet_account
        SET balance_minor = balance_minor - :amount, held_minor = held_minor - :held
        WHERE id = :account_id
    ), h AS (
        UPDATE wallet_hold SET status = 'captured', captured_minor = :amount, resolved_at = :now
        WHERE id = :hold_id
    )
    SELECT p.id AS posting_id FROM p
    """
)


def capture_hold_pg(session: Session, values: dict[str, Any]) -> int:
    return int(session.execute(_CAPTURE_HOLD_PG, values).scalar_one())


def hold_by_id(session: Session, hold_id: int) -> Record | None:
    return session.execute(select(_hold).where(_hold.c.id == hold_id)).first()


def update_hold(session: Session, hold_id: int, values: dict[str, Any]) -> None:
    session.execute(update(_hold).where(_hold.c.id == hold_id).values(**values))


def posting_with_entries(session: Session, posting_id: int) -> tuple[Record | None, list[Record]]:
    posting = session.execute(select(_posting).where(_posting.c.id == posting_id)).first()
    entries = session.execute(
        select(_entry).where(_entry.c.posting_id == posting_id).order_by(_entry.c.id)
    ).all()
    return posting, list(entries)


def expired_open_holds(session: Session, *, now: datetime, limit: int) -> Sequence[int]:
    stmt = (
        select(_hold.c.id)
        .where(_hold.c.status == HoldStatus.AUTHORIZED.value, _hold.c.expires_at <= now)
        .order_by(_hold.c.id)
        .limit(limit)
    )
    return session.execute(stmt).scalars().all()


def open_hold_ids_for_voucher(session: Session, voucher_id: int) -> Sequence[int]:
    stmt = select(_hold.c.id).where(
        _hold.c.voucher_id == voucher_id, _hold.c.status == HoldStatus.AUTHORIZED.value
    )
    return session.execute(stmt).scalars().all()


def account_history(session: Session, *, account_ids: Sequence[int], limit: int) -> list[Record]:
    stmt = (
        select(
            _posting.c.id,
            _posting.c.kind,
            _posting.c.posted_at,
            _posting.c.voucher_id,
            _entry.c.amount_minor,
        )
        .join(_entry, _entry.c.posting_id == _posting.c.id)
        .where(_entry.c.account_id.in_(account_ids))
        .order_by(_posting.c.id.desc())
        .limit(limit)
    )
    return list(session.execute(stmt).all())


# --- invariant checks (wallet check) ---------------------------------------------------------


def unbalanced_postings(session: Session) -> list[Record]:
    stmt = (
        select(_entry.c.posting_id, func.sum(_entry.c.amount_minor).label("total"))
        .group_by(_entry.c.posting_id)
        .having(func.sum(_entry.c.amount_minor) != 0)
    )
    return list(session.execute(stmt).all())


def postings_without_entries(session: Session) -> list[int]:
    stmt = select(_posting.c.id).where(
        ~select(_entry.c.id).where(_entry.c.posting_id == _posting.c.id).exists()
    )
    return list(session.execute(stmt).scalars().all())


def replayed_balances(session: Session) -> list[Record]:
    """Each account with its cached balance and hold total next to a replay of its entries."""
    replay = (
        select(_entry.c.account_id, func.sum(_entry.c.amount_minor).label("replayed"))
        .group_by(_entry.c.account_id)
        .subquery()
    )
    open_holds = (
        select(_hold.c.account_id, func.sum(_hold.c.amount_minor).label("held"))
        .where(_hold.c.status == HoldStatus.AUTHORIZED.value)
        .group_by(_hold.c.account_id)
        .subquery()
    )
    stmt = (
        select(
            _account.c.id,
            _account.c.code,
            _account.c.allow_negative,
            _account.c.balance_cached,
            _account.c.balance_minor,
            _account.c.held_minor,
            func.coalesce(replay.c.replayed, 0).label("replayed"),
            func.coalesce(open_holds.c.held, 0).label("held_replayed"),
        )
        .outerjoin(replay, replay.c.account_id == _account.c.id)
        .outerjoin(open_holds, open_holds.c.account_id == _account.c.id)
        .order_by(_account.c.id)
    )
    return list(session.execute(stmt).all())


def hold_anomalies(session: Session) -> list[Record]:
    """Holds whose postings disagree with their status (captured once, others never)."""
    captures = (
        select(
            _posting.c.hold_id,
            func.count().label("captures"),
        )
        .where(_posting.c.kind == PostingKind.CAPTURE.value)
        .group_by(_posting.c.hold_id)
        .subquery()
    )
    count = func.coalesce(captures.c.captures, 0)
    expected = case((_hold.c.status == HoldStatus.CAPTURED.value, 1), else_=0)
    resolved_bad = case(
        (
            and_(_hold.c.status != HoldStatus.AUTHORIZED.value, _hold.c.resolved_at.is_(None)),
            1,
        ),
        (
            and_(_hold.c.status == HoldStatus.AUTHORIZED.value, _hold.c.resolved_at.is_not(None)),
            1,
        ),
        else_=0,
    )
    stmt = (
        select(_hold.c.id, _hold.c.status, count.label("captures"))
        .outerjoin(captures, captures.c.hold_id == _hold.c.id)
        .where(
            (count != expected)
            | (resolved_bad == 1)
            | (_hold.c.refunded_minor > _hold.c.captured_minor)
            | (_hold.c.captured_minor > _hold.c.amount_minor)
        )
    )
    return list(session.execute(stmt).all())


def merchant_day_totals(
    session: Session, *, merchant_id: int, start: datetime, end: datetime
) -> Record:
    """Captured, refunded and count of a merchant's postings in [start, end), from the entries."""
    captured = func.coalesce(
        func.sum(case((_entry.c.amount_minor > 0, _entry.c.amount_minor), else_=0)), 0
    )
    refunded = func.coalesce(
        func.sum(case((_entry.c.amount_minor < 0, -_entry.c.amount_minor), else_=0)), 0
    )
    stmt = (
        select(captured.label("captured"), refunded.label("refunded"), func.count().label("n"))
        .select_from(_posting.join(_entry, _entry.c.posting_id == _posting.c.id))
        .join(_account, _account.c.id == _entry.c.account_id)
        .where(
            _posting.c.merchant_id == merchant_id,
            _account.c.merchant_id == merchant_id,
            _posting.c.posted_at >= start,
            _posting.c.posted_at < end,
        )
    )
    return session.execute(stmt).one()


def merchant_day_postings(
    session: Session, *, merchant_id: int, start: datetime, end: datetime
) -> list[Record]:
    stmt = (
        select(
            _posting.c.id,
            _posting.c.kind,
            _posting.c.posted_at,
            _posting.c.hold_id,
            _entry.c.amount_minor,
        )
        .join(_entry, _entry.c.posting_id == _posting.c.id)
        .join(_account, _account.c.id == _entry.c.account_id)
        .where(
            _posting.c.merchant_id == merchant_id,
            _account.c.merchant_id == merchant_id,
            _posting.c.posted_at >= start,
            _posting.c.posted_at < end,
        )
        .order_by(_posting.c.id)
    )
    return list(session.execute(stmt).all())


def counts(session: Session) -> dict[str, int]:
    return {
        "accounts": session.execute(select(func.count()).select_from(_account)).scalar_one(),
        "postings": session.execute(select(func.count()).select_from(_posting)).scalar_one(),
        "entries": session.execute(select(func.count()).select_from(_entry)).scalar_one(),
        "holds": session.execute(select(func.count()).select_from(_hold)).scalar_one(),
    }


def accounts_of_kind(session: Session, kind: str) -> list[Record]:
    """Every account of a kind (budgets are one per program and region: a few hundred)."""
    query = (
        select(Account.program_id, Account.region_kato, Account.balance_minor)
        .where(Account.kind == kind)
        .order_by(Account.program_id, Account.region_kato)
    )
    return list(session.execute(query).all())
