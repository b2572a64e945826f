"""Scoring in DuckDB: hand-made families at every level boundary, determinism, properties."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from socialcard.rules.engine import Period
from socialcard.rules.engine.synthetic import generate
from socialcard.wellbeing.methodology import DIMENSIONS, Methodology, load_methodology
from socialcard.wellbeing.scoring import level_counts, score_snapshot
from tests.wellbeing.helpers import (
    BOUNDARY_FAMILIES,
    METHODOLOGY,
    PACKS,
    PERIOD,
    Member,
    make_pack,
    tables,
)


@pytest.fixture(scope="module")
def methodology(tmp_path_factory: pytest.TempPathFactory) -> Methodology:
    return load_methodology(make_pack(tmp_path_factory.mktemp("pack")))


class TestScoreSnapshot:
    @pytest.mark.parametrize("family_id", sorted(BOUNDARY_FAMILIES))
    def test_boundary_family_gets_its_score_and_level(
        self, methodology: Methodology, family_id: int
    ) -> None:
        members, score, level = BOUNDARY_FAMILIES[family_id]
        person, fact = tables({family_id: members})
        rows = score_snapshot(methodology, person, fact, Period.parse(PERIOD)).to_pylist()
        assert [(r["family_id"], r["score"], r["level"]) for r in rows] == [
            (family_id, score, level)
        ]

    def test_dimension_scores_add_up_and_flags_follow_the_indicators(
        self, methodology: Methodology
    ) -> None:
        person, fact = tables({8: BOUNDARY_FAMILIES[8][0]})
        (row,) = score_snapshot(methodology, person, fact, Period.parse(PERIOD)).to_pylist()
        assert (row["economic"], row["housing"], row["education"]) == (5, 10, 3)
        held = {
            i.code
            for i, f in zip(methodology.indicators, row["indicators"], strict=True)
            if f == "1"
        }
        assert held == {"has_vehicle", "owns_home", "student"}

    def test_a_rerun_on_the_same_data_gives_the_same_table(self, methodology: Methodology) -> None:
        population = generate(500, seed=7)
        period = Period.parse(PERIOD)
        first = score_snapshot(methodology, population.person, population.fact, period)
        second = score_snapshot(methodology, population.person, population.fact, period)
        assert first.num_rows > 400
        assert first.equals(second)

    def test_a_family_with_no_facts_is_scored_not_crashed(self, methodology: Methodology) -> None:
        person, fact = tables({1: [Member(wages=None), Member(age=70, role="other", wages=None)]})
        assert fact.num_rows == 0
        (row,) = score_snapshot(methodology, person, fact, Period.parse(PERIOD)).to_pylist()
        assert row["indicators"][0] == "1"  # no income record means zero income
        assert row["score"] == -20

    def test_families_without_living_members_are_left_out(self, methodology: Methodology) -> None:
        person, fact = tables({1: [Member()], 2: [Member()]})
        person = person.set_column(
            person.schema.get_field_index("death_on"),
            "death_on",
            pa.array([None, date(2025, 1, 1)]),
        )
        rows = score_snapshot(methodology, person, fact, Period.parse(PERIOD)).to_pylist()
        assert [r["family_id"] for r in rows] == [1]

    def test_level_counts_include_empty_levels(self, methodology: Methodology) -> None:
        person, fact = tables({1: BOUNDARY_FAMILIES[1][0], 3: BOUNDARY_FAMILIES[3][0]})
        table = score_snapshot(methodology, person, fact, Period.parse(PERIOD))
        assert level_counts(methodology, table) == {"A": 1, "B": 1, "C": 0, "E": 0}


class TestCheckPeriod:
    def test_a_period_before_the_methodology_is_refused(self, methodology: Methodology) -> None:
        with pytest.raises(ValueError, match="applies from 2024-01-01"):
            methodology.check_period(Period.parse("2023-12"))

    def test_a_year_is_refused_for_a_monthly_methodology(self, methodology: Methodology) -> None:
        with pytest.raises(ValueError, match="per month"):
            methodology.check_period(Period.parse("2026"))


_POPULATION = generate(300, seed=11)


def _with_points(points: list[int], cuts: list[int]) -> str:
    """The test methodology with other points per indicator and other cut-offs."""
    lines = METHODOLOGY.splitlines()
    it = iter(points)
    out = []
    for line in lines:
        if line.strip().startswith("points:"):
            line = line.split("points:")[0] + f"points: {next(it)}"
        out.append(line)
    text = "\n".join(out) + "\n"
    # Two passes: a new cut-off may equal an old one still to be replaced (0 then -1).
    olds = ("min_score: 10", "min_score: 0", "min_score: -15")
    for index, old in enumerate(olds):
        text = text.replace(old, f"min_score: @{index}@")
    for index, new in enumerate(cuts):
        text = text.replace(f"min_score: @{index}@", f"min_score: {new}")
    return text


class TestScoreProperties:
    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        points=st.lists(st.integers(-40, 40).filter(lambda p: p != 0), min_size=7, max_size=7),
        cuts=st.lists(st.integers(-60, 60), min_size=3, max_size=3, unique=True).map(
            lambda c: sorted(c, reverse=True)
        ),
    )
    def test_total_is_the_sum_of_held_points_and_level_is_monotone(
        self, tmp_path_factory: pytest.TempPathFactory, points: list[int], cuts: list[int]
    ) -> None:
        path = make_pack(tmp_path_factory.mktemp("prop"), _with_points(points, cuts))
        m = load_methodology(path)
        table = score_snapshot(m, _POPULATION.person, _POPULATION.fact, Period.parse(PERIOD))
        codes = [lv.code for lv in m.levels]
        rows = table.to_pylist()
        assert rows
        for row in rows:
            held = [i for i, f in zip(m.indicators, row["indicators"], strict=True) if f == "1"]
            assert row["score"] == sum(i.points for i in held)
            for dim in DIMENSIONS:
                assert row[dim] == sum(i.points for i in held if i.dimension == dim)
            assert row["level"] == m.level_of(row["score"]).code
        ranked = sorted(rows, key=lambda r: r["score"])
        indexes = [codes.index(r["level"]) for r in ranked]
        assert indexes == sorted(indexes, reverse=True)


class TestShippedSchemesOnSyntheticFamilies:
    @pytest.mark.parametrize("name", ["cks_2023.yaml", "scoring_2025.yaml"])
    def test_every_level_is_reached(self, name: str) -> None:
        m = load_methodology(PACKS / "kz" / "wellbeing" / name)
        population = generate(3000, seed=3)
        table = score_snapshot(m, population.person, population.fact, Period.parse(PERIOD))
        counts = level_counts(m, table)
        assert all(n > 0 for n in counts.values()), counts
