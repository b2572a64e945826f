"""The registry-backed rules service: stored runs, stored decisions, one family online."""

from __future__ import annotations

import gc
import shutil
import threading
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from socialcard.core.errors import InvalidInput, NotFound
from socialcard.rules import repository, service
from socialcard.rules.errors import FamilyNotFound
from socialcard.rules.schemas import ExplainedDecision, RunRead, StoredDecision
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor
from tests.factories import make_person
from tests.rules.service_data import Families, build_families

AUDIT = {"actor": Actor(key_id=None, name="test", role="operator"), "purpose": Purpose.AUDIT}


def kept_values(decision: ExplainedDecision) -> dict[str, object]:
    """The values a stored decision keeps: all when eligible or a condition is met, else none."""
    if decision.eligible or any(decision.conditions.values()):
        return decision.variables
    return {}


@pytest.fixture
def families(session: Session) -> Families:
    return build_families(session)


def _run(session: Session, **kwargs: object) -> RunRead:
    return service.run_rules(
        session,
        snapshot=service.session_snapshot(
            session,
            period=str(kwargs["period"]),
            months=int(kwargs.get("months", 1)),  # type: ignore[call-overload]
        ),
        **kwargs,  # type: ignore[arg-type]
    )


class TestLoadedPack:
    def test_freezes_the_heap_once_the_pack_is_compiled(self, tmp_path: Path):
        # A full collection walking the compiled pack and the imported modules was the p99
        # tail of the online family check (benchmarks/bench_rules_online.py).
        pack = tmp_path / "kz"
        shutil.copytree(service.resolve_pack_path("packs/kz"), pack)
        gc.unfreeze()
        assert gc.get_freeze_count() == 0
        try:
            loaded = service.loaded_pack(pack)
            assert gc.get_freeze_count() > 0
            assert service.loaded_pack(pack) is loaded
        finally:
            service._PACKS.pop(str(pack.resolve()), None)

    def test_the_server_compiles_the_pack_at_start(self) -> None:
        from fastapi.testclient import TestClient

        from socialcard.app import create_app

        key = str(service.resolve_pack_path(None))
        earlier = service._PACKS.pop(key, None)
        try:
            with TestClient(create_app()):
                assert key in service._PACKS  # before any request
        finally:
            if earlier is not None:
                service._PACKS[key] = earlier

    def test_a_pack_that_does_not_load_does_not_stop_the_server(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setattr(service, "resolve_pack_path", lambda path=None: tmp_path)
        service.warm_up()  # logged, not raised
        assert str(tmp_path) not in service._PACKS


class TestRunRules:
    def test_stores_a_run_with_counts_per_program_and_region(
        self, session: Session, families: Families
    ):
        run = _run(session, period="2026-03")
        assert run.status == "succeeded"
        assert run.families == 3
        assert run.persons == 9
        detail = service.get_run(session, run_id=run.id)
        large = next(p for p in detail.by_program if p.program_id == "kz.large_family")
        assert large.eligible == 1
        assert large.amount_minor > 0
        assert large.version is not None
        assert "mrp" in large.parameters
        regions = {r.region_kato for r in detail.by_region if r.program_id == "kz.large_family"}
        assert regions == {"750000000", "710000000"}
        assert sum(r.eligible for r in detail.by_program) == run.eligible

    def test_eligible_decisions_name_the_recipient_and_keep_conditions(
        self, session: Session, families: Families
    ):
        run = _run(session, period="2026-03")
        found = list(
            service.eligible_decisions(session, run_id=run.id, program_id="kz.large_family")
        )
        assert len(found) == 1
        decision = found[0]
        assert decision.entity_type == "family"
        assert decision.entity_id == families.large.id
        assert decision.family_id == families.large.id
        assert decision.person_id == families.large_head
        assert decision.region_kato == "751110000"
        assert decision.conditions == {"four_or_more_children": True}
        assert decision.variables["dependent_children"] == 4
        assert decision.amount_minor
        assert decision.amount_minor > 0
        assert decision.period == "2026-03"

    def test_person_program_decisions_are_per_person(self, session: Session, families: Families):
        run = _run(session, period="2026-03")
        pensions = list(
            service.eligible_decisions(session, run_id=run.id, program_id="kz.base_pension")
        )
        assert [d.person_id for d in pensions] == [families.retired_person]
        assert pensions[0].entity_type == "person"
        assert pensions[0].conditions == {"retirement_age_reached": True}

    def test_several_months_store_each_period(self, session: Session, families: Families):
        run = _run(session, period="2026-02", months=2)
        assert run.months == 2
        for period in ("2026-02", "2026-03"):
            page = service.list_decisions(
                session,
                run_id=run.id,
                program_id="kz.large_family",
                eligible=True,
                period=period,
                **AUDIT,
            )
            assert [d.family_id for d in page.items] == [families.large.id]

    def test_only_selected_programs_are_stored(self, session: Session, families: Families):
        run = _run(session, period="2026-03", programs=["kz.large_family"])
        detail = service.get_run(session, run_id=run.id)
        assert [p.program_id for p in detail.by_program] == ["kz.large_family"]
        with pytest.raises(InvalidInput) as error:
            list(service.eligible_decisions(session, run_id=run.id, program_id="kz.asp"))
        assert error.value.details[0]["field"] == "program"

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"period": "2026-13"}, "period"),
            ({"period": "1990-01"}, "period"),
            ({"period": "2026-03", "programs": ["kz.nope"]}, "programs"),
            ({"period": "2026-03", "months": 0}, "months"),
        ],
    )
    def test_bad_input_names_the_field(
        self, session: Session, kwargs: dict[str, object], field: str
    ):
        with pytest.raises(InvalidInput) as error:
            # The request is checked before the registry is read.
            service.run_rules(session, **kwargs)  # type: ignore[arg-type]
        assert error.value.details[0]["field"] == field


