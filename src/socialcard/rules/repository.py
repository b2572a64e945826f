"""Every query of the rules domain: runs, their programs and regions, packed outcomes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, delete, func, select, text
from sqlalchemy.orm import Session

from socialcard.core.bulk import dbapi_connection
from socialcard.rules.models import (
    RulesOutcome,
    RulesRun,
    RulesRunCount,
    RulesRunProgram,
    RulesRunRegion,
)

OUTCOME_COLUMNS = (
    "run_id",
    "period",
    "family_key",
    "family_id",
    "head_person_id",
    "region_kato",
    "eligible_mask",
    "payload",
)


def run_by_id(session: Session, run_id: int) -> RulesRun | None:
    return session.get(RulesRun, run_id)


def latest_run(session: Session, *, period: str, pack_id: str | None = None) -> RulesRun | None:
    """The newest succeeded run covering `period` as its first month."""
    query = select(RulesRun).where(RulesRun.period == period, RulesRun.status == "succeeded")
    if pack_id is not None:
        query = query.where(RulesRun.pack_id == pack_id)
    return session.scalars(query.order_by(RulesRun.id.desc()).limit(1)).first()


def unfinished_run_ids(session: Session) -> list[int]:
    """Runs recorded as queued or running."""
    return list(
        session.scalars(
            select(RulesRun.id)
            .where(RulesRun.status.in_(("queued", "running")))
            .order_by(RulesRun.id)
        )
    )


def runs_covering(session: Session, *, period: str) -> list[int]:
    """Succeeded runs that hold `period` (any month of the run), newest first."""
    query = (
        select(RulesRunProgram.run_id)
        .join(RulesRun, RulesRun.id == RulesRunProgram.run_id)
        .where(RulesRunProgram.period == period, RulesRun.status == "succeeded")
        .distinct()
    )
    return sorted(session.scalars(query), reverse=True)


def list_runs(session: Session, *, offset: int, limit: int) -> tuple[list[RulesRun], int]:
    total = session.scalar(select(func.count()).select_from(RulesRun)) or 0
    rows = session.scalars(
        select(RulesRun).order_by(RulesRun.id.desc()).offset(offset).limit(limit)
    ).all()
    return list(rows), total


def run_programs(
    session: Session, run_id: int, *, period: str | None = None
) -> list[RulesRunProgram]:
    query = select(RulesRunProgram).where(RulesRunProgram.run_id == run_id)
    if period is not None:
        query = query.where(RulesRunProgram.period == period)
    return list(session.scalars(query.order_by(RulesRunProgram.period, RulesRunProgram.position)))


def run_regions(session: Session, run_id: int) -> list[RulesRunRegion]:
    return list(
        session.scalars(
            select(RulesRunRegion)
            .where(RulesRunRegion.run_id == run_id)
            .order_by(RulesRunRegion.period, RulesRunRegion.program_id, RulesRunRegion.region_kato)
        )
    )


def _outcome_filter(
    run_id: int, period: str, bit: int | None, region_prefix: str | None
) -> list[Any]:
    clauses: list[Any] = [RulesOutcome.run_id == run_id, RulesOutcome.period == period]
    if bit is not None:
        clauses.append(RulesOutcome.eligible_mask.op("&")(1 << bit) != 0)
    if region_prefix:
        clauses.append(RulesOutcome.region_kato.startswith(region_prefix, autoescape=True))
    return clauses


def outcomes_page(
    session: Session,
    *,
    run_id: int,
    period: str,
    bit: int | None,
    region_prefix: str | None,
    offset: int,
    limit: int,
) -> tuple[list[RulesOutcome], int]:
    """A page of families' outcomes (by family key), and how many match (from the run's
    stored counts: counting a million outcomes for every page took 0.3 s)."""
    clauses = _outcome_filter(run_id, period, bit, region_prefix)
    total = outcome_count(
        session, run_id=run_id, period=period, bit=bit, region_prefix=region_prefix
    )
    rows = session.scalars(
        select(RulesOutcome)
        .where(*clauses)
        .order_by(RulesOutcome.family_key)
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), total


def outcome_count(
    session: Session, *, run_id: int, period: str, bit: int | None, region_prefix: str | None
) -> int:
    """How many outcome rows of a run's period have the bit set (all for None) in regions of
    the prefix, from the counts stored with the run (`rules_run_count`)."""
    where = [
        RulesRunCount.run_id == run_id,
        RulesRunCount.period == period,
        RulesRunCount.position == (-1 if bit is None else bit),
    ]
    if region_prefix:
        where.append(RulesRunCount.region_kato.startswith(region_prefix, autoescape=True))
    return int(session.scalar(select(func.sum(RulesRunCount.families)).where(*where)) or 0)


def iter_outcomes(
    session: Session, *, run_id: int, period: str, bit: int | None, batch: int = 5_000
) -> Iterator[tuple[int, int | None, int | None, str | None, str]]:
    """(family_key, family_id, head_person_id, region, payload) in family-key order, streamed
    by keyset pages so that no cursor is held open between pages."""
    after: int | None = None
    clauses = _outcome_filter(run_id, period, bit, None)
    while True:
        query = select(
            RulesOutcome.family_key,
            RulesOutcome.family_id,
            RulesOutcome.head_person_id,
            RulesOutcome.region_kato,
            RulesOutcome.payload,
        ).where(*clauses)
        if after is not None:
            query = query.where(RulesOutcome.family_key > after)
        rows = session.execute(query.order_by(RulesOutcome.family_key).limit(batch)).all()
        for row in rows:
            yield (int(row[0]), row[1], row[2], row[3], row[4])
        if len(rows) < batch:
            return
        after = int(rows[-1][0])


def outcome(session: Session, *, run_id: int, period: str, family_key: int) -> RulesOutcome | None:
    return session.get(RulesOutcome, (run_id, period, family_key))


def delete_outcomes(session: Session, run_id: int) -> None:
    session.execute(delete(RulesOutcome).where(RulesOutcome.run_id == run_id))
    session.execute(delete(RulesRunCount).where(RulesRunCount.run_id == run_id))
    session.execute(delete(RulesRunRegion).where(RulesRunRegion.run_id == run_id))
    session.execute(delete(RulesRunProgram).where(RulesRunProgram.run_id == run_id))


def write_outcomes(
    session: Session | Connection, table: pa.Table, *, chunk_rows: int = 100_000
) -> int:
    """Bulk-write outcome rows (an Arrow table with OUTCOME_COLUMNS) through the session's
    own connection and transaction: COPY (CSV made by Arrow) on PostgreSQL, executemany on
    SQLite."""
    raw = dbapi_connection(session)
    table = table.select(list(OUTCOME_COLUMNS))
    columns = ", ".join(OUTCOME_COLUMNS)
    if type(raw).__module__.startswith("psycopg"):
        options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY rules_outcome ({columns}) FROM STDIN (FORMAT csv)") as copy,
        ):
            for start in range(0, table.num_rows, chunk_rows):
                sink = pa.BufferOutputStream()
                pacsv.write_csv(table.slice(start, chunk_rows), sink, options)
                copy.write(sink.getvalue().to_pybytes())
        return int(table.num_rows)
    placeholders = ", ".join("?" for _ in OUTCOME_COLUMNS)
    cursor = raw.cursor()
    try:
        for batch in table.to_batches(chunk_rows):
            cursor.executemany(
                f"INSERT INTO rules_outcome ({columns}) VALUES ({placeholders})",
                zip(*(column.to_pylist() for column in batch.columns), strict=True),
            )
    finally:
        cursor.close()
    return int(table.num_rows)


def analyze_outcomes(session: Session) -> None:
    """Refresh PostgreSQL's statistics of the outcome table after a run wrote a million rows:
    without them the planner took a run's rows for a few dozen and answered a page of its
    decisions by sorting all of them (0.6 s at 1,000,000 families) instead of reading the key
    order. (SQLite plans these by its indexes without statistics.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE rules_outcome"))


def add_all(session: Session, rows: Sequence[Any]) -> None:
    session.add_all(rows)
    session.flush()
