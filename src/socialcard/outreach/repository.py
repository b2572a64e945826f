"""Outreach queries: segments and cases."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from socialcard.outreach.models import OutreachCase, Segment


def segment_by_code(session: Session, code: str) -> Segment | None:
    return session.scalars(select(Segment).where(Segment.code == code)).first()


def segments(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(Segment.code)))


def add(session: Session, row: Segment | OutreachCase) -> None:
    session.add(row)
    session.flush()


def case_by_id(session: Session, case_id: int) -> OutreachCase | None:
    return session.get(OutreachCase, case_id)


_ID_CHUNK = 900  # ids per IN list: below SQLite's default bound-parameter limit


def case_offer_ids(session: Session, offer_ids: Sequence[int]) -> set[int]:
    """Which of these offers already have a case."""
    ids = sorted(set(offer_ids))
    out: set[int] = set()
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        stmt = select(OutreachCase.offer_id).where(OutreachCase.offer_id.in_(chunk))
        out |= {int(i) for i in session.scalars(stmt)}
    return out


def cases(
    session: Session,
    *,
    segment_code: str | None,
    outcome: str | None,
    family_id: int | None,
    offset: int,
    limit: int,
) -> tuple[list[OutreachCase], int]:
    stmt = select(OutreachCase)
    if segment_code is not None:
        stmt = stmt.where(OutreachCase.segment_code == segment_code)
    if outcome is not None:
        stmt = stmt.where(OutreachCase.outcome == outcome)
    if family_id is not None:
        stmt = stmt.where(OutreachCase.family_id == family_id)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(OutreachCase.id).offset(offset).limit(limit))
    return list(rows), int(total)


def outcome_counts(session: Session, segment_code: str) -> dict[str, int]:
    stmt = (
        select(OutreachCase.outcome, func.count())
        .where(OutreachCase.segment_code == segment_code)
        .group_by(OutreachCase.outcome)
    )
    return {str(o): int(n) for o, n in session.execute(stmt)}
