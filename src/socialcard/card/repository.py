"""Card queries (the only place the card domain builds statements)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from socialcard.card.models import (
    BankLink,
    Card,
    CardPin,
    KioskSession,
    PassBatch,
    StatusListRow,
)
from socialcard.core import bulk
from socialcard.core.db import is_sqlite

_card = cast(Table, Card.__table__)
_batch = cast(Table, PassBatch.__table__)


def begin_write(session: Session) -> None:
    """On SQLite take the write lock now (BEGIN IMMEDIATE) when no transaction is open, so two
    writers of a status list or a PIN counter never interleave read and write."""
    if not is_sqlite(session):
        return
    connection = session.connection()
    driver = connection.connection.driver_connection
    if driver is not None and not driver.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


# --- cards ---


def card_by_id(session: Session, card_id: int) -> Card | None:
    return session.get(Card, card_id)


def card_by_person(session: Session, person_id: int) -> Card | None:
    return session.scalars(select(Card).where(Card.person_id == person_id)).first()


def card_by_chip(session: Session, chip_id: str) -> Card | None:
    return session.scalars(select(Card).where(Card.chip_id == chip_id)).first()


def cards_by_person(session: Session, person_ids: Sequence[int]) -> dict[int, Card]:
    out: dict[int, Card] = {}
    for start in range(0, len(person_ids), 5000):
        chunk = person_ids[start : start + 5000]
        for card in session.scalars(select(Card).where(Card.person_id.in_(chunk))):
            out[card.person_id] = card
    return out


def all_card_statuses(session: Session) -> dict[int, tuple[int, str, str]]:
    """person id -> (card id, statuses JSON, state) for every card."""
    rows = session.execute(select(Card.person_id, Card.id, Card.statuses, Card.state))
    return {pid: (cid, statuses, state) for pid, cid, statuses, state in rows}


def card_ids(session: Session, *, active_only: bool = True, limit: int | None = None) -> list[int]:
    stmt = select(Card.id).order_by(Card.id)
    if active_only:
        stmt = stmt.where(Card.state == "active", Card.statuses != "[]")
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def cards_for_issue(session: Session, ids: Sequence[int]) -> list[tuple[int, str, str, str]]:
    """(id, region, statuses, state) of the given cards."""
    rows = session.execute(
        select(Card.id, Card.region_kato, Card.statuses, Card.state).where(Card.id.in_(ids))
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def update_card_statuses(
    session: Session, changes: Iterable[tuple[int, str, str]], *, now: datetime
) -> None:
    """Set (card id, statuses JSON, period) for many cards in one executemany."""
    rows = [{"i": cid, "s": s, "p": p, "t": now} for cid, s, p in changes]
    if rows:
        session.connection().execute(
            _card.update()
            .where(_card.c.id == bindparam("i"))
            .values(
                statuses=bindparam("s"), statuses_period=bindparam("p"), updated_at=bindparam("t")
            ),
            rows,
        )


def insert_cards(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    return bulk.insert_returning_ids(session, _card, rows)


def insert_batches(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    return bulk.insert_returning_ids(session, _batch, rows)


def count_cards(session: Session) -> dict[str, int]:
    rows = session.execute(select(Card.state, func.count()).group_by(Card.state))
    return {state: int(n) for state, n in rows}


# --- PINs ---


def pin_for_update(session: Session, card_id: int) -> CardPin | None:
    # Row lock: two kiosks trying PINs on one card at once must each spend a try (the race is
    # two reads of tries_left=1 both going on to check).
    return session.scalars(
        select(CardPin).where(CardPin.card_id == card_id).with_for_update()
    ).first()


def pin_of(session: Session, card_id: int) -> CardPin | None:
    return session.get(CardPin, card_id)


# --- status lists ---


def open_list_for_update(session: Session) -> StatusListRow | None:
    # Row lock: two issuers allocating indexes from one list at once would hand out the same
    # positions of its permutation.
    return session.scalars(
        select(StatusListRow)
        .where(StatusListRow.next_position < StatusListRow.size)
        .order_by(StatusListRow.id.desc())
        .limit(1)
        .with_for_update()
    ).first()


def lists_for_update(session: Session, ids: Sequence[int]) -> dict[int, StatusListRow]:
    # Row lock: the revocation job and an operator changing entries of one list at once would
    # each write back the blob without the other's change.
    rows = session.scalars(select(StatusListRow).where(StatusListRow.id.in_(ids)).with_for_update())
    return {row.id: row for row in rows}


def all_lists(session: Session) -> list[StatusListRow]:
    return list(session.scalars(select(StatusListRow).order_by(StatusListRow.id)))


def list_tokens(session: Session) -> list[tuple[int, int, str | None]]:
    """(id, signed version, token) of every list: what a verifier refresh reads."""
    rows = session.execute(
        select(StatusListRow.id, StatusListRow.signed_version, StatusListRow.token)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def list_versions(session: Session) -> list[tuple[int, int, datetime | None]]:
    """(id, signed version, signed at) of every list: what tells a verifier to re-read one."""
    rows = session.execute(
        select(StatusListRow.id, StatusListRow.signed_version, StatusListRow.signed_at)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def list_token(session: Session, list_id: int) -> str | None:
    return session.scalar(select(StatusListRow.token).where(StatusListRow.id == list_id))


# --- pass batches ---


def batches_of_cards(
    session: Session, card_ids: Sequence[int], *, states: Sequence[str], now: datetime
) -> list[PassBatch]:
    out: list[PassBatch] = []
    for start in range(0, len(card_ids), 5000):
        chunk = card_ids[start : start + 5000]
        out.extend(
            session.scalars(
                select(PassBatch).where(
                    PassBatch.card_id.in_(chunk),
                    PassBatch.state.in_(states),
                    PassBatch.expires_at > now,
                )
            )
        )
    return out


def batch_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(PassBatch.state, func.count()).group_by(PassBatch.state))
    return {state: int(n) for state, n in rows}


# --- bank links ---


def active_link_by_token(session: Session, token: str) -> BankLink | None:
    return session.scalars(
        select(BankLink).where(BankLink.token == token, BankLink.active.is_(True))
    ).first()


def link_by_id(session: Session, link_id: int) -> BankLink | None:
    return session.get(BankLink, link_id)


def links_of_card(session: Session, card_id: int) -> list[BankLink]:
    return list(
        session.scalars(select(BankLink).where(BankLink.card_id == card_id).order_by(BankLink.id))
    )


# --- kiosk sessions ---


def kiosk_session_by_hash(session: Session, token_hash: str) -> KioskSession | None:
    return session.scalars(
        select(KioskSession).where(KioskSession.token_hash == token_hash)
    ).first()


def delete_kiosk_session(session: Session, session_id: int) -> None:
    session.execute(delete(KioskSession).where(KioskSession.id == session_id))


def delete_idle_kiosk_sessions(session: Session, *, idle_before: datetime) -> int:
    result = session.execute(delete(KioskSession).where(KioskSession.last_seen_at < idle_before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def touch_kiosk_session(session: Session, session_id: int, now: datetime) -> None:
    session.execute(
        update(KioskSession).where(KioskSession.id == session_id).values(last_seen_at=now)
    )
