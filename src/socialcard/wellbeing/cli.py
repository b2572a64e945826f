"""Well-being commands: check methodologies, score the registry, read levels, lists and cards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.db import new_session, session_scope
from socialcard.core.errors import AppError
from socialcard.security import service as security_service
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor
from socialcard.wellbeing import service
from socialcard.wellbeing.schemas import ComparisonRead, RunRead

console = Console()
err_console = Console(stderr=True)
MethodologyOpt = Annotated[
    str | None,
    typer.Option(
        "--methodology", "-m", help="Methodology id or file (default: the pack's default)."
    ),
]
PurposeOpt = Annotated[
    Purpose, typer.Option("--purpose", help="Why the data is read; kept in the audit log.")
]
Lang = Annotated[str, typer.Option("--lang", help="kk, ru or en.")]


def _actor() -> Actor:
    """The user at the terminal, as recorded in the audit log."""
    return security_service.system_actor()


@contextmanager
def _errors() -> Iterator[None]:
    """Print an expected error (and each problem it lists) on stderr and exit 2."""
    try:
        yield
    except AppError as exc:
        err_console.print(f"[red]{exc.message}[/red]", highlight=False)
        for detail in exc.details:
            typer.echo(f"  {detail.get('field')}: {detail.get('reason')}", err=True)
        raise typer.Exit(2) from exc


def _print_run(out: Console, run: RunRead, lang: str) -> None:
    out.print(
        f"Well-being run {run.id}: {run.methodology_id}, {run.period}, {run.families:,} families",
        soft_wrap=True,
        highlight=False,
    )
    out.print(_run_table(run, lang))


def _run_table(run: RunRead, lang: str) -> Table:
    table = Table()
    table.add_column("level")
    table.add_column("name")
    table.add_column("families", justify="right")
    table.add_column("share", justify="right")
    for lv in run.levels:
        share = f"{100 * lv.families / run.families:.1f} %" if run.families else "-"
        table.add_row(lv.level, getattr(lv.name, lang), f"{lv.families:,}", share)
    return table


def _print_comparison(out: Console, result: ComparisonRead, lang: str) -> None:
    a, b = result.baseline, result.reform
    out.print(
        f"{result.families:,} families, {result.period}: {a.id} ({a.effective_from}) against"
        f" {b.id} ({b.effective_from})",
        soft_wrap=True,
        highlight=False,
    )
    for side in (a, b):
        table = Table(title=getattr(side.title, lang))
        table.add_column("level")
        table.add_column("name")
        table.add_column("families", justify="right")
        for lv in side.levels:
            table.add_row(lv.level, getattr(lv.name, lang), f"{lv.families:,}")
        out.print(table)
    moves = Table(title="families by level: baseline (rows) → reform (columns)")
    to_levels = [lv.level for lv in b.levels]
    counts = {(m.from_level, m.to_level): m.families for m in result.moves}
    moves.add_column("")
    for code in to_levels:
        moves.add_column(code, justify="right")
    for lv in a.levels:
        moves.add_row(lv.level, *(f"{counts.get((lv.level, c), 0):,}" for c in to_levels))
    out.print(moves)
    if result.moved is not None:
        out.print(
            f"moved {result.moved:,}: better {result.better:,}, worse {result.worse:,}",
            highlight=False,
        )


def score_registry_with_progress(methodology: str | None, period: str) -> RunRead:
    """Score the configured store's registry for a period, showing a progress bar."""
    loaded = service.load(methodology, period=period)
    labels = {"snapshot": "read registry", "evaluate": "score families", "write": "store results"}
    with (
        Progress(
            TextColumn("[bold]{task.description:<15}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        ) as bar,
        session_scope() as session,
    ):
        tasks: dict[str, TaskID] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(labels.get(step, step), total=max(total, 1))
            bar.update(tasks[step], completed=done, total=max(total, 1))

        return service.score_registry(
            session,
            database_url=get_settings().database_url,
            methodology=loaded,
            period=period,
            progress=progress,
        )


def demo_step(console: Console) -> None:
    """The demo's well-being step: score the region for this month and print the level counts."""
    period = utcnow().strftime("%Y-%m")
    try:
        run = score_registry_with_progress(None, period)
    except AppError as exc:  # the demo goes on without the well-being step
        console.print(f"[yellow]Well-being not scored: {exc.message}[/yellow]")
        return
    _print_run(console, run, "en")


def register(app: typer.Typer) -> None:
    """Add the `wellbeing` command group to the root app."""
    group = typer.Typer(
        help="The digital family card: well-being levels of every family.", no_args_is_help=True
    )
    app.add_typer(group, name="wellbeing")

    @group.command("check")
    def check(
        path: Annotated[Path | None, typer.Argument(help="A methodology file.")] = None,
    ) -> None:
        """Load and check methodologies: one line per problem (exit 2) or a summary per file."""
        with _errors():
            if path is not None:
                loaded = [service.load(str(path))]
            else:
                loaded = [service.load(str(p)) for p in service.methodology_paths()]
        for m in loaded:
            typer.echo(
                f"OK {m.id}: {len(m.indicators)} indicator(s), {len(m.levels)} levels"
                f" ({', '.join(lv.code for lv in m.levels)})"
            )

    @group.command("score")
    def score(
        period: Annotated[str, typer.Option("--period", help="YYYY-MM")],
        methodology: MethodologyOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
    ) -> None:
        """Score every family of the registry for a period and store the run."""
        with _errors():
            run = score_registry_with_progress(methodology, period)
        if as_json:
            typer.echo(run.model_dump_json(indent=2))
            return
        _print_run(console, run, "en")
        timings = ", ".join(f"{k} {v:.2f} s" for k, v in run.timings.items())
        console.print(f"run id {run.id}; {timings}")

    @group.command("compare")
    def compare(
        reform: Annotated[str, typer.Argument(help="The methodology to compare (id or file).")],
        period: Annotated[str, typer.Option("--period", help="YYYY-MM")],
        baseline: Annotated[
            str | None, typer.Option("--baseline", help="Id or file (default: the default).")
        ] = None,
        lang: Annotated[str, typer.Option(help="kk, ru or en")] = "en",
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the comparison as JSON.")
        ] = False,
    ) -> None:
        """Score the registry under two methodologies (nothing stored): counts per level and
        families moving between levels."""
        with _errors():
            result = service.compare_registry(
                database_url=get_settings().database_url,
                baseline=baseline,
                reform=reform,
                period=period,
            )
        if as_json:
            typer.echo(result.model_dump_json(indent=2))
            return
        _print_comparison(console, result, lang)

    @group.command("runs")
    def runs(
        methodology: MethodologyOpt = None,
        size: Annotated[int, typer.Option(min=1, max=200)] = 20,
    ) -> None:
        """The latest runs."""
        with _errors(), session_scope() as session:
            page = service.list_runs(session, methodology_id=methodology, size=size)
        for run in page.items:
            counts = " ".join(f"{lv.level}={lv.families}" for lv in run.levels)
            typer.echo(f"{run.id}\t{run.methodology_id}\t{run.period}\t{run.families}\t{counts}")

    @group.command("levels")
    def levels(
        run_id: Annotated[int, typer.Argument(min=1)],
        regions: Annotated[bool, typer.Option("--regions", help="Counts per region.")] = False,
        lang: Lang = "en",
    ) -> None:
        """Counts per level of a run (and per region)."""
        with _errors(), session_scope() as session:
            run = service.get_run(session, run_id=run_id)
            by_region = service.region_counts(session, run_id=run_id) if regions else []
        _print_run(console, run, lang)
        if regions:
            table = Table(title="per region")
            table.add_column("region")
            for lv in run.levels:
                table.add_column(lv.level, justify="right")
            for r in by_region:
                name = getattr(r.region_name, lang) if r.region_name else ""
                table.add_row(
                    f"{r.region_kato} {name}", *(f"{r.levels[lv.level]:,}" for lv in run.levels)
                )
            console.print(table)

    @group.command("families")
    def families(
        run_id: Annotated[int, typer.Argument(min=1)],
        purpose: PurposeOpt,
        level: Annotated[str | None, typer.Option("--level")] = None,
        region: Annotated[str | None, typer.Option("--region", help="KATO code or prefix")] = None,
        csv_path: Annotated[Path | None, typer.Option("--csv", help="Write all as CSV.")] = None,
        page: Annotated[int, typer.Option(min=1)] = 1,
        size: Annotated[int, typer.Option(min=1, max=200)] = 50,
    ) -> None:
        """Families of a run in a level: a page, or every one as CSV (audited)."""
        if csv_path is not None:
            with _errors(), new_session() as reader:
                # The audit commits (first session) before any row is written (second).
                with session_scope() as session:
                    lines = service.export_families_csv(
                        session,
                        run_id=run_id,
                        actor=_actor(),
                        purpose=purpose,
                        reader=reader,
                        level=level,
                        region=region,
                    )
                with csv_path.open("w", encoding="utf-8", newline="") as out:
                    out.writelines(lines)
            typer.echo(f"wrote {csv_path}")
            return
        with _errors(), session_scope() as session:
            result = service.list_families(
                session,
                run_id=run_id,
                actor=_actor(),
                purpose=purpose,
                level=level,
                region=region,
                page=page,
                size=size,
            )
        typer.echo(f"{result.total} families; page {result.page}")
        for f in result.items:
            typer.echo(f"{f.family_id}\t{f.region_kato or ''}\t{f.level}\t{f.score}")

    @group.command("changes")
    def changes(
        run_id: Annotated[int, typer.Argument(min=1)],
        purpose: PurposeOpt,
        page: Annotated[int, typer.Option(min=1)] = 1,
        size: Annotated[int, typer.Option(min=1, max=200)] = 50,
    ) -> None:
        """Families whose level changed since the previous run (audited)."""
        with _errors(), session_scope() as session:
            result = service.level_changes(
                session, run_id=run_id, actor=_actor(), purpose=purpose, page=page, size=size
            )
        if result.previous_run_id is None:
            typer.echo(f"run {run_id} has no previous run of its methodology")
            return
        typer.echo(f"since run {result.previous_run_id}: {result.total} families changed level")
        for t in result.transitions:
            typer.echo(f"  {t.from_level} -> {t.to_level}: {t.families}")
        for c in result.items:
            typer.echo(
                f"{c.family_id}\t{c.from_level} -> {c.to_level}\t{c.from_score} -> {c.to_score}"
            )

    @group.command("card")
    def card(
        family_id: Annotated[int, typer.Argument(min=1)],
        purpose: PurposeOpt,
        run_id: Annotated[int | None, typer.Option("--run", min=1)] = None,
        lang: Lang = "en",
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """A family's card: level, score per dimension, and every indicator (audited)."""
        with _errors(), session_scope() as session:
            result = service.family_card(
                session, family_id=family_id, actor=_actor(), purpose=purpose, run_id=run_id
            )
        if as_json:
            typer.echo(json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=2))
            return
        if lang not in ("kk", "ru", "en"):
            lang = "en"
        typer.echo(
            f"family {result.family_id}, {result.period}: level {result.level.code}"
            f" ({getattr(result.level.name, lang)}), score {result.score}"
        )
        if result.values_note:
            typer.echo(f"  ({result.values_note})")
        for dim in result.dimensions:
            typer.echo(f"  {getattr(dim.title, lang)}: {dim.score}")
            for ind in dim.indicators:
                mark = {True: "yes", False: "no", None: "?"}[ind.holds]
                shown = "; ".join(
                    f"{getattr(v.title, lang)} {getattr(v.text, lang)}" for v in ind.values
                )
                typer.echo(
                    f"    [{mark:>3}] {getattr(ind.title, lang)}: {ind.points_awarded:+d}"
                    f" (of {ind.points:+d})" + (f" — {shown}" if shown else "")
                )
