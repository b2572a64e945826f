"""Columnar snapshots of the registry (Arrow tables) for the rules engine and analytics.

Two shapes, as the rules engine's input contract: `person` (one row per person with their
family and role as of a period) and `fact` (live, non-superseded facts that began by the
period's end). Every read is as of a period: a person's family in a period is their latest
membership overlapping it, and the deceased stay members of their last family
(`repository.snapshot_person_sql` says why). The whole-registry path reads over ADBC straight
into Arrow; the one-family path reads through the caller's session, so it sees the caller's
transaction. A run of several periods reads the span once (`registry_history`) and takes each
period's persons from it (`RegistryHistory.as_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.orm import Session

from socialcard.registry import arrow_reader, repository
from socialcard.rules.engine import synthetic as engine_input

# The rules engine owns its input contract; the registry produces exactly that shape.
PERSON_SCHEMA = engine_input.PERSON_SCHEMA
FACT_SCHEMA = engine_input.FACT_SCHEMA
LINK_SCHEMA = engine_input.LINK_SCHEMA
# The persons of a span: the contract's columns for each membership overlapping it (a person
# without one: once, with nulls), and the membership's id, start and end (null: open).
HISTORY_SCHEMA = pa.schema(
    [
        *PERSON_SCHEMA,
        ("member_id", pa.int64()),
        ("from_on", pa.date32()),
        ("until_on", pa.date32()),
    ]
)


class Span(Protocol):
    """What a read is as of: a period (rules' `Period`) or any first and last day."""

    @property
    def start(self) -> date: ...

    @property
    def end(self) -> date: ...


@dataclass(frozen=True)
class Days:
    """A span of days, first and last included."""

    start: date
    end: date


def _day_numbers(column: Any, missing: int) -> np.ndarray[Any, Any]:
    values = pc.fill_null(column.cast(pa.date32()).cast(pa.int32()), missing)
    return np.asarray(values.to_numpy(), dtype=np.int64)


def persons_as_of(history: pa.Table, period: Span) -> pa.Table:
    """Each person born by the period's end once, with the family and role of their latest
    membership that overlaps the period (none: no family, a household of one to the rules)."""
    epoch = date(1970, 1, 1)
    first, last = (period.start - epoch).days, (period.end - epoch).days
    # Not born yet: not in the registry of the period (not a household of their own either).
    history = history.filter(pc.less_equal(history.column("birth_on"), pa.scalar(period.end)))
    if history.num_rows == 0:
        return history.select(PERSON_SCHEMA.names).cast(PERSON_SCHEMA)
    pid = np.asarray(history.column("person_id").to_numpy(), dtype=np.int64)
    if pid.size > 1 and not bool(np.all(pid[1:] >= pid[:-1])):
        order = np.argsort(pid, kind="stable")
        history, pid = history.take(order), pid[order]
    has = history.column("member_id").is_valid().to_numpy(zero_copy_only=False)
    open_end = int(np.iinfo(np.int32).max)
    from_on = _day_numbers(history.column("from_on"), open_end)
    until_on = _day_numbers(history.column("until_on"), open_end)
    holds = has & (from_on <= last) & (until_on >= first)
    keep = np.ones(pid.size, dtype=bool)
    same = pid[1:] == pid[:-1]
    if bool(same.any()):
        # Several memberships of one person: the latest that holds in the period wins.
        several = np.zeros(pid.size, dtype=bool)
        several[1:] |= same
        several[:-1] |= same
        rows = np.flatnonzero(several)
        member = pc.fill_null(history.column("member_id"), 0).to_numpy()
        order = rows[
            np.lexsort((member[rows], np.where(holds, from_on, 0)[rows], holds[rows], pid[rows]))
        ]
        last_of_person = np.ones(order.size, dtype=bool)
        last_of_person[:-1] = pid[order][1:] != pid[order][:-1]
        keep[rows] = False
        keep[order[last_of_person]] = True
    chosen = history.filter(pa.array(keep))
    holds_kept = pa.array(holds[keep])
    columns = []
    for field in PERSON_SCHEMA:
        column = chosen.column(field.name)
        if field.name in ("family_id", "role"):
            column = pc.if_else(holds_kept, column, pa.nulls(chosen.num_rows, field.type))
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=PERSON_SCHEMA)


