"""The family's well-being as a rule input: built-ins, choice of run, and evaluator agreement."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from socialcard.rules.engine import CompiledPack, Engine, OnlineEvaluator, Period, load_pack
from socialcard.rules.engine.cases import run_cases
from socialcard.rules.engine.problems import PackError
from socialcard.rules.engine.synthetic import FACT_SCHEMA, PERSON_SCHEMA
from socialcard.wellbeing.inputs import RuleInput, choose_runs, scale_of
from tests.rules.conftest import ROOT, MakePack
from tests.rules.test_agreement import check_agreement

PILOT = ROOT / "packs" / "kz_local_pilot"

# Person and family programs reading every well-being built-in, at both levels.
READER = """\
id: t.reader
title: {kk: P, ru: P, en: P}
legal_basis: {text: Law, citation: "Law 1"}
entity: %(entity)s
period: month
kind: status
versions:
  - from: 2024-01-01
    conditions:
      troubled:
        when: %(when)s
        explain: {kk: "{%(shown)s}", ru: "{%(shown)s}", en: "{%(shown)s}"}
tests: [{name: one, period: 2025-01, members: [{age: 40}], eligible: false}]
"""
FAMILY_WHEN = "wellbeing_level in ('D', 'E') or wellbeing_category in ('1', '2')"
PERSON_WHEN = "family.wellbeing_level = 'E' or wellbeing_category = '1' or wellbeing_level_run > 5"


@pytest.fixture(scope="module")
def pilot() -> CompiledPack:
    return load_pack(PILOT)


@pytest.fixture
def reader(make_pack: MakePack) -> CompiledPack:
    path = make_pack(
        family=READER % {"entity": "family", "when": FAMILY_WHEN, "shown": "wellbeing_level"},
        person=(READER % {"entity": "person", "when": PERSON_WHEN, "shown": "wellbeing_category"})
        .replace("t.reader", "t.person_reader")
        .replace("eligible: false", "eligible: false, subject: 0"),
    )
    return load_pack(path)


def _fact(
    pid: int, scale: str, position: int, run: int, first: date, last: date | None
) -> dict[str, Any]:
    return {
        "person_id": pid,
        "kind": "wellbeing",
        "detail": scale,
        "qualifier": None,
        "amount_minor": run,
        "quantity": position,
        "valid_from": first,
        "valid_until": last,
        "source": "wellbeing",
    }


class TestPilotPack:
    def test_its_cases_pass(self, pilot: CompiledPack) -> None:
        results = run_cases(pilot)
        assert len(results) >= 6
        assert all(r.passed for r in results), [r.line() for r in results if not r.passed]

    def test_the_decision_keeps_the_scoring_run_and_says_unknown_without_one(
        self, pilot: CompiledPack
    ) -> None:
        person = pa.Table.from_pylist(
            [
                {
                    "person_id": 1,
                    "family_id": 1,
                    "role": "head",
                    "sex": "M",
                    "birth_on": date(1980, 1, 1),
                    "death_on": None,
                    "region_kato": "351010000",
                },
            ],
            schema=PERSON_SCHEMA,
        )
        period = Period.parse("2026-03")
        online = OnlineEvaluator(pilot)
        try:
            unscored = online.evaluate(person, FACT_SCHEMA.empty_table(), period)
            decision = unscored.get("kz_local_pilot.housing_aid", 1)
            assert decision.variables["wellbeing_category"] is None
            assert decision.variables["wellbeing_category_run"] is None
            said = decision.explain("en", pilot.pack).conditions[1]
            assert "unknown, scoring run unknown" in said
            scored = pa.Table.from_pylist(
                [_fact(1, "category", 6, 77, period.start, None)], schema=FACT_SCHEMA
            )
            decision = online.evaluate(person, scored, period).get("kz_local_pilot.housing_aid", 1)
            assert decision.eligible is False
            assert decision.variables["wellbeing_category_run"] == 77
            assert "6, scoring run 77" in decision.explain("en", pilot.pack).conditions[1]
        finally:
            online.close()

    def test_a_case_with_an_unknown_category_is_refused(self, make_pack: MakePack) -> None:
        text = (PILOT / "housing_aid.yaml").read_text(encoding="utf-8")
        bad = text.replace('wellbeing: {category: "6", run: 41}', 'wellbeing: {category: "7"}', 1)
        path = make_pack(pack=(PILOT / "pack.yaml").read_text(encoding="utf-8"), housing_aid=bad)
        with pytest.raises(PackError, match="wellbeing category '7'"):
            load_pack(path)


class TestChooseRuns:
    def test_scale_follows_the_level_codes(self) -> None:
        assert scale_of(["A", "B", "C", "D", "E"]) == "level"
        assert scale_of(["6", "5", "1"]) == "category"
        assert scale_of(["A", "6"]) is None
        assert scale_of([]) is None

    def test_latest_run_at_or_before_each_period(self) -> None:
        runs = [
            (1, "2026-01", ["A", "E"]),
            (2, "2026-03", ["A", "E"]),
            (3, "2026-03", ["A", "C"]),  # a rerun of March: the later one counts
            (4, "2026-05", ["A"]),  # scored after the decisions: never used for them
            (5, "2026-02", ["6", "1"]),
        ]
        periods = [Period.parse(p) for p in ("2025-12", "2026-01", "2026-02", "2026-03", "2026-04")]
        chosen = {(c.scale, c.run_id): (c.first, c.last) for c in choose_runs(runs, periods)}
        assert chosen == {
            ("level", 1): (date(2026, 1, 1), date(2026, 2, 28)),
            ("level", 3): (date(2026, 3, 1), date(2026, 4, 30)),
            ("category", 5): (date(2026, 2, 1), date(2026, 4, 30)),
        }

    def test_facts_for_the_members_of_scored_families_only(self) -> None:
        (chosen,) = choose_runs([(9, "2026-03", ["B"])], [Period.parse("2026-03")])
        scored = RuleInput(
            [chosen],
            {
                9: pa.table(
                    {"family_id": pa.array([10], pa.int64()), "position": pa.array([2], pa.int32())}
                )
            },
        )
        person = pa.table(
            {
                "person_id": pa.array([1, 2, 3], pa.int64()),
                "family_id": pa.array([10, 11, None], pa.int64()),
            }
        )
        facts = scored.facts(person)
        assert facts.to_pylist() == [_fact(1, "level", 2, 9, date(2026, 3, 1), date(2026, 3, 31))]


@st.composite
def scored_population(draw: st.DrawFn) -> tuple[Period, pa.Table, pa.Table]:
    period = Period.month(draw(st.integers(2025, 2026)), draw(st.integers(1, 12)))
    persons: list[dict[str, Any]] = []
    facts: list[dict[str, Any]] = []
    pid = 0
    for fid in range(1, draw(st.integers(1, 6)) + 1):
        region = draw(st.sampled_from(["351010000", "791110000", "751110000"]))
        members = draw(st.integers(1, 4))
        # Each scale: unscored, or scored by a run that began before, in or after the period.
        results = {
            scale: draw(
                st.one_of(
                    st.none(),
                    st.tuples(
                        st.integers(1, size),
                        st.integers(1, 99),
                        st.integers(-90, 40),
                        st.one_of(st.none(), st.integers(-40, 90)),
                    ),
                )
            )
            for scale, size in (("level", 5), ("category", 6))
        }
        for i in range(members):
            pid += 1
            persons.append(
                {
                    "person_id": pid,
                    "family_id": fid,
                    "role": "head" if i == 0 else "child",
                    "sex": "F",
                    "birth_on": period.start - timedelta(days=draw(st.integers(100, 20000))),
                    "death_on": None,
                    "region_kato": region,
                }
            )
            for scale, result in results.items():
                if result is not None:
                    position, run, begin, end = result
                    first = period.start + timedelta(days=begin)
                    last = None if end is None else period.start + timedelta(days=end)
                    facts.append(_fact(pid, scale, position, run, first, last))
    return (
        period,
        pa.Table.from_pylist(persons, schema=PERSON_SCHEMA),
        pa.Table.from_pylist(facts, schema=FACT_SCHEMA),
    )


class TestAgreement:
    @pytest.mark.slow
    @settings(
        max_examples=8,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(data=scored_population())
    def test_batch_numpy_and_online_agree(
        self, pilot: CompiledPack, reader: CompiledPack, data: Any
    ) -> None:  # type: ignore[no-untyped-def]
        period, person, fact = data
        assert check_agreement(pilot, person, fact, period) > 0
        assert check_agreement(reader, person, fact, period) > 0

    def test_the_whole_registry_batch_runs_in_numpy(self, reader: CompiledPack) -> None:
        period = Period.parse("2026-03")
        person = pa.Table.from_pylist(
            [
                {
                    "person_id": i,
                    "family_id": (i + 1) // 2,
                    "role": "head" if i % 2 else "child",
                    "sex": "F",
                    "birth_on": date(1990, 1, 1),
                    "death_on": None,
                    "region_kato": "351010000",
                }
                for i in range(1, 7)
            ],
            schema=PERSON_SCHEMA,
        )
        fact = pa.Table.from_pylist(
            [_fact(i, "level", 5, 8, period.start, None) for i in (1, 2)]
            + [_fact(i, "category", 1, 3, period.start, None) for i in (3, 4)],
            schema=FACT_SCHEMA,
        )
        engine = Engine(reader, threads=1)
        try:
            engine.load(person, fact)
            result = engine.evaluate(period)
            assert result.path == "numpy", result.why_duckdb
            decided = {d.entity_id: d for d in result.decisions("t.reader", eligible_only=False)}
            assert decided[1].eligible
            assert decided[2].eligible
            assert not decided[3].eligible
            assert decided[1].variables["wellbeing_level"] == "E"
            assert decided[1].variables["wellbeing_level_run"] == 8
            assert decided[3].variables["wellbeing_level"] is None
        finally:
            engine.close()
        assert check_agreement(reader, person, fact, period) > 0