class TestLatestRun:
    def test_the_newest_succeeded_run_of_the_period(self, session: Session, families: Families):
        assert service.latest_run(session, period="2026-03") is None
        _run(session, period="2026-03")
        second = _run(session, period="2026-03")
        _run(session, period="2026-04")
        latest = service.latest_run(session, period="2026-03")
        assert latest is not None
        assert latest.id == second.id


class TestStoredEqualsOnline:
    def test_every_decision_of_every_family_agrees(self, session: Session, families: Families):
        run = _run(session, period="2026-03")
        stored = {}
        for family in (families.large, families.small, families.retired):
            page = service.list_decisions(session, run_id=run.id, size=200, **AUDIT)
            for d in page.items:
                stored[(d.program_id, d.entity_id)] = d
            online = service.evaluate_family(session, family_id=family.id, period="2026-03")
            assert online.decisions
            for decision in online.decisions:
                kept = stored[(decision.program_id, decision.entity_id)]
                assert kept.eligible == decision.eligible
                assert kept.amount_minor == decision.amount_minor
                assert kept.conditions == decision.conditions
                assert kept.version == decision.version
                assert kept.variables == kept_values(decision)


class TestEvaluateFamily:
    def test_decisions_with_explanations_in_the_heads_language(
        self, session: Session, families: Families
    ):
        result = service.evaluate_family(session, family_id=families.large.id, period="2026-03")
        assert result.lang == "ru"  # the head's preferred language
        assert sorted(result.members) == sorted(families.large_members)
        large = next(d for d in result.decisions if d.program_id == "kz.large_family")
        assert large.eligible is True
        assert large.person_id == families.large_head
        assert large.parameters["mrp"]
        assert large.explanation.lang == "ru"
        assert any("выполнено" in s for s in large.explanation.conditions)
        assert large.explanation.legal_basis

    def test_language_can_be_chosen(self, session: Session, families: Families):
        result = service.evaluate_family(
            session, family_id=families.large.id, period="2026-03", lang="en"
        )
        large = next(d for d in result.decisions if d.program_id == "kz.large_family")
        assert large.explanation.conditions[0].endswith("— met")

    def test_unknown_family_is_not_found(self, session: Session):
        with pytest.raises(FamilyNotFound):
            service.evaluate_family(session, family_id=987654321, period="2026-03")

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"period": "March"}, "period"),
            ({"period": "1990-01"}, "period"),
            ({"period": "2026-03", "lang": "de"}, "lang"),
            ({"period": "2026-03", "overrides": {"kz.nope": "1"}}, "overrides.kz.nope"),
            (
                {"period": "2026-03", "overrides": {"kz.asp.poverty_line_share": "lots"}},
                "overrides.kz.asp.poverty_line_share",
            ),
        ],
    )
    def test_bad_input_names_the_field(
        self, session: Session, families: Families, kwargs: dict[str, object], field: str
    ):
        with pytest.raises(InvalidInput) as error:
            service.evaluate_family(session, family_id=families.large.id, **kwargs)  # type: ignore[arg-type]
        assert error.value.details[0]["field"] == field


class TestExplainDecision:
    @pytest.mark.parametrize(
        ("lang", "word"), [("kk", "орындалды"), ("ru", "выполнено"), ("en", "met")]
    )
    def test_stored_decision_explained_in_each_language(
        self, session: Session, families: Families, lang: str, word: str
    ):
        run = _run(session, period="2026-03")
        explained = service.explain_decision(
            session,
            **AUDIT,
            run_id=run.id,
            family_key=families.large.id,
            program_id="kz.large_family",
            lang=lang,
        )
        assert explained.eligible is True
        assert explained.explanation.conditions[0].endswith(word)
        assert "4" in explained.explanation.conditions[0]
        online = service.evaluate_family(
            session, family_id=families.large.id, period="2026-03", lang=lang
        )
        same = next(d for d in online.decisions if d.program_id == "kz.large_family")
        assert explained.explanation.text == same.explanation.text

    def test_person_program_needs_the_person(self, session: Session, families: Families):
        run = _run(session, period="2026-03")
        with pytest.raises(InvalidInput) as error:
            service.explain_decision(
                session,
                **AUDIT,
                run_id=run.id,
                family_key=families.retired.id,
                program_id="kz.base_pension",
            )
        assert error.value.details[0]["field"] == "person_id"
        explained = service.explain_decision(
            session,
            **AUDIT,
            run_id=run.id,
            family_key=families.retired.id,
            program_id="kz.base_pension",
            person_id=families.retired_person,
            lang="en",
        )
        assert explained.eligible

    def test_unknown_run_is_not_found(self, session: Session):
        with pytest.raises(NotFound):
            service.explain_decision(
                session, run_id=99999, family_key=1, program_id="kz.large_family", **AUDIT
            )


