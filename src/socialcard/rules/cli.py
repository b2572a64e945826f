"""Rules commands (`socialcard rules`): check a pack, run its tests, store a whole-registry
run, explain one family, simulate a reform."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from socialcard.core.errors import AppError
from socialcard.rules.engine.cases import pack_cases, run_cases
from socialcard.rules.engine.compiler import CompiledPack, load_pack
from socialcard.rules.engine.explain import format_value
from socialcard.rules.engine.loader import load_cases
from socialcard.rules.engine.model import Case, Scalar
from socialcard.rules.engine.periods import Period
from socialcard.rules.engine.problems import PackError

if TYPE_CHECKING:
    from socialcard.rules.service import ConditionCounts

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


def _overrides(values: list[str]) -> dict[str, Scalar]:
    from socialcard.rules import service

    out: dict[str, Scalar] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            typer.echo(
                f"--set {item!r}: write NAME=VALUE, e.g. kz.asp.poverty_line_share=0.8", err=True
            )
            raise typer.Exit(2)
        out[name.strip()] = service.parse_value(value)
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
            int, typer.Option(help="Instead of the registry: this many synthetic families.")
        ] = 0,
        sample: Annotated[int, typer.Option(help="Gainers and losers to show.")] = 5,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """What-if over the registry (or parquet files, or a synthetic population): baseline
        against reform, by program and region, with gainers and losers."""
        import pyarrow.parquet as pq

        from socialcard.core.db import session_scope
        from socialcard.rules import service
        from socialcard.rules.engine.synthetic import generate
        from socialcard.security import service as security_service
        from socialcard.security.enums import Purpose

        compiled = _load(pack)
        try:
            when = Period.parse(period)
        except ValueError as exc:
            typer.echo(f"--period: {exc}", err=True)
            raise typer.Exit(2) from exc
        snapshot = None
        link = None
        if person is not None and fact is not None:
            snapshot = (pq.read_table(person), pq.read_table(fact))
        elif synthetic > 0:
            population = generate(synthetic, seed=1, as_of=when.end)
            snapshot = (population.person, population.fact)
            link = population.link
        elif person is not None or fact is not None:
            typer.echo("give both --person and --fact parquet files", err=True)
            raise typer.Exit(2)
        overrides = _overrides(set_ or [])
        try:
            with session_scope() as session:
                result = service.simulate_registry(
                    session,
                    period=period,
                    overrides=overrides,
                    actor=security_service.system_actor(),
                    purpose=Purpose.POLICY_ANALYSIS,
                    sample=sample,
                    pack_path=pack,
                    snapshot=snapshot,
                    link=link,
                )
        except AppError as exc:
            typer.echo(exc.message, err=True)
            raise typer.Exit(2) from exc
        money = compiled.pack
        if as_json:
            typer.echo(result.model_dump_json(indent=2))
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
                    f"{title[:-1]} {c.program_id} {c.entity_id} ({c.region_kato}):"
                    f" {format_value(c.baseline_minor, 'money', 'en', money)} ->"
                    f" {format_value(c.reform_minor, 'money', 'en', money)}"
                    + (f"; {why}" if why else "")
                )

    @rules.command("run")
    def run_command(
        period: Annotated[str, typer.Option(help="The first month, YYYY-MM (or YYYY).")],
        months: Annotated[int, typer.Option(min=1, max=24, help="Consecutive months.")] = 1,
        pack: Annotated[
            Path | None, typer.Option(help="The rule pack (default: settings rules.pack_path).")
        ] = None,
        program: Annotated[
            list[str] | None, typer.Option("--program", help="Only these programs.")
        ] = None,
    ) -> None:
        """Evaluate the pack over the whole registry and store every decision."""
        from socialcard.core.db import session_scope

        try:
            with session_scope() as session:
                run = _run_with_progress(
                    session, period=period, months=months, pack=pack, programs=program
                )
        except AppError as exc:
            typer.echo(exc.message, err=True)
            raise typer.Exit(2) from exc
        print_run(run.id)

    @rules.command("explain")
    def explain_command(
        family: Annotated[int, typer.Option(help="The family id.")],
        period: Annotated[str, typer.Option(help="YYYY-MM (or YYYY).")],
        lang: Annotated[
            str | None, typer.Option(help="kk, ru or en (default: the head's).")
        ] = None,
        purpose: Annotated[
            str, typer.Option(help="Why the data is read; kept in the audit log.")
        ] = "case_review",
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Evaluate one family now and explain every program's decision (audited read)."""
        from socialcard.core.db import session_scope
        from socialcard.rules import service
        from socialcard.security import service as security_service
        from socialcard.security.enums import Purpose

        try:
            reason = Purpose(purpose)
        except ValueError as exc:
            typer.echo(f"--purpose: one of {', '.join(p.value for p in Purpose)}", err=True)
            raise typer.Exit(2) from exc
        actor = security_service.system_actor()
        try:
            with session_scope() as session:
                result = service.family_eligibility(
                    session,
                    family_id=family,
                    period=period,
                    actor=actor,
                    purpose=reason,
                    lang=lang,
                )
        except AppError as exc:
            typer.echo(exc.message, err=True)
            raise typer.Exit(2 if exc.status_code != 404 else 1) from exc
        if as_json:
            typer.echo(result.model_dump_json(indent=2))
            return
        for decision in result.decisions:
            typer.echo(decision.explanation.text)


