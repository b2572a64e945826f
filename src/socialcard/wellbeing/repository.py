"""Well-being queries: runs, results, counts, level changes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
from sqlalchemy import Select, func, select
from sqlalchemy import null as sa_null
from sqlalchemy.orm import Session, aliased

from socialcard.wellbeing.models import WellbeingResult, WellbeingRun

RESULT_TABLE = WellbeingResult.__tablename__


def run_by_id(session: Session, run_id: int) -> WellbeingRun | None:
    return session.get(WellbeingRun, run_id)


def list_runs(
    session: Session, *, methodology_id: str | None, offset: int, limit: int
) -> tuple[list[WellbeingRun], int]:
    stmt = select(WellbeingRun)
    if methodology_id:
        stmt = stmt.where(WellbeingRun.methodology_id == methodology_id)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(WellbeingRun.id.desc()).offset(offset).limit(limit))
    return list(rows), int(total)


def previous_run(session: Session, run: WellbeingRun) -> WellbeingRun | None:
    """The latest earlier run of the same methodology."""
    stmt = (
        select(WellbeingRun)
        .where(WellbeingRun.methodology_id == run.methodology_id, WellbeingRun.id < run.id)
        .order_by(WellbeingRun.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def latest_run_with_family(session: Session, family_id: int) -> int | None:
    stmt = select(func.max(WellbeingResult.run_id)).where(WellbeingResult.family_id == family_id)
    value = session.scalar(stmt)
    return int(value) if value is not None else None


def result(session: Session, run_id: int, family_id: int) -> WellbeingResult | None:
    return session.get(WellbeingResult, (run_id, family_id))


def region_level_counts(session: Session, run_id: int) -> list[tuple[Any, ...]]:
    stmt = (
        select(WellbeingResult.region_kato, WellbeingResult.level, func.count())
        .where(WellbeingResult.run_id == run_id)
        .group_by(WellbeingResult.region_kato, WellbeingResult.level)
        .order_by(WellbeingResult.region_kato, WellbeingResult.level)
    )
    return [tuple(r) for r in session.execute(stmt)]


def _families(run_id: int, level: str | None, region: str | None) -> Select[Any]:
    stmt = select(WellbeingResult).where(WellbeingResult.run_id == run_id)
    if level is not None:
        stmt = stmt.where(WellbeingResult.level == level)
    if region is not None:
        stmt = stmt.where(WellbeingResult.region_kato.startswith(region, autoescape=True))
    return stmt


def families(
    session: Session,
    *,
    run_id: int,
    level: str | None,
    region: str | None,
    offset: int,
    limit: int,
) -> tuple[list[WellbeingResult], int]:
    stmt = _families(run_id, level, region)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(WellbeingResult.family_id).offset(offset).limit(limit))
    return list(rows), int(total)


def iter_families(
    session: Session, *, run_id: int, level: str | None, region: str | None, chunk: int = 5000
) -> Iterator[list[WellbeingResult]]:
    """Families of a level in family-id order, a chunk at a time (keyset pagination)."""
    last = -(2**62)
    while True:
        stmt = (
            _families(run_id, level, region)
            .where(WellbeingResult.family_id > last)
            .order_by(WellbeingResult.family_id)
            .limit(chunk)
        )
        rows = list(session.scalars(stmt))
        if not rows:
            return
        yield rows
        last = rows[-1].family_id
        for row in rows:  # keep the identity map small over a long export
            session.expunge(row)


def _changes(run_id: int, previous_id: int) -> tuple[Any, Any, Any]:
    cur = aliased(WellbeingResult, name="cur")
    prev = aliased(WellbeingResult, name="prev")
    join = (prev.family_id == cur.family_id) & (prev.run_id == previous_id)
    return cur, prev, join


def level_changes(
    session: Session, *, run_id: int, previous_id: int, offset: int, limit: int
) -> tuple[list[tuple[Any, ...]], int, list[tuple[Any, ...]]]:
    """Families whose level differs from the previous run: a page, the total, the transitions."""
    cur, prev, join = _changes(run_id, previous_id)
    where = (cur.run_id == run_id) & (cur.level != prev.level)
    page = (
        select(cur.family_id, cur.region_kato, prev.level, cur.level, prev.score, cur.score)
        .select_from(cur)
        .join(prev, join)
        .where(where)
    )
    total = session.scalar(select(func.count()).select_from(page.subquery())) or 0
    rows = [
        tuple(r) for r in session.execute(page.order_by(cur.family_id).offset(offset).limit(limit))
    ]
    transitions = [
        tuple(r)
        for r in session.execute(
            select(prev.level, cur.level, func.count())
            .select_from(cur)
            .join(prev, join)
            .where(where)
            .group_by(prev.level, cur.level)
            .order_by(prev.level, cur.level)
        )
    ]
    return rows, int(total), transitions


def add_run(session: Session, run: WellbeingRun) -> WellbeingRun:
    session.add(run)
    session.flush()
    return run


def all_family_ids(
    session: Session, *, run_id: int, level: str | None, region: str | None
) -> list[int]:
    """Every family id of a run in a level and region (what an export will hold)."""
    stmt = _families(run_id, level, region).with_only_columns(WellbeingResult.family_id)
    return list(session.scalars(stmt))


def family_ids(rows: Sequence[WellbeingResult]) -> list[int]:
    return [r.family_id for r in rows]


def run_periods(session: Session) -> list[tuple[int, str, list[str]]]:
    """Every scoring run's id, period and level codes (the rules' input chooses among them)."""
    stmt = select(WellbeingRun.id, WellbeingRun.period, WellbeingRun.level_counts).order_by(
        WellbeingRun.id
    )
    return [(int(i), str(p), list((c or {}).keys())) for i, p, c in session.execute(stmt)]


def run_levels(
    session: Session, run_id: int, *, family_id: int | None = None
) -> tuple[pa.Array, pa.Array]:
    """A run's families and levels as two columns, in one query (or one family's)."""
    stmt = select(WellbeingResult.family_id, WellbeingResult.level).where(
        WellbeingResult.run_id == run_id
    )
    if family_id is not None:
        stmt = stmt.where(WellbeingResult.family_id == family_id)
    rows = session.execute(stmt).all()
    return (
        pa.array([r[0] for r in rows], pa.int64()),
        pa.array([r[1] for r in rows], pa.string()),
    )


def segment_rows(
    session: Session,
    *,
    run_id: int,
    levels: Sequence[str],
    region: str | None,
    previous_id: int | None,
) -> list[tuple[Any, ...]]:
    """(family_id, region, level, indicators, previous level or None) of a run's families in
    `levels` (all when empty) and a region prefix; with `previous_id`, only families also in
    that run, with their level there."""
    cur = aliased(WellbeingResult, name="cur")
    prev = aliased(WellbeingResult, name="prev")
    stmt = select(cur.family_id, cur.region_kato, cur.level, cur.indicators)
    if previous_id is not None:
        stmt = stmt.add_columns(prev.level).join(
            prev, (prev.family_id == cur.family_id) & (prev.run_id == previous_id)
        )
    else:
        stmt = stmt.add_columns(sa_null())
    stmt = stmt.where(cur.run_id == run_id)
    if levels:
        stmt = stmt.where(cur.level.in_(list(levels)))
    if region is not None:
        stmt = stmt.where(cur.region_kato.startswith(region, autoescape=True))
    return [tuple(r) for r in session.execute(stmt.order_by(cur.family_id))]


def latest_run(session: Session, *, methodology_id: str | None) -> WellbeingRun | None:
    """The newest run (of a methodology, or of any)."""
    stmt = select(WellbeingRun)
    if methodology_id is not None:
        stmt = stmt.where(WellbeingRun.methodology_id == methodology_id)
    return session.scalars(stmt.order_by(WellbeingRun.id.desc()).limit(1)).first()
