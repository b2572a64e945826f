"""`socialcard generate`: a seeded synthetic population, bulk-loaded into the configured store."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from socialcard.core.db import get_engine
from socialcard.core.errors import AppError
from socialcard.core.migrate import upgrade
from socialcard.registry.population.loader import DEFAULT_BATCH_FAMILIES, generate_population

console = Console(stderr=True)


class CheckMode(StrEnum):
    VECTOR = "vector"
    SCALAR = "scalar"
    BOTH = "both"


def register(app: typer.Typer) -> None:
    """Add `generate` to the root app."""

    @app.command(
        "generate",
        help="Generate a synthetic population (families, persons, facts) into the store. "
        "It is an initial load: no life events are written. Run it again with another seed "
        "to add more families; national ids stay unique.",
    )
    def generate(
        families: int = typer.Option(
            ..., "--families", min=1, help="How many families (households) to generate."
        ),
        seed: int = typer.Option(
            ...,
            "--seed",
            min=0,
            help="Random seed: the same seed, count, region and date give the same rows. "
            "A seed already in the store is refused.",
        ),
        region: str | None = typer.Option(
            None,
            "--region",
            help="Only this region: a 9-digit KATO code (750000000), its 2-digit prefix (75), "
            "or one district's code.",
        ),
        batch_size: int = typer.Option(
            DEFAULT_BATCH_FAMILIES, "--batch-size", min=1, help="Families per transaction."
        ),
        as_of: datetime | None = typer.Option(
            None,
            "--as-of",
            formats=["%Y-%m-%d"],
            help="The date the population is a snapshot of (default: today).",
        ),
        check: CheckMode = typer.Option(
            CheckMode.VECTOR,
            "--check",
            help="How generated rows are checked against the importers' rules: vectorised "
            "(fast), scalar (the validators themselves, slow) or both.",
        ),
        progress: bool = typer.Option(
            True, "--progress/--no-progress", help="Show a progress bar."
        ),
    ) -> None:
        """Generate a synthetic population into the store."""
        engine = get_engine()
        upgrade(engine)
        bar = Progress(
            TextColumn("[bold]generate[/bold] seed {task.fields[seed]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("families"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not progress,
        )

        def advance(done: int) -> None:
            # The bar appears with the first chunk, after the store accepted the run.
            if not bar.live.is_started:
                bar.start()
            bar.advance(task, done)

        task = bar.add_task("generate", total=families, seed=seed)
        try:
            report = generate_population(
                engine,
                families=families,
                seed=seed,
                region=region,
                as_of=as_of.date() if as_of else None,
                batch_size=batch_size,
                check_mode=check.value,
                progress=advance,
            )
        except AppError as exc:
            _stop(bar)
            _say(f"error: {exc.message}")
            for detail in exc.details[:20]:
                _say("  " + ", ".join(f"{k}={v}" for k, v in detail.items()))
            raise typer.Exit(1) from None
        finally:
            _stop(bar)
        store = engine.url.render_as_string(hide_password=True)
        facts = ", ".join(
            f"{kind} {count:,}" for kind, count in sorted(report.facts_by_kind.items())
        )
        _say(
            f"generated {report.families:,} families, {report.persons:,} persons and "
            f"{report.facts:,} facts (seed {seed}) into {store} in {report.seconds_total:.1f} s"
        )
        _say(f"facts: {facts}")


def _stop(bar: Progress) -> None:
    if bar.live.is_started:
        bar.stop()


def _say(line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)