class TestRunOverTheCommittedRegistry:
    def test_reads_the_registry_over_adbc(self, committed_engine: Engine):
        with Session(committed_engine, expire_on_commit=False) as session:
            families = build_families(session)
            session.commit()
            run = service.run_rules(session, period="2026-03")
            session.commit()
            assert run.families == 3
            found = list(
                service.eligible_decisions(session, run_id=run.id, program_id="kz.large_family")
            )
            assert [d.family_id for d in found] == [families.large.id]


class TestStoredEqualsOnlineOnAGeneratedRegion:
    def test_stored_decisions_agree_with_online_for_generated_families(
        self, committed_engine: Engine
    ):
        from socialcard.registry.population.loader import generate_population

        generate_population(committed_engine, families=150, seed=11, region="750000000")
        with Session(committed_engine) as session:
            run = service.run_rules(session, period="2026-03")
            session.commit()
            assert run.families >= 150
            checked = 0
            page = service.list_decisions(session, run_id=run.id, size=60, **AUDIT)
            by_family: dict[int, list[StoredDecision]] = {}
            for d in page.items:
                if d.family_id is not None:
                    by_family.setdefault(d.family_id, []).append(d)
            for family_id, stored in by_family.items():
                online = service.evaluate_family(session, family_id=family_id, period="2026-03")
                live = {(d.program_id, d.entity_id): d for d in online.decisions}
                for kept in stored:
                    now = live[(kept.program_id, kept.entity_id)]
                    assert (kept.eligible, kept.amount_minor, kept.conditions, kept.variables) == (
                        now.eligible,
                        now.amount_minor,
                        now.conditions,
                        kept_values(now),
                    ), (family_id, kept.program_id)
                    checked += 1
            assert checked > 500
            eligible = sum(p.eligible for p in service.get_run(session, run_id=run.id).by_program)
            assert eligible == run.eligible > 0


def _stored(session: Session, run_id: int, periods: list[str]) -> list[object]:
    """Everything a run stored, in order, without its id."""
    rows: list[object] = []
    for period in periods:
        rows += list(repository.iter_outcomes(session, run_id=run_id, period=period, bit=None))
    rows += [
        (p.period, p.program_id, p.position, p.version, p.parameters, p.evaluated, p.eligible)
        for p in repository.run_programs(session, run_id)
    ]
    rows += [
        (r.period, r.program_id, r.region_kato, r.evaluated, r.eligible, r.amount_minor)
        for r in repository.run_regions(session, run_id)
    ]
    return rows


class TestRunInChunks:
    def test_tiny_chunks_store_what_one_chunk_stores(self, committed_engine: Engine):
        from socialcard.registry.population.loader import generate_population

        # Chunks of 7 families out of about 60 (and the persons without a family, whose keys
        # are negative): most families' members sit next to a chunk's bounds.
        generate_population(committed_engine, families=60, seed=3)
        with Session(committed_engine) as session:
            for year in (1950, 1990, 2010):
                make_person(session, birth_on=date(year, 3, 3))
            session.commit()
            whole = service.run_rules(session, period="2026-02", months=2, chunk_families=1_000_000)
            session.commit()
            tiny = service.run_rules(session, period="2026-02", months=2, chunk_families=7)
            session.commit()
            periods = ["2026-02", "2026-03"]
            assert (tiny.families, tiny.decisions, tiny.eligible) == (
                whole.families,
                whole.decisions,
                whole.eligible,
            )
            assert whole.families > 7 * 8
            stored = _stored(session, whole.id, periods)
            assert len(stored) > 2 * whole.families
            assert any(row[0] < 0 for row in stored[:10])  # type: ignore[index]
            assert _stored(session, tiny.id, periods) == stored

    def test_a_failed_write_fails_the_run_and_stops_the_writer(
        self, session: Session, families: Families, monkeypatch: pytest.MonkeyPatch
    ):
        written: list[int] = []

        def failing(connection: object, table: pa.Table) -> int:
            if written:
                raise OSError("disk full")
            written.append(table.num_rows)
            return table.num_rows

        monkeypatch.setattr(repository, "write_outcomes", failing)
        with pytest.raises(OSError, match="disk full"):
            _run(session, period="2026-02", months=3, chunk_families=1)
        assert written == [1]
        assert not [t for t in threading.enumerate() if t.name.startswith("rules-write")]
