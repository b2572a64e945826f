"""A stored rules run reads the families' well-being from the scoring runs valid for its period."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.orm import Session

from socialcard.registry.models import Family
from socialcard.rules import service as rules_service
from socialcard.rules.schemas import RunRead
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor
from socialcard.wellbeing import inputs
from socialcard.wellbeing.models import WellbeingResult, WellbeingRun
from tests.factories import make_family, make_person
from tests.rules.conftest import ROOT

PILOT = ROOT / "packs" / "kz_local_pilot"
PROGRAM = "kz_local_pilot.housing_aid"
AUDIT = {"actor": Actor(key_id=None, name="test", role="operator"), "purpose": Purpose.AUDIT}
CATEGORIES = {"6": 0, "5": 0, "4": 0, "3": 0, "2": 0, "1": 0}


def stored_run(
    session: Session, period: str, levels: dict[int, str], *, codes: dict[str, int] = CATEGORIES
) -> int:
    """A scoring run of `period` with the given family levels (as the scoring stores it)."""
    run = WellbeingRun(
        methodology_id="kz.wellbeing.scoring_2025",
        methodology_sha256="0" * 64,
        period=period,
        families=len(levels),
        level_counts=dict(codes),
        definition={},
        timings={},
    )
    session.add(run)
    session.flush()
    for family_id, level in levels.items():
        session.add(
            WellbeingResult(
                run_id=run.id,
                family_id=family_id,
                region_kato="351010000",
                level=level,
                score=0,
                economic=0,
                social=0,
                housing=0,
                health=0,
                education=0,
                indicators="",
            )
        )
    session.flush()
    return run.id


def family(session: Session, region: str) -> Family:
    head = make_person(session, sex="M", birth_on=date(1980, 1, 10), region_kato=region)
    child = make_person(session, sex="F", birth_on=date(2015, 3, 1), region_kato=region)
    return make_family(session, [(head, "head"), (child, "child")], region_kato=region)


def run(session: Session, period: str, months: int = 1) -> RunRead:
    return rules_service.run_rules(
        session,
        period=period,
        months=months,
        pack_path=PILOT,
        snapshot=rules_service.session_snapshot(session, period=period, months=months),
    )


@pytest.fixture
def families(session: Session) -> dict[str, Family]:
    return {
        "high": family(session, "351010000"),
        "low": family(session, "791110000"),
        "unscored": family(session, "351010000"),
        "elsewhere": family(session, "751110000"),
    }


class TestRulesRun:
    def test_category_6_is_excluded_and_the_decision_keeps_the_run(
        self, session: Session, families: dict[str, Family]
    ) -> None:
        ids = {k: f.id for k, f in families.items()}
        stale = stored_run(session, "2026-01", {ids["high"]: "2", ids["low"]: "2"})
        current = stored_run(
            session, "2026-02", {ids["high"]: "6", ids["low"]: "3", ids["elsewhere"]: "6"}
        )
        later = stored_run(session, "2026-04", {ids["high"]: "1", ids["low"]: "1"})
        assert stale < current < later
        result = run(session, "2026-03")
        decisions = {
            d.family_id: d
            for d in rules_service.list_decisions(
                session, run_id=result.id, program_id=PROGRAM, size=100, **AUDIT
            ).items
        }
        high, low = decisions[ids["high"]], decisions[ids["low"]]
        assert high.eligible is False
        assert high.conditions == {"pilot_region": True, "not_high_wellbeing": False}
        assert high.variables["wellbeing_category"] == "6"
        assert high.variables["wellbeing_category_run"] == current
        assert low.eligible is True
        assert low.variables["wellbeing_category"] == "3"
        assert low.variables["wellbeing_category_run"] == current
        unscored = decisions[ids["unscored"]]
        assert unscored.eligible is True
        assert unscored.variables["wellbeing_category"] is None
        assert decisions[ids["elsewhere"]].eligible is False
        explained = rules_service.explain_decision(
            session,
            run_id=result.id,
            family_key=ids["high"],
            program_id=PROGRAM,
            lang="en",
            **AUDIT,
        )
        assert f"6, scoring run {current}" in explained.explanation.conditions[1]
        online = rules_service.evaluate_family(
            session, family_id=ids["unscored"], period="2026-03", lang="ru", pack_path=PILOT
        )
        (decision,) = [d for d in online.decisions if d.program_id == PROGRAM]
        assert "нет данных" in decision.explanation.conditions[1]

    def test_each_month_of_a_run_takes_the_run_valid_for_it(
        self, session: Session, families: dict[str, Family]
    ) -> None:
        high = families["high"].id
        first = stored_run(session, "2026-02", {high: "5"})
        second = stored_run(session, "2026-03", {high: "6"})
        result = run(session, "2026-01", months=3)
        by_period = {}
        for period in ("2026-01", "2026-02", "2026-03"):
            page = rules_service.list_decisions(
                session, run_id=result.id, program_id=PROGRAM, period=period, size=100, **AUDIT
            )
            by_period[period] = next(d for d in page.items if d.family_id == high)
        assert by_period["2026-01"].eligible is True
        assert by_period["2026-01"].variables["wellbeing_category"] is None
        assert by_period["2026-02"].variables["wellbeing_category_run"] == first
        assert by_period["2026-02"].eligible is True
        assert by_period["2026-03"].variables["wellbeing_category_run"] == second
        assert by_period["2026-03"].eligible is False

    def test_online_reads_the_same_run(self, session: Session, families: dict[str, Family]) -> None:
        high = families["high"].id
        current = stored_run(session, "2026-03", {high: "6"})
        online = rules_service.evaluate_family(
            session, family_id=high, period="2026-03", lang="en", pack_path=PILOT
        )
        (decision,) = [d for d in online.decisions if d.program_id == PROGRAM]
        assert decision.eligible is False
        assert decision.variables["wellbeing_category_run"] == current


class TestRuleInput:
    def test_reads_each_run_once_as_columns(
        self, session: Session, families: dict[str, Family]
    ) -> None:
        ids = [f.id for f in families.values()]
        run_id = stored_run(session, "2026-03", dict.fromkeys(ids, "E"), codes={"A": 0, "E": 4})
        scored = inputs.rule_input(session, [rules_service.parse_period("2026-03")])
        assert scored.run_ids == [run_id]
        assert scored.results[run_id].num_rows == len(ids)
        assert set(scored.results[run_id]["position"].to_pylist()) == {5}

    def test_a_pack_that_does_not_read_it_gets_nothing(
        self, session: Session, families: dict[str, Family]
    ) -> None:
        from socialcard.rules.engine import load_pack

        stored_run(session, "2026-03", {f.id: "6" for f in families.values()})
        period = [rules_service.parse_period("2026-03")]
        kz = load_pack(ROOT / "packs" / "kz")
        pilot = load_pack(PILOT)
        assert not kz.reads(inputs.BUILTINS)
        assert pilot.reads(inputs.BUILTINS)
        assert inputs.rule_input(session, period, compiled=kz).chosen == []
        assert inputs.rule_input(session, period, compiled=pilot).run_ids != []
