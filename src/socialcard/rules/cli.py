"""Rules commands: check a pack, run its rule tests, simulate a reform (`socialcard rules`)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer

from socialcard.rules.engine.cases import pack_cases, run_cases
from socialcard.rules.engine.compiler import CompiledPack, load_pack
from socialcard.rules.engine.explain import format_value
from socialcard.rules.engine.loader import load_cases
from socialcard.rules.engine.model import Case, Scalar
from socialcard.rules.engine.periods import Period
from socialcard.rules.engine.problems import EvaluationError, PackError

PackArg = Annotated[Path, typer.Argument(help="The rule pack directory, e.g. packs/kz.")]


def _load(pack: Path) -> CompiledPack:
    """Load a pack or print one line per problem and exit 2."""
    try:
        return load_pack(pack)
    except PackError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        typer.echo(f"{len(exc.problems)} problem(s) in {pack}", err=True)
        raise typer.Exit(2) from exc


def parse_value(text: str) -> Scalar:
    """A --set value: integer (underscores allowed), decimal, true/false, date or text.

    >>> parse_value("3932_00"), parse_value("0.8"), parse_value("true")
    (393200, Decimal('0.8'), True)
    """
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    cleaned = text.strip().replace("_", "")
    if cleaned.lstrip("-").isdigit():
        return int(cleaned)
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        pass
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        return text


def _overrides(values: list[str]) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            typer.echo(
                f"--set {item!r}: write NAME=VALUE, e.g. kz.asp.poverty_line_share=0.8", err=True
            )
            raise typer.Exit(2)
        out[name.strip()] = parse_value(value)
    return out


def register(app: typer.Typer) -> None:
    """Add the `rules` command group to the root app."""
    rules = typer.Typer(
        help="Benefit rules: check packs, run their tests, simulate reforms.",
        no_args_is_help=True,
    )
    app.add_typer(rules, name="rules")

    @rules.command("check")
    def check(pack: PackArg) -> None:
        """Load a pack and report every problem (exit 2) or a one-line summary."""
        compiled = _load(pack)
        programs = len(compiled.programs)
        cases = len(pack_cases(compiled))
        typer.echo(f"OK {compiled.pack.id}: {programs} program(s), {cases} test case(s)")

    @rules.command("test")
    def test(
        pack: PackArg,
        cases: Annotated[
            list[Path] | None,
            typer.Option("--cases", help="Extra YAML files of golden cases (lists of cases)."),
        ] = None,
        program: Annotated[
            str | None, typer.Option("--program", help="Only this program's cases.")
        ] = None,
        explain: Annotated[
            str | None, typer.Option("--explain", help="Print failing decisions in kk/ru/en.")
        ] = None,
    ) -> None:
        """Run the pack's rule tests: one PASS/FAIL line per case; exit 1 on any failure."""
        compiled = _load(pack)
        selected: list[Case] = pack_cases(compiled)
        for path in cases or []:
            extra, problems = load_cases(path)
            if problems:
                for problem in problems:
                    typer.echo(str(problem), err=True)
                raise typer.Exit(2)
            selected += extra
        if program:
            selected = [c for c in selected if c.program == program]
        results = run_cases(compiled, selected)
        failed = 0
        for result in results:
            typer.echo(result.line())
            if not result.passed:
                failed += 1
                if explain and result.decision is not None:
                    typer.echo(result.decision.explain(explain, compiled.pack).text())
        typer.echo(f"{len(results) - failed} passed, {failed} failed")
        if failed or not results:
            raise typer.Exit(1)

    @rules.command("simulate")
    def simulate_command(
        pack: PackArg,
        period: Annotated[str, typer.Option(help="YYYY-MM or YYYY.")],
        set_: Annotated[
            list[str] | None,
            typer.Option("--set", help="A parameter override, e.g. kz.asp.poverty_line_share=0.8"),
        ] = None,
        person: Annotated[
            Path | None, typer.Option(help="Parquet file of the person table.")
        ] = None,
        fact: Annotated[Path | None, typer.Option(help="Parquet file of the fact table.")] = None,
        synthetic: Annotated[
            int, typer.Option(help="Without files: this many synthetic families.")
        ] = 0,
        sample: Annotated[int, typer.Option(help="Gainers and losers to show.")] = 5,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """What-if: baseline against reform, by program and region, with gainers and losers."""
        import pyarrow.parquet as pq

        from socialcard.rules.engine.simulate import simulate
        from socialcard.rules.engine.synthetic import generate

        compiled = _load(pack)
        try:
            when = Period.parse(period)
        except ValueError as exc:
            typer.echo(f"--period: {exc}", err=True)
            raise typer.Exit(2) from exc
        if person is not None and fact is not None:
            person_table, fact_table = pq.read_table(person), pq.read_table(fact)
        elif synthetic > 0:
            population = generate(synthetic, seed=1, as_of=when.end)
            person_table, fact_table = population.person, population.fact
        else:
            typer.echo("give --person and --fact parquet files, or --synthetic N", err=True)
            raise typer.Exit(2)
        try:
            result = simulate(
                compiled, person_table, fact_table, when, _overrides(set_ or []), sample=sample
            )
        except EvaluationError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        money = compiled.pack
        if as_json:
            payload = {
                "period": str(result.period),
                "overrides": {k: str(v) for k, v in result.overrides.items()},
                "totals": [d.__dict__ for d in result.totals],
                "by_region": [d.__dict__ for d in result.by_region],
                "gainers": [c.__dict__ for c in result.gainers],
                "losers": [c.__dict__ for c in result.losers],
            }
            typer.echo(json.dumps(payload, default=str, ensure_ascii=False, indent=2))
            return
        for d in result.totals:
            typer.echo(
                f"{d.program_id}: {d.baseline_count} -> {d.reform_count}"
                f" ({d.count_change:+d}); cost"
                f" {format_value(d.baseline_minor, 'money', 'en', money)} ->"
                f" {format_value(d.reform_minor, 'money', 'en', money)}"
            )
        for title, changes in (("gainers", result.gainers), ("losers", result.losers)):
            for c in changes:
                why = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in c.flipped.items())
                typer.echo(
                    f"{title[:-1]} {c.program_id} {c.entity_id} ({c.region}):"
                    f" {format_value(c.baseline_minor, 'money', 'en', money)} ->"
                    f" {format_value(c.reform_minor, 'money', 'en', money)}"
                    + (f"; {why}" if why else "")
                )
