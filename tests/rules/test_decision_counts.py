"""A run's decisions list counts its pages from the counts stored with the run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from socialcard.core.migrate import upgrade
from socialcard.registry.population.loader import generate_population
from socialcard.rules import repository, service
from socialcard.rules.models import RulesOutcome, RulesRunCount, RulesRunProgram
from socialcard.rules.schemas import RunRead
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor
from tests.factories import make_person
from tests.fixtures.db import store_at_revision
from tests.rules.service_data import Families, build_families

AUDIT = {"actor": Actor(key_id=None, name="test", role="operator"), "purpose": Purpose.AUDIT}


def _run(session: Session, period: str, months: int = 1) -> RunRead:
    return service.run_rules(
        session,
        period=period,
        months=months,
        snapshot=service.session_snapshot(session, period=period, months=months),
    )


def _scanned(
    session: Session, run_id: int, period: str, bit: int | None, region: str | None
) -> int:
    """The count the list made before: every outcome row of the run's period, filtered."""
    query = select(func.count()).where(RulesOutcome.run_id == run_id, RulesOutcome.period == period)
    if bit is not None:
        query = query.where(RulesOutcome.eligible_mask.op("&")(1 << bit) != 0)
    if region:
        query = query.where(RulesOutcome.region_kato.startswith(region))
    return int(session.scalar(query) or 0)


def _positions(session: Session, run_id: int, period: str) -> dict[str, int]:
    rows = session.scalars(
        select(RulesRunProgram).where(
            RulesRunProgram.run_id == run_id, RulesRunProgram.period == period
        )
    )
    return {r.program_id: r.position for r in rows}


@pytest.fixture
def families(session: Session) -> Families:
    built = build_families(session)
    make_person(session, region_kato="711110000")  # a person of no family: a key of their own
    return built


class TestStoredCounts:
    def test_every_filter_counts_what_a_scan_counts(self, session: Session, families: Families):
        run = _run(session, "2026-02", months=2)
        for period in ("2026-02", "2026-03"):
            positions = _positions(session, run.id, period)
            assert positions
            for region in (None, "75", "71", "7511", "19"):
                assert repository.outcome_count(
                    session, run_id=run.id, period=period, bit=None, region_prefix=region
                ) == _scanned(session, run.id, period, None, region)
                for bit in positions.values():
                    assert repository.outcome_count(
                        session, run_id=run.id, period=period, bit=bit, region_prefix=region
                    ) == _scanned(session, run.id, period, bit, region)
        assert _scanned(session, run.id, "2026-02", None, None) == 4  # three families, one alone

    def test_the_list_pages_carry_the_stored_total(self, session: Session, families: Families):
        run = _run(session, "2026-03")
        large = _positions(session, run.id, "2026-03")["kz.large_family"]
        page = service.list_decisions(
            session, run_id=run.id, program_id="kz.large_family", eligible=True, **AUDIT
        )
        assert page.total == _scanned(session, run.id, "2026-03", large, None) == 1
        assert [d.program_id for d in page.items] == ["kz.large_family"]
        every = service.list_decisions(session, run_id=run.id, size=1, **AUDIT)
        assert every.total == 4

    def test_a_failed_run_keeps_no_counts(self, session: Session, families: Families):
        run = _run(session, "2026-03")
        service.mark_failed(session, run_id=run.id, error="test")
        stored = select(func.count()).where(RulesRunCount.run_id == run.id)
        assert session.scalar(stored) == 0

    def test_a_generated_region_counts_alike(self, committed_engine: Engine):
        generate_population(committed_engine, families=80, seed=5, as_of=date(2026, 3, 1))
        with Session(committed_engine) as session:
            run = service.run_rules(session, period="2026-03")
            for bit in [None, *_positions(session, run.id, "2026-03").values()]:
                for region in (None, "75", "19", "711"):
                    assert repository.outcome_count(
                        session, run_id=run.id, period="2026-03", bit=bit, region_prefix=region
                    ) == _scanned(session, run.id, "2026-03", bit, region), (bit, region)
            session.rollback()


@pytest.fixture
def store_before_counts(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """A store of its own at the revision before the stored counts."""
    with store_at_revision(backend, tmp_path, "counts_migration", "0710") as engine:
        yield engine


def test_the_migration_counts_the_runs_already_stored(store_before_counts: Engine) -> None:
    outcomes = [  # (family_key, region, mask)
        (1, "751110000", 0b101),
        (2, "751110000", 0b001),
        (3, "711110000", 0b100),
        (-4, None, 0b000),
    ]
    with store_before_counts.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO rules_run (id, pack_id, pack_path, pack_hash, period, months,"
                " status, families, persons, decisions, eligible, read_seconds,"
                " compile_seconds, evaluate_seconds, write_seconds, created_at) VALUES"
                " (1, 'kz', 'packs/kz', 'h', '2026-03', 1, 'succeeded', 3, 4, 0, 0, 0, 0, 0, 0,"
                " '2026-03-10 04:00:00')"
            )
        )
        for key, region, mask in outcomes:
            conn.execute(
                text(
                    "INSERT INTO rules_outcome (run_id, period, family_key, region_kato,"
                    " eligible_mask, payload) VALUES (1, '2026-03', :k, :r, :m, '')"
                ),
                {"k": key, "r": region, "m": mask},
            )
    upgrade(store_before_counts)
    with Session(store_before_counts) as session:

        def count(bit: int | None, region: str | None = None) -> int:
            return repository.outcome_count(
                session, run_id=1, period="2026-03", bit=bit, region_prefix=region
            )

        assert (count(None), count(0), count(1), count(2)) == (4, 2, 0, 2)
        assert (count(None, "75"), count(2, "71"), count(0, "71")) == (2, 1, 0)
