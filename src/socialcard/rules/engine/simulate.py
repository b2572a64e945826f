"""What-if: a baseline and a reform (parameter overrides) compared by program and region."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from socialcard.rules.engine.compiler import CompiledPack, ProgramPlan
from socialcard.rules.engine.model import Scalar
from socialcard.rules.engine.periods import Period
from socialcard.rules.engine.runtime import BatchResult, Engine


@dataclass
class Delta:
    """Counts and cost of one program (in one region, or overall) before and after."""

    program_id: str
    region: str | None
    baseline_count: int
    reform_count: int
    baseline_minor: int
    reform_minor: int

    @property
    def count_change(self) -> int:
        return self.reform_count - self.baseline_count

    @property
    def cost_change_minor(self) -> int:
        return self.reform_minor - self.baseline_minor


@dataclass
class Change:
    """One entity whose decision changed, and the conditions that flipped."""

    program_id: str
    entity_id: int
    region: str | None
    baseline_eligible: bool
    reform_eligible: bool
    baseline_minor: int
    reform_minor: int
    flipped: dict[str, tuple[bool | None, bool | None]] = field(default_factory=dict)


@dataclass
class Simulation:
    """The outcome of a what-if run."""

    period: Period
    overrides: dict[str, Scalar]
    totals: list[Delta]
    by_region: list[Delta]
    gainers: list[Change]
    losers: list[Change]
    timings: dict[str, float]


def _relation(result: BatchResult, plan: ProgramPlan) -> tuple[str, str]:
    """A program's decisions with a `region` column, and the entity key."""
    if plan.program.entity == "family":
        return result.names["fr"], "fkey"
    pr, raw = result.names["pr"], result.names["pb"]
    return (
        f"(SELECT zpr.*, zraw.region_kato AS region FROM {pr} AS zpr"
        f" JOIN {raw} AS zraw ON zraw.person_id = zpr.person_id)",
        "person_id",
    )


def _region_level(column: str) -> str:
    # KATO: the first two digits name the region (oblast or city of republican significance).
    return f"substr(coalesce({column}, ''), 1, 2) || '0000000'"


def compare(
    engine: Engine, baseline: BatchResult, reform: BatchResult, *, sample: int = 10
) -> tuple[list[Delta], list[Delta], list[Change], list[Change]]:
    """Aggregate two evaluations of the same period and pick gainers and losers."""
    con = engine.con
    compiled: CompiledPack = engine.compiled
    totals: list[Delta] = []
    regions: list[Delta] = []
    gainers: list[Change] = []
    losers: list[Change] = []
    for plan in compiled.programs:
        if plan.program.period != baseline.period.kind:
            continue
        base, key = _relation(baseline, plan)
        new, _ = _relation(reform, plan)
        e, a = plan.eligible_column, plan.amount_column
        region = _region_level("b.region")
        rows = con.execute(
            f"SELECT {region} AS zregion, count(*) FILTER (WHERE b.{e}),"
            f" count(*) FILTER (WHERE r.{e}), coalesce(sum(b.{a}), 0), coalesce(sum(r.{a}), 0)"
            f" FROM {base} AS b JOIN {new} AS r ON r.{key} = b.{key}"
            " GROUP BY ROLLUP (zregion) ORDER BY zregion NULLS FIRST"
        ).fetchall()
        for reg, bc, rc, bm, rm in rows:
            delta = Delta(plan.program.id, reg, int(bc), int(rc), int(bm), int(rm))
            (totals if reg is None else regions).append(delta)
        vp_base = baseline.bound.active.get(plan.program.id)
        vp_new = reform.bound.active.get(plan.program.id)
        cond_names = sorted(
            {c.name for c in (vp_base.conditions if vp_base else [])}
            & {c.name for c in (vp_new.conditions if vp_new else [])}
        )
        cond_cols = "".join(
            f", b.{plan.prefix}__{n} AS b_{n}, r.{plan.prefix}__{n} AS r_{n}" for n in cond_names
        )
        for direction, bucket in (("DESC", gainers), ("ASC", losers)):
            sign = ">" if direction == "DESC" else "<"
            picked = con.execute(
                f"SELECT b.{key}, b.region, b.{e}, r.{e}, b.{a}, r.{a}{cond_cols}"
                f" FROM {base} AS b JOIN {new} AS r ON r.{key} = b.{key}"
                f" WHERE r.{a} {sign} b.{a} OR (r.{e} {sign} b.{e})"
                f" ORDER BY r.{a} - b.{a} {direction}, b.{key} LIMIT {int(sample)}"
            ).fetchall()
            for row in picked:
                flipped: dict[str, tuple[Any, Any]] = {}
                for i, name in enumerate(cond_names):
                    before, after = row[6 + 2 * i], row[7 + 2 * i]
                    if before != after:
                        flipped[name] = (before, after)
                bucket.append(
                    Change(
                        plan.program.id,
                        int(row[0]),
                        row[1],
                        bool(row[2]),
                        bool(row[3]),
                        int(row[4]),
                        int(row[5]),
                        flipped,
                    )
                )
    return totals, regions, gainers, losers


def simulate_loaded(
    engine: Engine,
    period: Period | str,
    overrides: Mapping[str, Scalar],
    *,
    sample: int = 10,
) -> Simulation:
    """Run baseline and reform on an engine that has its tables loaded, and compare."""
    if isinstance(period, str):
        period = Period.parse(period)
    baseline = engine.evaluate(period)
    reform = engine.evaluate(period, overrides=overrides)
    try:
        totals, regions, gainers, losers = compare(engine, baseline, reform, sample=sample)
    finally:
        timings = {"baseline": baseline.timings["total"], "reform": reform.timings["total"]}
        baseline.drop()
        reform.drop()
    return Simulation(period, dict(overrides), totals, regions, gainers, losers, timings)


def simulate(
    compiled: CompiledPack,
    person: Any,
    fact: Any,
    period: Period | str,
    overrides: Mapping[str, Scalar],
    *,
    sample: int = 10,
    threads: int | None = None,
) -> Simulation:
    """What-if over the given `person` and `fact` tables: counts and cost by program and
    region, baseline against reform, with a sample of gainers and losers and why."""
    engine = Engine(compiled, threads=threads)
    try:
        engine.load(person, fact)
        return simulate_loaded(engine, period, overrides, sample=sample)
    finally:
        engine.close()
