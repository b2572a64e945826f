"""The life-event outbox is ordered and each consumer reads from its own position."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from socialcard.registry import events
from socialcard.registry.enums import EventKind
from tests.factories import make_person


def test_consumers_read_in_order_from_their_own_position(session: Session) -> None:
    person = make_person(session)
    written = events.record_events(
        session,
        [
            events.NewEvent(EventKind.BIRTH, person.id, None, date(2026, 1, 1), {"n": 1}),
            events.NewEvent(EventKind.DEATH, person.id, None, date(2026, 2, 1), {"n": 2}),
        ],
    )
    assert written == 2
    first = events.read_events(session, consumer="proactive", limit=1)
    assert [e.kind for e in first] == ["birth"]
    events.acknowledge(session, consumer="proactive", position=first[0].id)
    rest = events.read_events(session, consumer="proactive")
    assert [e.kind for e in rest] == ["death"]
    assert [e.kind for e in events.read_events(session, consumer="reports")] == ["birth", "death"]
    events.acknowledge(session, consumer="proactive", position=rest[0].id)
    assert events.read_events(session, consumer="proactive") == []
