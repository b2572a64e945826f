"""The well-being service on both stores: runs, counts, lists, CSV, changes, cards, audit."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date

import pytest
from sqlalchemy.orm import Session

from socialcard.registry.snapshot import family_snapshot
from socialcard.rules.engine.periods import Period
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor
from socialcard.wellbeing import service
from socialcard.wellbeing.errors import (
    FamilyNotScored,
    InvalidWellbeingQuery,
    MethodologyInvalid,
    MethodologyNotFound,
    PeriodNotCovered,
    RunNotFound,
)
from socialcard.wellbeing.methodology import Methodology
from socialcard.wellbeing.schemas import RunRead
from tests.factories import make_fact, make_family, make_person
from tests.wellbeing.conftest import Families
from tests.wellbeing.helpers import (
    BOUNDARY_FAMILIES,
    HOME,
    METHODOLOGY,
    PERIOD,
    Member,
    couple,
    make_pack,
)

ACTOR = Actor(key_id=None, name="test-operator", role="operator")
PURPOSE = Purpose.CASE_REVIEW
ScoreRun = Callable[..., RunRead]


def _audit(session: Session) -> list[dict[str, object]]:
    return list(session.info.get("pending_audit", []))


def _rows(session: Session, run_id: int) -> list[tuple[object, ...]]:
    page = service.list_families(session, run_id=run_id, actor=ACTOR, purpose=PURPOSE, size=200)
    return [tuple(f.model_dump().values()) for f in page.items]


class TestScore:
    def test_stores_the_run_with_counts_and_one_row_per_family(
        self, session: Session, score_run: ScoreRun, boundary_families: Families
    ) -> None:
        run = score_run(boundary_families)
        assert run.families == len(BOUNDARY_FAMILIES)
        expected = {"A": 0, "B": 0, "C": 0, "E": 0}
        for _, _, level in BOUNDARY_FAMILIES.values():
            expected[level] += 1
        assert {lv.level: lv.families for lv in run.levels} == expected
        assert run.methodology_id == "kz.wellbeing.test"
        assert len(run.methodology_sha256) == 64
        assert set(run.timings) >= {"load", "evaluate", "write"}
        stored = {r[0]: (r[3], r[2]) for r in _rows(session, run.id)}
        assert stored == {k: (v[1], v[2]) for k, v in BOUNDARY_FAMILIES.items()}

    def test_a_rerun_on_the_same_data_gives_the_same_results(
        self, session: Session, score_run: ScoreRun, boundary_families: Families
    ) -> None:
        first = score_run(boundary_families)
        second = score_run(boundary_families)
        assert second.id != first.id
        assert _rows(session, first.id) == _rows(session, second.id)
        assert [lv.families for lv in first.levels] == [lv.families for lv in second.levels]

    def test_a_period_before_the_methodology_is_a_conflict(
        self, score_run: ScoreRun, boundary_families: Families
    ) -> None:
        with pytest.raises(PeriodNotCovered) as caught:
            score_run(boundary_families, period="2023-05")
        assert caught.value.details[0]["field"] == "period"

    def test_a_malformed_period_names_the_field(
        self, score_run: ScoreRun, boundary_families: Families
    ) -> None:
        with pytest.raises(InvalidWellbeingQuery) as caught:
            score_run(boundary_families, period="2026-13")
        assert caught.value.details[0]["field"] == "period"


class TestLoad:
    def test_default_is_the_five_level_scheme(self) -> None:
        assert service.load().id == "kz.wellbeing.cks_2023"

    def test_by_id(self) -> None:
        assert len(service.load("kz.wellbeing.scoring_2025").levels) == 6

    def test_unknown_id(self) -> None:
        with pytest.raises(MethodologyNotFound):
            service.load("kz.wellbeing.nothing")

    def test_invalid_file_lists_each_problem(
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        path = make_pack(
            tmp_path_factory.mktemp("bad"), METHODOLOGY.replace("points: 10", "points: x")
        )
        with pytest.raises(MethodologyInvalid) as caught:
            service.load(str(path))
        assert caught.value.status_code == 409
        assert caught.value.details[0]["field"].startswith(str(path))


class TestListFamilies:
    def test_filters_by_level_and_pages(
        self, session: Session, score_run: ScoreRun, boundary_families: Families
    ) -> None:
        run = score_run(boundary_families)
        in_c = sorted(k for k, v in BOUNDARY_FAMILIES.items() if v[2] == "C")
        first = service.list_families(
            session, run_id=run.id, actor=ACTOR, purpose=PURPOSE, level="C", size=2
        )
        second = service.list_families(
            session, run_id=run.id, actor=ACTOR, purpose=PURPOSE, level="C", size=2, page=2
        )
        assert first.total == len(in_c)
        assert [f.family_id for f in first.items + second.items] == in_c[:4]

    def test_filters_by_region_prefix(self, session: Session, score_run: ScoreRun) -> None:
        run = score_run({1: [Member(region="751110000")], 2: [Member(region="631010000")]})
        page = service.list_families(
            session, run_id=run.id, actor=ACTOR, purpose=PURPOSE, region="63"
        )
        assert [f.family_id for f in page.items] == [2]

    def test_every_family_read_is_audited(
        self, session: Session, score_run: ScoreRun, boundary_families: Families
    ) -> None:
        run = score_run(boundary_families)
        before = len(_audit(session))
        page = service.list_families(
            session, run_id=run.id, actor=ACTOR, purpose=PURPOSE, level="A"
        )
        events = _audit(session)[before:]
        assert sorted(e["subject_id"] for e in events) == [f.family_id for f in page.items]
        assert {e["action"] for e in events} == {"wellbeing.families.read"}
        assert {e["purpose"] for e in events} == {"case_review"}

    def test_unknown_level_names_the_field(
        self, session: Session, score_run: ScoreRun, boundary_families: Families
    ) -> None:
        run = score_run(boundary_families)
        with pytest.raises(InvalidWellbeingQuery) as caught:
            service.list_families(session, run_id=run.id, actor=ACTOR, purpose=PURPOSE, level="Q")
        assert caught.value.details[0]["field"] == "level"

    def test_unknown_run(self, session: Session) -> None:
        with pytest.raises(RunNotFound):
            service.list_families(session, run_id=10**9, actor=ACTOR, purpose=PURPOSE)


class TestExportCsv:
    def test_exports_every_family_of_a_level_with_audit(
        self, session: Session, score_run: ScoreRun, boundary_families: Families
    ) -> None:
        run = score_run(boundary_families)
        before = len(_audit(session))
        lines = service.export_families_csv(
            session, run_id=run.id, actor=ACTOR, purpose=PURPOSE, level="C", reader=session
        )
        in_c = sorted(k for k, v in BOUNDARY_FAMILIES.items() if v[2] == "C")
        # Recorded before a single line is made (the caller commits it, then streams).
        assert sorted(e["subject_id"] for e in _audit(session)[before:]) == in_c
        text = "".join(lines)
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [int(r["family_id"]) for r in rows] == in_c
        assert all(r["level"] == "C" for r in rows)
        assert {int(r["family_id"]): int(r["score"]) for r in rows} == {
            k: BOUNDARY_FAMILIES[k][1] for k in in_c
        }
        assert len(_audit(session)) - before == len(in_c)  # nothing more while streaming

    def test_a_bad_filter_fails_before_streaming(
        self, session: Session, score_run: ScoreRun, boundary_families: Families
    ) -> None:
        run = score_run(boundary_families)
        with pytest.raises(InvalidWellbeingQuery):
            service.export_families_csv(
                session, run_id=run.id, actor=ACTOR, purpose=PURPOSE, region="7x", reader=session
            )


class TestLevelChanges:
    def test_lists_families_that_changed_level_since_the_previous_run(
        self, session: Session, score_run: ScoreRun, boundary_families: Families
    ) -> None:
        first = score_run(boundary_families)
        changed = dict(boundary_families)
        changed[3] = couple(facts=[HOME])  # B (0) -> A (10)
        changed[6] = [Member(facts=[("property", "vehicle")])]  # E (-16) -> B (4)
        second = score_run(changed)
        result = service.level_changes(session, run_id=second.id, actor=ACTOR, purpose=PURPOSE)
        assert result.previous_run_id == first.id
        assert [(c.family_id, c.from_level, c.to_level) for c in result.items] == [
            (3, "B", "A"),
            (6, "E", "B"),
        ]
        assert [(c.from_score, c.to_score) for c in result.items] == [(0, 10), (-16, 4)]
        assert {(t.from_level, t.to_level, t.families) for t in result.transitions} == {
            ("B", "A", 1),
            ("E", "B", 1),
        }

    def test_the_first_run_has_no_previous_run(
        self, session: Session, score_run: ScoreRun, boundary_families: Families
    ) -> None:
        run = score_run(boundary_families)
        result = service.level_changes(session, run_id=run.id, actor=ACTOR, purpose=PURPOSE)
        assert result.previous_run_id is None
        assert result.items == []

    def test_no_change_on_the_same_data(
        self, session: Session, score_run: ScoreRun, boundary_families: Families
    ) -> None:
        score_run(boundary_families)
        second = score_run(boundary_families)
        result = service.level_changes(session, run_id=second.id, actor=ACTOR, purpose=PURPOSE)
        assert result.total == 0


class TestFamilyCard:
    def test_explains_every_point(
        self, session: Session, score_run: ScoreRun, boundary_families: Families
    ) -> None:
        run = score_run(boundary_families)
        card = service.family_card(session, family_id=8, actor=ACTOR, purpose=PURPOSE)
        assert card.run_id == run.id
        assert (card.level.code, card.score) == ("A", 18)
        assert card.level.confirmed
        assert (card.level.name_confidence, card.level.cut_confidence) == ("confirmed", "confirmed")
        # The test methodology marks no indicator: each is shown as not confirmed.
        marks = {(i.confidence, i.points_confidence) for d in card.dimensions for i in d.indicators}
        assert marks == {("unconfirmed", "unconfirmed")}
        awarded = [i for d in card.dimensions for i in d.indicators if i.holds]
        assert {i.code for i in awarded} == {"has_vehicle", "owns_home", "student"}
        assert sum(i.points_awarded for d in card.dimensions for i in d.indicators) == 18
        for dim in card.dimensions:
            assert dim.score == sum(i.points_awarded for i in dim.indicators)
        housing = next(d for d in card.dimensions if d.code == "housing")
        assert housing.title.ru == "жильё"
        assert housing.indicators[0].expression == "sum(member.real_estate_count) > 0"
        assert _audit(session)[-1]["subject_id"] == 8

    def test_a_family_in_no_run(self, session: Session) -> None:
        with pytest.raises(FamilyNotScored):
            service.family_card(session, family_id=987654321, actor=ACTOR, purpose=PURPOSE)

    def test_a_family_not_in_the_named_run(
        self, session: Session, score_run: ScoreRun, boundary_families: Families
    ) -> None:
        run = score_run(boundary_families)
        with pytest.raises(FamilyNotScored):
            service.family_card(session, family_id=999, run_id=run.id, actor=ACTOR, purpose=PURPOSE)


class TestRegionCounts:
    def test_counts_per_level_in_each_region(self, session: Session, score_run: ScoreRun) -> None:
        run = score_run(
            {
                1: couple(facts=[HOME], region="631010000"),
                2: [Member(region="631010000")],
                3: [Member(region="751110000")],
            }
        )
        regions = {r.region_kato: r for r in service.region_counts(session, run_id=run.id)}
        assert regions["631010000"].levels == {"A": 1, "B": 0, "C": 1, "E": 0}
        assert regions["631010000"].families == 2
        assert regions["751110000"].levels["C"] == 1
        assert regions["751110000"].region_name is not None


class TestListRuns:
    def test_newest_first_and_filtered_by_methodology(
        self, session: Session, score_run: ScoreRun, methodology: Methodology
    ) -> None:
        first = score_run({1: [Member()]})
        second = score_run({1: [Member()]})
        page = service.list_runs(session, methodology_id=methodology.id)
        ids = [r.id for r in page.items]
        assert ids.index(second.id) < ids.index(first.id)
        assert service.list_runs(session, methodology_id="kz.other").total == 0


class TestFamilyCardValues:
    def test_shows_the_values_each_indicator_reads(
        self, session: Session, methodology: Methodology
    ) -> None:
        mother = make_person(session, birth_on=date(1990, 1, 1))
        child = make_person(session, birth_on=date(2020, 1, 1), sex="M")
        family = make_family(session, [(mother, "head"), (child, "child")])
        make_fact(session, mother, amount_minor=60_000_00)
        make_fact(
            session, mother, kind="property", detail="real_estate", amount_minor=None, quantity=1
        )
        person, fact = family_snapshot(session, family.id, Period.parse(PERIOD))
        service.score(session, methodology=methodology, period=PERIOD, person=person, fact=fact)
        before = len(_audit(session))
        card = service.family_card(
            session, family_id=family.id, actor=ACTOR, purpose=PURPOSE, methodology=methodology
        )
        assert (card.level.code, card.score) == ("C", -10)  # low income -20, home +10
        low = next(i for d in card.dimensions for i in d.indicators if i.code == "low_income")
        assert (low.holds, low.holds_now) == (True, True)
        values = {v.name: v for v in low.values}
        assert values["income_per_capita_month"].value == 30_000_00
        assert values["income_per_capita_month"].text.en.startswith("30")
        assert values["low_income_line"].value == 50_000_00
        members = {
            e["subject_id"] for e in _audit(session)[before:] if e["subject_type"] == "person"
        }
        assert members == {mother.id, child.id}
        # The card's read itself is recorded per member, so each one's access log shows it.
        card_reads = [e for e in _audit(session)[before:] if e["action"] == "wellbeing.card.read"]
        assert {(e["subject_type"], e["subject_id"]) for e in card_reads} == {
            ("person", mother.id),
            ("person", child.id),
        }

    def test_no_values_when_the_methodology_changed(
        self, session: Session, score_run: ScoreRun, boundary_families: Families
    ) -> None:
        score_run(boundary_families)
        card = service.family_card(session, family_id=8, actor=ACTOR, purpose=PURPOSE)
        assert "methodology changed" in card.values_note
        assert all(not i.values for d in card.dimensions for i in d.indicators)


class TestEmptyRegistry:
    def test_scores_nothing_without_failing(self, session: Session, score_run: ScoreRun) -> None:
        run = score_run({})
        assert run.families == 0
        assert all(lv.families == 0 for lv in run.levels)
        assert service.region_counts(session, run_id=run.id) == []


class TestStoredLevels:
    def test_a_run_kept_before_the_marks_reads_its_one_flag(self) -> None:
        # Runs keep their methodology's definition; older ones have `confirmed` only.
        name = {"kk": "a", "ru": "а", "en": "a"}
        old = {"code": "A", "name": name, "min_score": 0, "confirmed": True}
        level = service._stored_level(old)
        assert (level.name_confidence, level.cut_confidence, level.confirmed) == (
            "confirmed",
            "confirmed",
            True,
        )
        last = service._stored_level({"code": "E", "name": name, "min_score": None})
        assert (last.name_confidence, last.cut_confidence, last.confirmed) == (
            "unconfirmed",
            None,
            False,
        )