def _run_with_progress(
    session: Any,
    *,
    period: str,
    months: int,
    pack: Path | None,
    programs: list[str] | None,
) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from socialcard.rules import service

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console(),
    ) as bar:
        tasks: dict[str, Any] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = {"read": "read registry", "write": "store a month's families"}.get(
                    stage, "evaluate and store months"
                )
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return service.run_rules(
            session,
            period=period,
            months=months,
            programs=programs,
            pack_path=pack,
            progress=tick,
        )


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def why_none(counts: ConditionCounts) -> str:
    """Why a program has no eligible entity in a stored run, from its conditions' counts."""
    if counts.evaluated == 0:
        return "no one of the program's kind in the registry"
    if not counts.met:
        return f"none of {counts.evaluated:,} evaluated has an amount"
    fewest = min(counts.met, key=lambda name: counts.met[name])
    if counts.met[fewest] == 0:
        return f"no one met '{fewest}' (0 of {counts.evaluated:,})"
    if counts.all_met:
        return f"{counts.all_met:,} met every condition but have no amount"
    return (
        f"no one met every condition at once; fewest met '{fewest}':"
        f" {counts.met[fewest]:,} of {counts.evaluated:,}"
    )


def print_run(run_id: int) -> None:
    """Print a stored run: eligible counts and monthly cost by program, and the time split."""
    from rich.console import Console
    from rich.table import Table

    from socialcard.core.db import session_scope
    from socialcard.rules import service

    with session_scope() as session:
        run = service.get_run(session, run_id=run_id)
        pack = service.run_pack(session, run_id=run_id).compiled.pack
    table = Table(
        title=f"Rules run {run.id}: pack {run.pack_id}, {run.period}"
        + (f" (+{run.months - 1} months)" if run.months > 1 else "")
    )
    for column in ("period", "program", "version", "eligible", "of", "monthly cost"):
        table.add_column(column, justify="right" if column in ("eligible", "of") else "left")
    for p in run.by_program:
        table.add_row(
            p.period,
            p.program_id,
            p.version or "-",
            f"{p.eligible:,}",
            f"{p.evaluated:,}",
            format_value(p.amount_minor, "money", "en", pack),
        )
    nobody: dict[str, list[str]] = {}
    for p in run.by_program:
        if p.eligible == 0:
            nobody.setdefault(p.period, []).append(p.program_id)
    reasons: list[tuple[str, str, str]] = []
    with session_scope() as session:
        for period, program_ids in nobody.items():
            counts = service.condition_counts(
                session, run_id=run_id, program_ids=program_ids, period=period
            )
            reasons += [(period, p, why_none(counts[p])) for p in program_ids]
    console = Console()
    console.print(table)
    for period, program_id, reason in reasons:
        console.print(f"{program_id} {period}: none eligible: {reason}", highlight=False)
    s = run.seconds
    console.print(
        f"{run.families:,} families, {run.persons:,} persons, {run.decisions:,} decisions"
        f" ({run.eligible:,} eligible); seconds: read {s.read:.1f}, compile {s.compile:.2f},"
        f" evaluate {s.evaluate:.1f}, write {s.write:.1f}"
    )


def demo_step(period: str | None = None) -> None:
    """The demo's rules step: a stored run over the generated region, printed."""
    from socialcard.core.clock import today
    from socialcard.core.db import session_scope

    when = period or f"{today():%Y-%m}"
    with session_scope() as session:
        run = _run_with_progress(session, period=when, months=1, pack=None, programs=None)
    print_run(run.id)
