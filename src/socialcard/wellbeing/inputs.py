"""A family's well-being as a rule input: scoring runs handed to the rules engine as facts.

The rules language reads `wellbeing_level` (the 2023 methodology's A..E) and
`wellbeing_category` (the 2025 scoring model's "1".."6", 6 high well-being) of the family, with
the id of the scoring run they came from (`wellbeing_level_run`, `wellbeing_category_run`).

Which run is valid for a decision's period Q: the latest run made for a period that starts on
or before Q's start (a run for Q itself, else the last one before it; never a later one, so a
decision does not change when a later month is scored). Among runs of the same period the
latest (highest id) counts. A run's scale follows its level codes (A..E or 1..6, see
`builtins.WELLBEING_SCALES`); runs of other codes feed no variable. A family that is not in the
run valid for Q has no value (NULL: the explanation shows "unknown"); an older run does not
stand in for it.

The engine gets each run as facts of kind `wellbeing` (one per member of a scored family,
valid over the decision periods the run serves, `quantity` the level's position in its scale,
`amount_minor` the run id), so the one-household, batch and vectorized evaluators read it the
same way as any fact. The results of a run are read once per rules run, as columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.orm import Session

from socialcard.rules.engine.builtins import WELLBEING_SCALES
from socialcard.rules.engine.compiler import CompiledPack
from socialcard.rules.engine.periods import Period
from socialcard.rules.engine.synthetic import FACT_SCHEMA
from socialcard.wellbeing import repository


def scale_of(codes: Sequence[str]) -> str | None:
    """The scale a run's level codes belong to (`level`, `category`), or None."""
    for scale, known in WELLBEING_SCALES.items():
        if codes and set(codes) <= set(known):
            return scale
    return None


@dataclass(frozen=True)
class Chosen:
    """The run a scale takes for consecutive decision periods from `first` to `last`."""

    scale: str
    run_id: int
    first: date
    last: date


def choose_runs(
    runs: Sequence[tuple[int, str, Sequence[str]]], periods: Sequence[Period]
) -> list[Chosen]:
    """For each scale, the run valid for each period (module docstring), consecutive periods
    with the same run merged. `runs`: (id, period text, level codes)."""
    by_scale: dict[str, list[tuple[date, int]]] = {}
    for run_id, period_text, codes in runs:
        scale = scale_of(codes)
        if scale is None:
            continue
        try:
            start = Period.parse(period_text).start
        except ValueError:
            continue
        by_scale.setdefault(scale, []).append((start, run_id))
    out: list[Chosen] = []
    for scale, dated in sorted(by_scale.items()):
        dated.sort()
        current: Chosen | None = None
        for period in sorted(periods, key=lambda p: p.start):
            valid = [run_id for start, run_id in dated if start <= period.start]
            if not valid:
                current = None
                continue
            # Sorted by (start, id): the last is the latest period, then the latest run.
            run_id = valid[-1]
            if current is not None and current.run_id == run_id:
                current = Chosen(scale, run_id, current.first, period.end)
                out[-1] = current
            else:
                current = Chosen(scale, run_id, period.start, period.end)
                out.append(current)
    return out


@dataclass
class RuleInput:
    """The scoring runs valid for a rules run's periods, their results read once each."""

    chosen: list[Chosen]
    results: dict[int, pa.Table] = field(default_factory=dict)  # run id -> family_id, position

    @property
    def run_ids(self) -> list[int]:
        return sorted({c.run_id for c in self.chosen})

    def facts(self, person: pa.Table) -> pa.Table:
        """The `wellbeing` facts of the persons of a snapshot (empty when nothing is scored)."""
        parts: list[pa.Table] = []
        members = person.select(["person_id", "family_id"]).filter(pc.is_valid(person["family_id"]))
        for chosen in self.chosen:
            scored = self.results.get(chosen.run_id)
            if scored is None or scored.num_rows == 0 or members.num_rows == 0:
                continue
            joined = members.join(scored, "family_id", join_type="inner")
            n = joined.num_rows
            if n == 0:
                continue
            parts.append(
                pa.table(
                    {
                        "person_id": joined["person_id"].cast(pa.int64()),
                        "kind": pa.repeat("wellbeing", n),
                        "detail": pa.repeat(chosen.scale, n),
                        "qualifier": pa.nulls(n, pa.string()),
                        "amount_minor": pa.repeat(pa.scalar(chosen.run_id, pa.int64()), n),
                        "quantity": joined["position"].cast(pa.int32()),
                        "valid_from": pa.repeat(pa.scalar(chosen.first, pa.date32()), n),
                        "valid_until": pa.repeat(pa.scalar(chosen.last, pa.date32()), n),
                        "source": pa.repeat("wellbeing", n),
                    },
                    schema=FACT_SCHEMA,
                )
            )
        if not parts:
            return FACT_SCHEMA.empty_table()
        return pa.concat_tables(parts)

    def with_facts(self, person: pa.Table, fact: pa.Table) -> pa.Table:
        """`fact` with the persons' well-being facts added (the same table if none)."""
        extra = self.facts(person)
        if extra.num_rows == 0:
            return fact
        return pa.concat_tables([fact.select(FACT_SCHEMA.names).cast(FACT_SCHEMA), extra])


# The built-ins this input feeds: a pack that reads none of them gets nothing read or added.
BUILTINS = frozenset(
    {"wellbeing_level", "wellbeing_level_run", "wellbeing_category", "wellbeing_category_run"}
)


def rule_input(
    session: Session,
    periods: Sequence[Period],
    *,
    family_id: int | None = None,
    compiled: CompiledPack | None = None,
) -> RuleInput:
    """The runs valid for `periods` and their results (one family's, with `family_id`); with
    `compiled`, only the scales its programs read (nothing when they read neither)."""
    scales = [
        scale
        for scale in WELLBEING_SCALES
        if compiled is None or compiled.reads({f"wellbeing_{scale}", f"wellbeing_{scale}_run"})
    ]
    if not scales:
        return RuleInput([])
    chosen = [c for c in choose_runs(repository.run_periods(session), periods) if c.scale in scales]
    out = RuleInput(chosen)
    for run_id in out.run_ids:
        scale = next(c.scale for c in chosen if c.run_id == run_id)
        codes = WELLBEING_SCALES[scale]
        family_ids, levels = repository.run_levels(session, run_id, family_id=family_id)
        positions = pc.add(pc.index_in(levels, value_set=pa.array(codes)), 1).cast(pa.int32())
        table = pa.table({"family_id": family_ids.cast(pa.int64()), "position": positions})
        out.results[run_id] = table.filter(pc.is_valid(positions))
    return out
