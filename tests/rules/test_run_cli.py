"""`socialcard rules run | explain | simulate` over the store, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from socialcard.cli.main import app
from socialcard.rules import service as rules_service
from socialcard.rules.cli import why_none
from socialcard.rules.models import RulesOutcome, RulesRun
from socialcard.rules.service import ConditionCounts
from socialcard.security.models import AuditEvent
from tests.rules.conftest import KZ
from tests.rules.service_data import Families, build_families

runner = CliRunner()


def _families(engine: Engine) -> Families:
    with Session(engine, expire_on_commit=False) as session:
        families = build_families(session)
        session.commit()
    return families


class TestWhyNone:
    @pytest.mark.parametrize(
        ("counts", "says"),
        [
            (ConditionCounts("p", 0, {}, 0), "no one of the program's kind in the registry"),
            (ConditionCounts("p", 10, {"a": 4, "b": 0}, 0), "no one met 'b' (0 of 10)"),
            (
                ConditionCounts("p", 10, {"a": 4, "b": 6}, 0),
                "no one met every condition at once; fewest met 'a': 4 of 10",
            ),
            (ConditionCounts("p", 10, {"a": 4}, 4), "4 met every condition but have no amount"),
        ],
    )
    def test_the_reason_names_the_condition_fewest_met(
        self, counts: ConditionCounts, says: str
    ) -> None:
        assert why_none(counts) == says


class TestRunCommand:
    def test_stores_a_run_and_prints_counts_and_cost_by_program(self, committed_engine: Engine):
        _families(committed_engine)
        result = runner.invoke(app, ["rules", "run", "--period", "2026-03", "--pack", str(KZ)])
        assert result.exit_code == 0, result.output
        assert "kz.large_family" in result.output
        assert "3 families" in result.output
        with Session(committed_engine) as session:
            run = session.scalars(select(RulesRun)).one()
            assert run.status == "succeeded"
            outcomes = session.scalar(select(func.count()).select_from(RulesOutcome))
            assert outcomes == 3
            nobody = {
                p.program_id
                for p in rules_service.get_run(session, run_id=run.id).by_program
                if p.eligible == 0
            }
        # Three families leave some programs with no one: each says why, beside its count.
        assert nobody
        for program_id in nobody:
            line = next(x for x in result.output.splitlines() if x.startswith(program_id + " "))
            assert "none eligible: " in line
            assert "met" in line or "no one of the program's kind" in line

    def test_twelve_months_in_one_run(self, committed_engine: Engine):
        _families(committed_engine)
        result = runner.invoke(app, ["rules", "run", "--period", "2026-01", "--months", "12"])
        assert result.exit_code == 0, result.output
        with Session(committed_engine) as session:
            outcomes = session.scalar(select(func.count()).select_from(RulesOutcome))
            assert outcomes == 36

    def test_bad_period_exits_2_naming_it(self, committed_engine: Engine):
        result = runner.invoke(app, ["rules", "run", "--period", "2026-14"])
        assert result.exit_code == 2
        assert "period" in result.output


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in its own process, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-c", "from socialcard.cli.main import app; app()", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


@pytest.mark.slow
class TestRepeatedRuns:
    def test_three_runs_in_a_row_on_a_store_left_with_a_big_wal(
        self, backend: str, tmp_path: Path
    ) -> None:
        # A process that exits leaves its write-ahead log behind; the next reader must rebuild
        # the WAL's index first, and the snapshot's parallel read-only connections used to fail
        # at once with "database is locked" while one of them did.
        if backend != "sqlite":
            pytest.skip("the write-ahead log is SQLite's")
        store = tmp_path / "store.db"
        env = {**os.environ, "SOCIALCARD_DATABASE_URL": f"sqlite:///{store}"}
        for args in (("db", "upgrade"), ("generate", "--families", "5000", "--seed", "3")):
            done = _cli(env, *args, *(("--no-progress",) if args[0] == "generate" else ()))
            assert done.returncode == 0, done.stderr[-3000:]
        wal = Path(f"{store}-wal")
        for attempt in range(3):
            done = _cli(env, "rules", "run", "--period", "2026-03", "--pack", str(KZ))
            assert done.returncode == 0, f"run {attempt + 1}: {done.stderr[-3000:]}"
            assert "families" in done.stdout, done.stdout
            # The condition that failed the next run: a large log left by this one.
            assert wal.stat().st_size > 1 << 20
        with Session(create_engine(f"sqlite:///{store}")) as session:
            runs = session.scalars(select(RulesRun.status)).all()
        assert runs == ["succeeded"] * 3


class TestExplainCommand:
    def test_explains_every_program_in_the_language_and_audits(self, committed_engine: Engine):
        families = _families(committed_engine)
        result = runner.invoke(
            app,
            [
                "rules",
                "explain",
                "--family",
                str(families.large.id),
                "--period",
                "2026-03",
                "--lang",
                "ru",
            ],
        )
        assert result.exit_code == 0, result.output
        assert "Многодетн" in result.output or "многодет" in result.output.lower()
        assert "выполнено" in result.output
        with Session(committed_engine) as session:
            audited = session.scalars(
                select(AuditEvent.subject_id).where(AuditEvent.action == "family.eligibility.read")
            ).all()
        assert sorted(audited) == sorted(families.large_members)

    def test_json_output(self, committed_engine: Engine):
        families = _families(committed_engine)
        result = runner.invoke(
            app,
            [
                "rules",
                "explain",
                "--family",
                str(families.retired.id),
                "--period",
                "2026-03",
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        body = json.loads(result.output)
        pension = next(d for d in body["decisions"] if d["program_id"] == "kz.base_pension")
        assert pension["eligible"] is True

    def test_unknown_family_exits_1(self, committed_engine: Engine):
        result = runner.invoke(
            app, ["rules", "explain", "--family", "4242424", "--period", "2026-03"]
        )
        assert result.exit_code == 1
        assert "4242424" in result.output


class TestSimulateOverTheRegistry:
    def test_reform_over_the_registry_by_default(self, committed_engine: Engine):
        _families(committed_engine)
        result = runner.invoke(
            app,
            [
                "rules",
                "simulate",
                str(KZ),
                "--period",
                "2026-03",
                "--set",
                "kz.large_family.coef.4=100",
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        body = json.loads(result.output)
        large = next(t for t in body["totals"] if t["program_id"] == "kz.large_family")
        assert large["baseline_count"] == 1
        assert large["reform_minor"] != large["baseline_minor"]

    def test_malformed_override_exits_2_naming_it(self, committed_engine: Engine):
        result = runner.invoke(
            app,
            ["rules", "simulate", str(KZ), "--period", "2026-03", "--set", "kz.asp.nope=1"],
        )
        assert result.exit_code == 2
        assert "kz.asp.nope" in result.output
