"""Batch evaluation over a synthetic registry: results, filters and what-if."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socialcard.rules.engine import CompiledPack, Engine, EvaluationError, Period, simulate
from socialcard.rules.engine.builtins import (
    FACT_AGGS,
    INCOME_AGGS,
    income_lookback_start,
    period_constants,
)
from socialcard.rules.engine.columnar import FactArrays, person_rows
from socialcard.rules.engine.synthetic import generate


@pytest.fixture(scope="module")
def engine(kz: CompiledPack):  # type: ignore[no-untyped-def]
    population = generate(2_000, seed=11, as_of=Period.parse("2026-03").end)
    made = Engine(kz, threads=1)
    made.load(population.person, population.fact)
    yield made
    made.close()


class TestEvaluate:
    def test_every_program_has_a_summary(self, engine: Engine) -> None:
        result = engine.evaluate("2026-03")
        summary = {s.program_id: s for s in result.summary()}
        assert len(summary) == 11
        assert summary["kz.large_family"].eligible > 0
        assert summary["kz.base_pension"].eligible > 0
        assert summary["kz.asp"].version == "2025-09-01"
        for s in summary.values():
            assert 0 <= s.eligible <= s.evaluated
        result.drop()

    def test_family_filter_gives_the_same_decisions(self, engine: Engine) -> None:
        full = engine.evaluate("2026-03")
        part = engine.evaluate("2026-03", family_ids=[5, 17, 42])
        # child_care reads a family value: by family number in the whole run, a join here.
        for pid in ("kz.large_family", "kz.base_pension", "kz.child_care"):
            wanted = list(part.decisions(pid, eligible_only=False))
            assert wanted
            for d in wanted:
                assert full.decision(pid, d.entity_id).as_dict() == d.as_dict()

    def test_to_arrow_has_conditions_and_variables(self, engine: Engine) -> None:
        table = engine.evaluate("2026-03").to_arrow("kz.asp")
        assert table.num_rows > 0
        assert {"entity_id", "eligible", "amount_minor", "conditions", "variables"} <= set(
            table.column_names
        )
        assert all(table["eligible"].to_pylist())

    def test_before_the_first_version_nothing_is_in_force(self, engine: Engine, kz) -> None:  # type: ignore[no-untyped-def]
        result = engine.evaluate("2023-05")
        assert all(s.version is None and s.eligible == 0 for s in result.summary())
        decision = next(result.decisions("kz.asp", eligible_only=False, limit=1))
        text = decision.explain("en", kz.pack).text()
        assert "the program is not in force in this period" in text

    def test_a_year_has_no_monthly_programs(self, engine: Engine) -> None:
        assert engine.evaluate("2026").summary() == []

    def test_unknown_program(self, engine: Engine) -> None:
        with pytest.raises(EvaluationError, match="unknown program"):
            engine.evaluate("2026-03").decision("kz.nothing", 1)


class TestWholeRegistryOnly:
    def test_person_extra_keeps_the_person_view_values(self, engine: Engine) -> None:
        result = engine.evaluate("2026-03", person_extra=["age", "region", "no_such_column"])
        person = result.tables["pr"]
        assert {"age", "region"} <= set(person.column_names)
        assert "no_such_column" not in person.column_names
        names = result.names
        view = result.bound.person_view(names["pr"], names["fr"], pb_raw=names["pb"])
        expected = dict(engine.con.sql(f"SELECT person_id, age FROM ({view})").fetchall())
        kept = dict(zip(person["person_id"].to_pylist(), person["age"].to_pylist(), strict=True))
        assert kept == expected
        result.drop()

    def test_an_amount_past_64_bit_decimals_is_still_exact(self, engine: Engine) -> None:
        # 6.4 and 7.4 MRP of 10**15 tiyn do not fit DECIMAL(18,4): the stage reruns in 128 bits.
        result = engine.evaluate("2026-03", overrides={"kz.mrp": 10**15})
        paid = [d.amount_minor for d in result.decisions("kz.awarded_mothers")]
        assert paid
        assert set(paid) <= {64 * 10**14, 74 * 10**14}

    def test_without_tables_a_family_filter_is_refused(self, kz: CompiledPack) -> None:
        population = generate(50, seed=3, as_of=Period.parse("2026-03").end)
        made = Engine(kz, threads=1)
        try:
            made.load(population.person, population.fact, keep_tables=False)
            whole = made.evaluate("2026-03")
            assert whole.tables["fr"].num_rows > 0
            whole.drop()
            with pytest.raises(EvaluationError, match="keep_tables"):
                made.evaluate("2026-03", family_ids=[1])
        finally:
            made.close()


class TestSimulate:
    def test_raising_the_poverty_line_adds_families(self, kz: CompiledPack) -> None:
        population = generate(1_000, seed=5, as_of=Period.parse("2026-03").end)
        result = simulate(
            kz,
            population.person,
            population.fact,
            "2026-03",
            {"kz.asp.poverty_line_share": 0.9},
            sample=3,
        )
        asp = next(d for d in result.totals if d.program_id == "kz.asp")
        assert asp.reform_count > asp.baseline_count
        assert asp.cost_change_minor > 0
        others = [d for d in result.totals if d.program_id != "kz.asp"]
        assert all(d.count_change == 0 for d in others)
        assert sum(d.reform_count for d in result.by_region if d.program_id == "kz.asp") == (
            asp.reform_count
        )
        assert result.gainers
        assert all(g.program_id == "kz.asp" for g in result.gainers)
        assert any("income_within_poverty_line" in g.flipped for g in result.gainers)

    def test_table_parameter_and_pack_parameter_overrides(self, engine: Engine) -> None:
        base = engine.evaluate("2026-03")
        reform = engine.evaluate(
            "2026-03", overrides={"kz.large_family.coef.4": 20, "kz.mrp": 5000_00}
        )
        before = {s.program_id: s for s in base.summary()}
        after = {s.program_id: s for s in reform.summary()}
        assert after["kz.large_family"].amount_minor > before["kz.large_family"].amount_minor
        assert after["kz.awarded_mothers"].amount_minor > before["kz.awarded_mothers"].amount_minor

    def test_unknown_parameter(self, engine: Engine) -> None:
        with pytest.raises(EvaluationError, match="unknown parameter"):
            engine.evaluate("2026-03", overrides={"kz.asp.nope": 1})


class TestColumnarFactAggregates:
    """The numpy fact aggregates of a whole-registry run equal the SQL ones, NULLs included."""

    @pytest.mark.parametrize("month", ["2024-01", "2025-09", "2026-03", "2026-12"])
    def test_every_aggregate_matches_the_sql(self, engine: Engine, month: str) -> None:
        period = Period.parse(month)
        names = sorted(FACT_AGGS)
        literals = period_constants(period)
        literals["zzper_lookback"] = str(income_lookback_start(period, set(INCOME_AGGS)))
        sql = engine.compiled._fact_sql(names).replace("zztable_fact", "fact_input")
        for key in sorted(literals, key=len, reverse=True):
            sql = sql.replace(key, literals[key])
        expected = {row[0]: row[1:] for row in engine.con.execute(sql).fetchall()}
        person_ids = [
            r[0]
            for r in engine.con.execute("SELECT person_id FROM person_input ORDER BY 1").fetchall()
        ]
        facts = engine.con.sql("SELECT * FROM fact_input").to_arrow_table()
        got = FactArrays(np.array(person_ids, dtype=np.int64), facts).aggregate(names, literals)
        columns = {n: got[n].to_pylist() for n in names}
        assert any(v is not None for v in columns["flags"])
        for row, person_id in enumerate(person_ids):
            want = expected.get(person_id, (None,) * len(names))
            assert tuple(columns[n][row] for n in names) == tuple(want), person_id

    def test_the_order_of_the_facts_does_not_matter(self, engine: Engine) -> None:
        period = Period.parse("2026-03")
        names = sorted(FACT_AGGS)
        literals = period_constants(period)
        literals["zzper_lookback"] = str(income_lookback_start(period, set(INCOME_AGGS)))
        person_ids = np.array(
            [
                r[0]
                for r in engine.con.execute(
                    "SELECT person_id FROM person_input ORDER BY 1"
                ).fetchall()
            ],
            dtype=np.int64,
        )
        facts = engine.con.sql("SELECT * FROM fact_input ORDER BY person_id").to_arrow_table()
        shuffled = facts.take(np.random.default_rng(3).permutation(facts.num_rows))
        ordered = FactArrays(person_ids, facts).aggregate(names, literals)
        mixed = FactArrays(person_ids, shuffled).aggregate(names, literals)
        for name in names:
            assert ordered[name].equals(mixed[name]), name


@settings(max_examples=200, deadline=None)
@given(
    person_ids=st.lists(st.integers(0, 60), max_size=25),
    wanted=st.lists(st.integers(-3, 70), max_size=25),
    sparse=st.booleans(),
)
def test_a_facts_person_row_is_found_by_table_and_by_search_alike(
    person_ids: list[int], wanted: list[int], sparse: bool
) -> None:
    """Dense ids go through a direct table, sparse ones through a sorted search: the same rows
    (a repeated id: its first row; an unknown one: not found)."""
    scale = 10**9 if sparse else 1
    ids = np.array([i * scale for i in person_ids], dtype=np.int64)
    pid = np.array([w * scale for w in wanted], dtype=np.int64)
    pos, known = person_rows(ids, pid)
    for k, value in enumerate(pid.tolist()):
        rows = [r for r, i in enumerate(ids.tolist()) if i == value]
        assert bool(known[k]) == bool(rows)
        if rows:
            assert int(pos[k]) == rows[0]