@dataclass(frozen=True)
class RegistryHistory:
    """The registry over a span of periods: `as_of` gives each period's (person, fact)."""

    persons: pa.Table  # HISTORY_SCHEMA
    facts: pa.Table  # FACT_SCHEMA, the facts that began by the span's end
    span: Days
    links: pa.Table | None = None  # LINK_SCHEMA, when read with the registry

    def as_of(self, period: Span) -> tuple[pa.Table, pa.Table]:
        """The (person, fact) tables as of a period within the span."""
        if period.start < self.span.start or period.end > self.span.end:
            raise ValueError(
                f"{period.start}..{period.end} is outside the span read"
                f" ({self.span.start}..{self.span.end})"
            )
        return persons_as_of(self.persons, period), self.facts


def registry_snapshot(database_url: str, period: Span) -> tuple[pa.Table, pa.Table]:
    """The whole registry as of a period as (person, fact) Arrow tables, read over ADBC
    (committed data; on SQLite in a child process, `arrow_reader` says why)."""
    history = registry_history(database_url, period, period)
    return persons_as_of(history.persons, period), history.facts


def registry_history(
    database_url: str, first: Span, last: Span, *, links: bool = False
) -> RegistryHistory:
    """The whole registry over the periods from `first` to `last`, read once over ADBC; with
    `links`, also every live parent-child link of a person born by the span's end."""
    span = Days(first.start, last.end)
    fact_sql = repository.snapshot_fact_sql(span.end)
    statements = [(repository.snapshot_person_sql(span.start, span.end), HISTORY_SCHEMA)]
    if links:
        statements.append((repository.SNAPSHOT_LINK_ROWS_SQL, _LINK_ROW_SCHEMA))
    # The id ranges are computed by each statement (min and max of the key are index lookups):
    # no read may run in this process on SQLite (`arrow_reader` says why).
    low, schema = "(SELECT min(id) FROM registry_fact)", FACT_SCHEMA
    step = f"(((SELECT max(id) FROM registry_fact) - {low}) / {FACT_PARTS} + 1)"
    statements += [
        (f"{fact_sql} AND id >= {low} + {i} * {step} AND id < {low} + {i + 1} * {step}", schema)
        for i in range(FACT_PARTS)
    ]
    tables = arrow_reader.fetch_all(database_url, statements)
    persons = tables[0]
    facts = pa.concat_tables(tables[2:] if links else tables[1:])
    link = _with_child_life(tables[1], persons) if links else None
    return RegistryHistory(persons, facts, span, link)


# The fact table is read in this many id ranges, in parallel with the persons (the read is
# SQLite's or PostgreSQL's own work per connection: three connections use both cores).
FACT_PARTS = 2
# The link rows as stored; the child's life dates are taken from the persons read beside them.
_LINK_ROW_SCHEMA = pa.schema(
    [f for f in LINK_SCHEMA if f.name not in ("child_birth_on", "child_death_on")]
)


def _with_child_life(rows: pa.Table, persons: pa.Table) -> pa.Table:
    """The links (`_LINK_ROW_SCHEMA`) with each child's birth and death (LINK_SCHEMA), from a
    person table; a link whose child is not in it (not born by its end) is left out, as no
    rule of its span can count that child."""
    pid = np.asarray(persons.column("person_id").to_numpy(), dtype=np.int64)
    ids, first = np.unique(pid, return_index=True)
    child = np.asarray(rows.column("child_id").to_numpy(), dtype=np.int64)
    at = np.minimum(np.searchsorted(ids, child), max(ids.size - 1, 0))
    found = ids[at] == child if ids.size else np.zeros(child.size, dtype=bool)
    rows = rows.filter(pa.array(found))
    where = pa.array(first[at[found]])
    columns = {name: rows.column(name) for name in rows.column_names}
    columns["child_birth_on"] = persons.column("birth_on").take(where)
    columns["child_death_on"] = persons.column("death_on").take(where)
    return pa.Table.from_arrays([columns[f.name] for f in LINK_SCHEMA], schema=LINK_SCHEMA)


def family_snapshot(session: Session, family_id: int, period: Span) -> tuple[pa.Table, pa.Table]:
    """One family's members as of a period and their facts as (person, fact) Arrow tables."""
    person_table, fact_table, _ = family_snapshot_with_languages(session, family_id, period)
    return person_table, fact_table


