"""The life-event outbox: ordered events that other domains read from their own position."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from socialcard.core.bulk import copy_rows
from socialcard.core.clock import utcnow
from socialcard.registry import repository
from socialcard.registry.enums import EventKind
from socialcard.registry.models import Event

EVENT_COLUMNS = ("kind", "person_id", "family_id", "occurred_on", "payload", "recorded_at")


class NewEvent(NamedTuple):
    kind: EventKind
    person_id: int | None
    family_id: int | None
    occurred_on: date
    payload: dict[str, Any]


def record_events(session: Session, events: Iterable[NewEvent]) -> int:
    """Append events to the outbox in the given order; returns how many."""
    now = utcnow()
    rows = [
        (e.kind.value, e.person_id, e.family_id, e.occurred_on, json.dumps(e.payload), now)
        for e in events
    ]
    if rows:
        copy_rows(session, Event.__tablename__, EVENT_COLUMNS, rows)
    return len(rows)


def read_events(session: Session, *, consumer: str, limit: int = 1000) -> Sequence[Event]:
    """The next events after the consumer's position (does not move the position)."""
    position = repository.cursor_position(session, consumer)
    return repository.events_after(session, position=position, limit=limit)


def acknowledge(session: Session, *, consumer: str, position: int) -> None:
    """Move the consumer's position to `position` (the id of the last event it handled)."""
    repository.set_cursor_position(session, consumer, position)
