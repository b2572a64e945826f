"""`socialcard wellbeing` end to end on the store: score the registry, read levels, lists, cards."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from socialcard.cli.main import app
from tests.factories import make_fact, make_family, make_person
from tests.wellbeing.helpers import METHODOLOGY, make_pack

runner = CliRunner()


@pytest.fixture
def methodology_file(tmp_path: Path) -> Path:
    return make_pack(tmp_path / "pack")


def _registry(engine: Engine) -> dict[str, int]:
    """Three families in the store: well-off (A), single earner (C), no income (E)."""
    with Session(engine) as session:
        a1 = make_person(session, birth_on=date(1980, 1, 1))
        a2 = make_person(session, birth_on=date(1982, 1, 1), sex="M")
        well_off = make_family(session, [(a1, "head"), (a2, "spouse")])
        for person in (a1, a2):
            make_fact(session, person, amount_minor=300_000_00)
        make_fact(session, a1, kind="property", detail="real_estate", amount_minor=None, quantity=1)
        single = make_person(session, birth_on=date(1990, 5, 5), region_kato="631010000")
        alone = make_family(session, [(single, "head")], region_kato="631010000")
        make_fact(session, single, amount_minor=200_000_00)
        poor = make_person(session, birth_on=date(1975, 1, 1))
        no_income = make_family(session, [(poor, "head")])
        session.commit()
        return {"A": well_off.id, "C": alone.id, "E": no_income.id}


def _score(methodology_file: Path) -> str:
    result = runner.invoke(
        app, ["wellbeing", "score", "--period", "2026-03", "-m", str(methodology_file), "--json"]
    )
    assert result.exit_code == 0, result.output
    return result.stdout


class TestScoreCommand:
    def test_scores_the_registry_and_prints_the_level_counts(
        self, committed_engine: Engine, methodology_file: Path
    ) -> None:
        families = _registry(committed_engine)
        result = runner.invoke(
            app, ["wellbeing", "score", "--period", "2026-03", "-m", str(methodology_file)]
        )
        assert result.exit_code == 0, result.output
        assert "kz.wellbeing.test" in result.stdout
        runs = runner.invoke(app, ["wellbeing", "runs"])
        assert "A=1 B=0 C=1 E=1" in runs.stdout
        card = runner.invoke(
            app, ["wellbeing", "card", str(families["A"]), "--purpose", "case_review"]
        )
        assert card.exit_code == 0, card.output
        assert "level A" in card.stdout
        assert "[yes] owns a home: +10" in card.stdout

    def test_lists_a_level_and_exports_csv(
        self, committed_engine: Engine, methodology_file: Path, tmp_path: Path
    ) -> None:
        families = _registry(committed_engine)
        run_id = _score(methodology_file).split('"id": ')[1].split(",")[0]
        listed = runner.invoke(
            app, ["wellbeing", "families", run_id, "--level", "E", "--purpose", "case_review"]
        )
        assert listed.exit_code == 0, listed.output
        assert listed.stdout.splitlines()[1].split("\t")[0] == str(families["E"])
        out = tmp_path / "e.csv"
        exported = runner.invoke(
            app, ["wellbeing", "families", run_id, "--purpose", "audit", "--csv", str(out)]
        )
        assert exported.exit_code == 0, exported.output
        rows = list(csv.DictReader(out.open(encoding="utf-8")))
        assert {int(r["family_id"]): r["level"] for r in rows} == {
            v: k for k, v in families.items()
        }
        regions = runner.invoke(app, ["wellbeing", "levels", run_id, "--regions"])
        assert "631010000" in regions.stdout

    def test_changes_after_a_second_run(
        self, committed_engine: Engine, methodology_file: Path
    ) -> None:
        families = _registry(committed_engine)
        _score(methodology_file)
        with Session(committed_engine) as session:
            from socialcard.registry.models import Person

            person = session.query(Person).order_by(Person.id.desc()).first()
            assert person is not None
            make_fact(session, person, amount_minor=500_000_00)
            session.commit()
        second = _score(methodology_file).split('"id": ')[1].split(",")[0]
        changes = runner.invoke(app, ["wellbeing", "changes", second, "--purpose", "case_review"])
        assert changes.exit_code == 0, changes.output
        assert "1 families changed level" in changes.stdout
        assert f"{families['E']}\tE -> C" in changes.stdout

    def test_a_bad_period_exits_2_naming_the_field(
        self, committed_engine: Engine, methodology_file: Path
    ) -> None:
        result = runner.invoke(
            app, ["wellbeing", "score", "--period", "March", "-m", str(methodology_file)]
        )
        assert result.exit_code == 2
        assert "period" in result.output


class TestCheckCommand:
    def test_shipped_methodologies_are_ok(self) -> None:
        result = runner.invoke(app, ["wellbeing", "check"])
        assert result.exit_code == 0, result.output
        assert "OK kz.wellbeing.cks_2023" in result.stdout
        assert "OK kz.wellbeing.scoring_2025" in result.stdout

    def test_a_broken_methodology_prints_file_line_and_reason(self, tmp_path: Path) -> None:
        path = make_pack(tmp_path / "p", METHODOLOGY.replace("disabled_members", "disabld"))
        result = runner.invoke(app, ["wellbeing", "check", str(path)])
        assert result.exit_code == 2
        assert f"{path}:" in result.output
        assert "disabld" in result.output


class TestDemoStep:
    def test_prints_the_level_counts_of_the_region(self, committed_engine: Engine) -> None:
        from io import StringIO

        from rich.console import Console

        from socialcard.wellbeing.cli import demo_step

        _registry(committed_engine)
        out = StringIO()
        demo_step(Console(file=out, width=120))
        text = out.getvalue()
        assert "kz.wellbeing.cks_2023" in text
        assert "благополучный" not in text  # printed in English
        assert "well-off" in text
        assert "3 families" in text