def family_snapshot_with_languages(
    session: Session, family_id: int, period: Span
) -> tuple[pa.Table, pa.Table, dict[int, str]]:
    """`family_snapshot` and each member's language, read in the same statements (the online
    eligibility check needs the head's language; one round trip fewer per request)."""
    persons, facts = repository.snapshot_rows_for_family(
        session, family_id, start=period.start, end=period.end
    )
    # The rows are the overlapping memberships of a few persons: `persons_as_of`'s choice in
    # plain Python (the latest membership; the unborn left out), at a fraction of its cost
    # for a handful of rows. A property test holds the two to the same answers.
    chosen = latest_memberships(persons, period)
    width = len(PERSON_SCHEMA.names)
    members = [row for row in chosen if row[1] == family_id]
    person_table = pa.Table.from_pylist(
        [dict(zip(PERSON_SCHEMA.names, row[:width], strict=True)) for row in members],
        schema=PERSON_SCHEMA,
    )
    ids = {row[0] for row in members}
    fact_table = pa.Table.from_pylist(
        [dict(zip(FACT_SCHEMA.names, row, strict=True)) for row in facts if row[0] in ids],
        schema=FACT_SCHEMA,
    )
    language = len(HISTORY_SCHEMA.names)
    languages = {int(row[0]): str(row[language]) for row in members}
    return person_table, fact_table, languages


def latest_memberships(rows: Sequence[Sequence[Any]], period: Span) -> list[Sequence[Any]]:
    """Rows shaped as HISTORY_SCHEMA (more columns may follow), all memberships overlapping
    the period, in person order: each person born by the period's end once, with their latest
    membership (`persons_as_of` for a handful of rows)."""
    member_at = HISTORY_SCHEMA.names.index("member_id")
    chosen: dict[int, Sequence[Any]] = {}
    for row in rows:
        if row[4] > period.end:  # birth_on
            continue
        best = chosen.get(row[0])
        if best is None or (row[member_at + 1], row[member_at]) > (
            best[member_at + 1],
            best[member_at],
        ):
            chosen[row[0]] = row
    return [chosen[pid] for pid in sorted(chosen)]


def registry_snapshot_in_session(session: Session, period: Span) -> tuple[pa.Table, pa.Table]:
    """The whole registry as of a period through the session (sees its transaction; for
    small stores)."""
    history = registry_history_in_session(session, period, period)
    return history.as_of(period)


def registry_history_in_session(session: Session, first: Span, last: Span) -> RegistryHistory:
    """`registry_history` through the session (sees its transaction; for small stores)."""
    span = Days(first.start, last.end)
    connection = session.connection()
    persons = connection.exec_driver_sql(repository.snapshot_person_sql(span.start, span.end))
    facts = connection.exec_driver_sql(repository.snapshot_fact_sql(span.end))
    return RegistryHistory(
        _table(persons.all(), HISTORY_SCHEMA), _table(facts.all(), FACT_SCHEMA), span
    )


def _table(rows: Sequence[Sequence[object]], schema: pa.Schema) -> pa.Table:
    dates = [i for i, f in enumerate(schema) if pa.types.is_date32(f.type)]
    records = []
    for row in rows:
        values = list(row)
        for i in dates:  # SQLite hands dates back as text through the raw driver
            value = values[i]
            if isinstance(value, str):
                values[i] = date.fromisoformat(value[:10])
        records.append(dict(zip(schema.names, values, strict=True)))
    return pa.Table.from_pylist(records, schema=schema)


# --- parent-child links (the engine's `link` input) ------------------------------------------


def registry_links_in_session(session: Session) -> pa.Table:
    """Every live parent-child link through the session (sees its transaction)."""
    rows = session.connection().exec_driver_sql(repository.SNAPSHOT_LINK_SQL).all()
    return _table(rows, LINK_SCHEMA)


def family_links(session: Session, family_id: int) -> pa.Table:
    """The links one family's evaluation needs: its current members' as child or parent, and
    every link of their parents (a mother's children wherever they live)."""
    members = repository.member_ids_of(session, [family_id]).get(family_id, [])
    return _table(repository.snapshot_links_for_persons(session, members), LINK_SCHEMA)
