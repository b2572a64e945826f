"""Ledger rules: balanced immutable postings, no-overdraft accounts, holds, idempotency."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.db import is_sqlite
from socialcard.core.errors import InvalidInput, field_error
from socialcard.wallet.enums import AccountKind, HoldStatus, PostingKind
from socialcard.wallet.errors import (
    AccountNotFound,
    CaptureTooLarge,
    HoldNotFound,
    HoldNotOpen,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    InsufficientFunds,
    RefundTooLarge,
    UnbalancedPosting,
)
from socialcard.wallet.ledger import repository
from socialcard.wallet.types import Record

begin_write = repository.begin_write


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of a posting. `cached` legs also move the account's balance projection."""

    account_id: int
    amount_minor: int
    cached: bool = True


# --- idempotency -------------------------------------------------------------------------------


def request_hash(operation: str, payload: dict[str, Any]) -> str:
    """A stable digest of what a request asked for (same key + other payload -> 409)."""
    canonical = json.dumps([operation, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def require_idempotency_key(key: str | None) -> str:
    """The client's Idempotency-Key, or IdempotencyKeyMissing naming the header."""
    if not key or len(key) > 100:
        raise IdempotencyKeyMissing(
            "send an Idempotency-Key header of 1 to 100 characters",
            details=[field_error("Idempotency-Key", "required, 1 to 100 characters")],
        )
    return key


def encode_answer(answer: dict[str, Any]) -> str:
    """The stored (and replayed, and sent) form of an answer: strict JSON text.

    Run before the transaction commits, so an answer that cannot be sent (a lone surrogate in
    a client's text cannot be written as UTF-8) rolls the request back as a 422 instead of
    committing a purchase the till is then never told about, and its replays fail the same.
    """
    try:
        return orjson.dumps(answer, default=str).decode()
    except TypeError as exc:
        reason = f"text must be valid Unicode ({exc})"
        raise InvalidInput(reason, details=[field_error("body", reason)]) from None


def replay_text(session: Session, *, scope: str, key: str, request_hash: str) -> str:
    """The answer stored under a claimed key, as stored; IdempotencyKeyReused if the request
    differs."""
    record = repository.idempotency_record(session, scope=scope, key=key)
    if record is None or record.request_hash != request_hash or record.response is None:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request",
            details=[field_error("Idempotency-Key", "reused with a different payload")],
        )
    return str(record.response)


def replay(session: Session, *, scope: str, key: str, request_hash: str) -> dict[str, Any]:
    """The answer stored under a claimed key; IdempotencyKeyReused if the request differs."""
    stored: dict[str, Any] = json.loads(
        replay_text(session, scope=scope, key=key, request_hash=request_hash)
    )
    return stored


def idempotent(
    session: Session,
    *,
    scope: str,
    key: str | None,
    operation: str,
    payload: dict[str, Any],
    handler: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """Run `handler` once per (scope, key); a retry with the same payload gets the same answer.

    The key is claimed in the same transaction as the effect, so either both commit or neither
    does. An AppError from the handler rolls back the claim too: a retry runs afresh.
    """
    key = require_idempotency_key(key)
    begin_write(session)
    digest = request_hash(operation, payload)
    record_id = repository.claim_idempotency(session, scope=scope, key=key, request_hash=digest)
    if record_id is None:
        return replay(session, scope=scope, key=key, request_hash=digest)
    result = handler()
    repository.store_idempotency_response(
        session,
        record_id=record_id,
        status_code=200,
        response=encode_answer(result),
    )
    return result


# --- accounts ----------------------------------------------------------------------------------


def budget_code(program_id: str, region_kato: str) -> str:
    return f"budget:{program_id}:{region_kato}"


def ensure_account(
    session: Session,
    *,
    code: str,
    kind: AccountKind,
    allow_negative: bool = False,
    balance_cached: bool = True,
    **attrs: Any,
) -> Record:
    """The account with this code, created on first use."""
    found = repository.account_by_code(session, code)
    if found is not None:
        return found
    repository.insert_account_if_absent(
        session,
        {
            "code": code,
            "kind": kind.value,
            "allow_negative": allow_negative,
            "balance_cached": balance_cached,
            "balance_minor": 0,
            "held_minor": 0,
            "created_at": utcnow(),
            **attrs,
        },
    )
    created = repository.account_by_code(session, code)
    assert created is not None  # noqa: S101 - inserted or present just above
    return created


def new_account_values(
    *, code: str, kind: AccountKind, now: datetime | None = None, **attrs: Any
) -> dict[str, Any]:
    """The row of an account that cannot exist yet (a voucher's own account), empty."""
    return {
        "code": code,
        "kind": kind.value,
        "allow_negative": False,
        "balance_cached": True,
        "balance_minor": 0,
        "held_minor": 0,
        "created_at": now or utcnow(),
        "program_id": None,
        "region_kato": None,
        "person_id": None,
        "benefit_type": None,
        "merchant_id": None,
        **attrs,
    }


def lock_account(session: Session, account_id: int) -> Record:
    """The account, locked for this transaction (see repository.lock_account for the race)."""
    row = repository.lock_account(session, account_id)
    if row is None:
        raise AccountNotFound(f"no account with id {account_id}")
    return row


def available(account: Record) -> int:
    """What an account may still spend: its balance less open holds."""
    return int(account.balance_minor) - int(account.held_minor)


def require_available(account: Record, amount_minor: int, *, what: str = "account") -> None:
    """InsufficientFunds unless a locked account may pay `amount_minor`."""
    if not account.allow_negative and available(account) < amount_minor:
        raise InsufficientFunds(
            f"the {what} has {available(account)} tiyn available, {amount_minor} needed",
            details=[field_error("amount_minor", "exceeds the available balance")],
        )


# --- postings ----------------------------------------------------------------------------------


def balanced_legs(legs: Sequence[Leg]) -> list[Leg]:
    """The non-zero legs of a posting, refused unless at least two sum to zero."""
    kept = [leg for leg in legs if leg.amount_minor != 0]
    if len(kept) < 2 or sum(leg.amount_minor for leg in kept) != 0:
        raise UnbalancedPosting(
            "a posting needs at least two non-zero legs summing to zero",
            details=[field_error("legs", "unbalanced")],
        )
    return kept


def post(
    session: Session,
    *,
    kind: PostingKind,
    legs: Sequence[Leg],
    now: datetime | None = None,
    hold_id: int | None = None,
    voucher_id: int | None = None,
    merchant_id: int | None = None,
    reverses_id: int | None = None,
    memo: str | None = None,
) -> int:
    """Write one balanced posting (entries sum to zero); debited accounts must be locked first."""
    legs = balanced_legs(legs)
    posting_id = repository.insert_posting(
        session,
        {
            "kind": kind.value,
            "posted_at": now or utcnow(),
            "hold_id": hold_id,
            "voucher_id": voucher_id,
            "merchant_id": merchant_id,
            "reverses_id": reverses_id,
            "memo": memo,
        },
    )
    repository.insert_entries(
        session,
        [
            {
                "posting_id": posting_id,
                "account_id": leg.account_id,
                "amount_minor": leg.amount_minor,
            }
            for leg in legs
        ],
    )
    for leg in legs:
        if leg.cached:
            repository.change_balance(
                session, account_id=leg.account_id, balance_delta=leg.amount_minor, held_delta=0
            )
    return posting_id


@dataclass(frozen=True, slots=True)
class NewPosting:
    """One posting of a batch (post_many); the debited accounts must be locked first."""

    kind: PostingKind
    legs: Sequence[Leg]
    voucher_id: int | None = None
    memo: str | None = None


def post_many(session: Session, postings: Sequence[NewPosting], *, now: datetime) -> list[int]:
    """Write a batch of balanced postings in a few statements; their ids in order.

    The same rules as `post`; each cached account's balance moves once, by the batch's sum.
    """
    legs_of = [balanced_legs(posting.legs) for posting in postings]
    ids = repository.insert_postings(
        session,
        [
            {
                "kind": p.kind.value,
                "posted_at": now,
                "hold_id": None,
                "voucher_id": p.voucher_id,
                "merchant_id": None,
                "reverses_id": None,
                "memo": p.memo,
            }
            for p in postings
        ],
    )
    entries: list[dict[str, Any]] = []
    deltas: dict[int, int] = {}
    for posting_id, legs in zip(ids, legs_of, strict=True):
        for leg in legs:
            entries.append(
                {
                    "posting_id": posting_id,
                    "account_id": leg.account_id,
                    "amount_minor": leg.amount_minor,
                }
            )
            if leg.cached:
                deltas[leg.account_id] = deltas.get(leg.account_id, 0) + leg.amount_minor
    repository.insert_entries_many(session, entries)
    repository.change_balances(session, deltas)
    return ids


def reverse(session: Session, *, posting_id: int, memo: str | None = None) -> int:
    """Undo a posting by a new posting with every leg negated (postings are never edited)."""
    begin_write(session)
    posting, entries = repository.posting_with_entries(session, posting_id)
    if posting is None:
        raise AccountNotFound(f"no posting with id {posting_id}", code="posting_not_found")
    legs = []
    for entry in entries:
        account = lock_account(session, entry.account_id)
        if -entry.amount_minor < 0:
            require_available(account, entry.amount_minor)
        legs.append(Leg(entry.account_id, -entry.amount_minor, cached=account.balance_cached))
    return post(
        session,
        kind=PostingKind.REVERSAL,
        legs=legs,
        reverses_id=posting_id,
        voucher_id=posting.voucher_id,
        merchant_id=posting.merchant_id,
        memo=memo or f"reversal of posting {posting_id}",
    )


# --- holds -------------------------------------------------------------------------------------


def open_hold(
    session: Session,
    *,
    account_id: int,
    funds: Record,
    voucher_id: int,
    merchant_id: int,
    terminal_id: int | None,
    amount_minor: int,
    lines: list[dict[str, Any]],
    now: datetime,
    ttl: timedelta,
) -> int:
    """Reserve `amount_minor` on a locked account (`funds`: its locked balances) until resolved."""
    require_available(funds, amount_minor, what="wallet")
    hold_id = repository.insert_hold(
        session,
        {
            "account_id": account_id,
            "voucher_id": voucher_id,
            "merchant_id": merchant_id,
            "terminal_id": terminal_id,
            "amount_minor": amount_minor,
            "captured_minor": 0,
            "refunded_minor": 0,
            "status": HoldStatus.AUTHORIZED.value,
            "lines": json.dumps(lines, separators=(",", ":")),
            "created_at": now,
            "expires_at": now + ttl,
        },
    )
    repository.change_balance(
        session, account_id=account_id, balance_delta=0, held_delta=amount_minor
    )
    return hold_id


def capture_now(
    session: Session,
    *,
    account_id: int,
    voucher_id: int,
    merchant_id: int,
    terminal_id: int | None,
    merchant_account_id: int,
    amount_minor: int,
    lines: list[dict[str, Any]],
    now: datetime,
) -> tuple[int, int]:
    """Authorize and capture in one step (a hold born captured); the account must be locked.

    Statement by statement, as on SQLite; PostgreSQL redemptions write the same rows in one
    statement (redemption/repository.WRITE_AUTHORIZATION).
    """
    if amount_minor <= 0:
        raise UnbalancedPosting("a capture needs a positive amount")
    hold_id = repository.insert_hold(
        session,
        {
            "account_id": account_id,
            "voucher_id": voucher_id,
            "merchant_id": merchant_id,
            "terminal_id": terminal_id,
            "amount_minor": amount_minor,
            "captured_minor": amount_minor,
            "refunded_minor": 0,
            "status": HoldStatus.CAPTURED.value,
            "lines": json.dumps(lines, separators=(",", ":")),
            "created_at": now,
            "expires_at": now,
            "resolved_at": now,
        },
    )
    posting_id = post(
        session,
        kind=PostingKind.CAPTURE,
        legs=[Leg(account_id, -amount_minor), Leg(merchant_account_id, amount_minor, cached=False)],
        now=now,
        hold_id=hold_id,
        voucher_id=voucher_id,
        merchant_id=merchant_id,
    )
    return hold_id, posting_id


def get_hold(session: Session, hold_id: int) -> Record:
    hold = repository.hold_by_id(session, hold_id)
    if hold is None:
        raise HoldNotFound(f"no authorization with id {hold_id}")
    return hold


def _require_open(hold: Record) -> None:
    if hold.status != HoldStatus.AUTHORIZED.value:
        raise HoldNotOpen(
            f"authorization {hold.id} is already {hold.status}",
            details=[field_error("hold_id", f"already {hold.status}")],
        )


def capture_hold(
    session: Session,
    *,
    hold: Record,
    amount_minor: int,
    merchant_account_id: int,
    now: datetime,
) -> int:
    """Capture all or part of an open hold (its account locked); the rest is released."""
    _require_open(hold)
    if now >= hold.expires_at:
        raise HoldNotOpen(
            f"authorization {hold.id} has expired",
            details=[field_error("hold_id", "expired")],
        )
    if amount_minor > hold.amount_minor or amount_minor < 0:
        raise CaptureTooLarge(
            f"capture of {amount_minor} exceeds the authorized {hold.amount_minor}",
            details=[field_error("amount_minor", "exceeds the authorized amount")],
        )
    if amount_minor > 0 and not is_sqlite(session):
        return repository.capture_hold_pg(
            session,
            {
                "hold_id": hold.id,
                "voucher_id": hold.voucher_id,
                "merchant_id": hold.merchant_id,
                "account_id": hold.account_id,
                "merchant_account_id": merchant_account_id,
                "amount": amount_minor,
                "held": hold.amount_minor,
                "now": now,
            },
        )
    posting_id = 0
    if amount_minor > 0:
        posting_id = post(
            session,
            kind=PostingKind.CAPTURE,
            legs=[
                Leg(hold.account_id, -amount_minor),
                Leg(merchant_account_id, amount_minor, cached=False),
            ],
            now=now,
            hold_id=hold.id,
            voucher_id=hold.voucher_id,
            merchant_id=hold.merchant_id,
        )
    repository.change_balance(
        session, account_id=hold.account_id, balance_delta=0, held_delta=-hold.amount_minor
    )
    status = HoldStatus.CAPTURED if amount_minor > 0 else HoldStatus.VOIDED
    repository.update_hold(
        session,
        hold.id,
        {"status": status.value, "captured_minor": amount_minor, "resolved_at": now},
    )
    return posting_id


def release_hold(session: Session, *, hold: Record, status: HoldStatus, now: datetime) -> None:
    """Void or expire an open hold (its account locked): the reservation is released."""
    _require_open(hold)
    repository.change_balance(
        session, account_id=hold.account_id, balance_delta=0, held_delta=-hold.amount_minor
    )
    repository.update_hold(session, hold.id, {"status": status.value, "resolved_at": now})


def refund_hold(
    session: Session,
    *,
    hold: Record,
    amount_minor: int,
    merchant_account_id: int,
    now: datetime,
) -> int:
    """Return captured value from the merchant to the citizen's wallet (never as cash)."""
    if hold.status != HoldStatus.CAPTURED.value:
        raise HoldNotOpen(
            f"authorization {hold.id} is {hold.status}; only captured ones can be refunded",
            details=[field_error("hold_id", "not captured")],
        )
    if amount_minor <= 0 or hold.refunded_minor + amount_minor > hold.captured_minor:
        raise RefundTooLarge(
            f"refund of {amount_minor} exceeds the {hold.captured_minor - hold.refunded_minor}"
            " still refundable",
            details=[field_error("amount_minor", "exceeds the captured amount not yet refunded")],
        )
    posting_id = post(
        session,
        kind=PostingKind.REFUND,
        legs=[
            Leg(merchant_account_id, -amount_minor, cached=False),
            Leg(hold.account_id, amount_minor),
        ],
        now=now,
        hold_id=hold.id,
        voucher_id=hold.voucher_id,
        merchant_id=hold.merchant_id,
    )
    repository.update_hold(session, hold.id, {"refunded_minor": hold.refunded_minor + amount_minor})
    return posting_id


def expired_hold_ids(session: Session, *, now: datetime, limit: int = 1000) -> Sequence[int]:
    return repository.expired_open_holds(session, now=now, limit=limit)


def open_hold_ids_for_voucher(session: Session, voucher_id: int) -> Sequence[int]:
    return repository.open_hold_ids_for_voucher(session, voucher_id)


def history(session: Session, *, account_ids: Sequence[int], limit: int = 100) -> list[Record]:
    return repository.account_history(session, account_ids=account_ids, limit=limit)


# --- invariants --------------------------------------------------------------------------------


def check_ledger(session: Session) -> list[str]:
    """Every ledger invariant that does not hold, one line each (empty when clean)."""
    problems: list[str] = []
    for row in repository.unbalanced_postings(session):
        problems.append(f"posting {row.posting_id} sums to {row.total}, not zero")
    for posting_id in repository.postings_without_entries(session):
        problems.append(f"posting {posting_id} has no entries")
    for row in repository.replayed_balances(session):
        if row.balance_cached and row.balance_minor != row.replayed:
            problems.append(
                f"account {row.code}: cached balance {row.balance_minor} != replay {row.replayed}"
            )
        if row.held_minor != row.held_replayed:
            problems.append(
                f"account {row.code}: held {row.held_minor} != open holds {row.held_replayed}"
            )
        if not row.allow_negative and (row.replayed < 0 or row.replayed - row.held_replayed < 0):
            problems.append(f"account {row.code} forbids overdraft but stands at {row.replayed}")
    for row in repository.hold_anomalies(session):
        problems.append(
            f"hold {row.id} ({row.status}) has {row.captures} capture postings or bad amounts"
        )
    return problems


def ledger_counts(session: Session) -> dict[str, int]:
    return repository.counts(session)
