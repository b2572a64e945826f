"""`socialcard rules`: check, test and simulate through a small typer app."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from socialcard.rules import cli
from tests.rules.conftest import KZ, RU, MakePack, program


def app() -> typer.Typer:
    root = typer.Typer()
    cli.register(root)

    @root.callback()
    def main() -> None:
        """Test root."""

    return root


runner = CliRunner()


class TestRulesTest:
    def test_passes_on_the_kz_pack(self) -> None:
        result = runner.invoke(app(), ["rules", "test", str(KZ)])
        assert result.exit_code == 0, result.output
        assert "PASS kz.large_family :: four children in 2026" in result.output
        assert result.output.strip().endswith("0 failed")

    def test_fails_with_a_line_per_case(self, make_pack: MakePack) -> None:
        tests = (
            "[{name: wrong amount, period: 2025-01, members: [{age: 40}], eligible: true,"
            " amount: 1}]"
        )
        path = make_pack(p=program(tests=tests))
        result = runner.invoke(app(), ["rules", "test", str(path), "--explain", "en"])
        assert result.exit_code == 1
        assert (
            "FAIL t.p :: wrong amount (2025-01) — amount 3,932 ₸, expected 0.01 ₸" in result.output
        )

    def test_broken_pack_exits_2_with_one_line_per_problem(self, make_pack: MakePack) -> None:
        path = make_pack(
            p=program(
                amount="nope + 1",
                conditions="x: {when: 'DROP TABLE t', explain: {kk: a, ru: a, en: a}}",
            )
        )
        result = runner.invoke(app(), ["rules", "test", str(path)])
        assert result.exit_code == 2
        assert "p.yaml:" in result.output
        assert "[t.p]" in result.output
        assert "2 problem(s)" in result.output

    def test_extra_case_files_and_program_filter(self) -> None:
        cases = KZ.parent.parent / "tests" / "rules" / "cases" / "kz_households.yaml"
        result = runner.invoke(
            app(), ["rules", "test", str(KZ), "--cases", str(cases), "--program", "kz.survivor"]
        )
        assert result.exit_code == 0, result.output
        assert "widow with three children" in result.output
        assert "kz.asp" not in result.output


class TestOtherCommands:
    def test_check(self) -> None:
        result = runner.invoke(app(), ["rules", "check", str(RU)])
        assert result.exit_code == 0
        assert result.output.startswith("OK ru_orenburg: 5 program(s)")

    def test_simulate_synthetic(self) -> None:
        result = runner.invoke(
            app(),
            [
                "rules",
                "simulate",
                str(KZ),
                "--period",
                "2026-03",
                "--synthetic",
                "300",
                "--set",
                "kz.asp.poverty_line_share=0.9",
                "--sample",
                "1",
            ],
        )
        assert result.exit_code == 0, result.output
        assert result.output.startswith("kz.asp: ")

    def test_simulate_bad_override(self) -> None:
        result = runner.invoke(
            app(),
            [
                "rules",
                "simulate",
                str(KZ),
                "--period",
                "2026-03",
                "--synthetic",
                "10",
                "--set",
                "kz.asp.nothing=1",
            ],
        )
        assert result.exit_code == 2
        assert "unknown parameter" in result.output
