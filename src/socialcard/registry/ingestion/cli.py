"""`socialcard import SOURCE FILE`: load an agency file with a progress bar and a summary.

Exit codes: 0 every row landed; 1 the file was refused or the import failed (nothing, or only
the chunks before the failure, was loaded); 3 the file was loaded but some rows were
quarantined. (2 stays what it is for every typer command: a usage error.)
"""

from __future__ import annotations

from pathlib import Path

import structlog
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy.exc import SQLAlchemyError

from socialcard.core.config import get_settings
from socialcard.core.db import session_scope
from socialcard.core.errors import AppError
from socialcard.core.logging import configure_logging, get_logger
from socialcard.registry.ingestion import service
from socialcard.registry.ingestion.schemas import BatchResult

log = get_logger(__name__)

EXIT_REFUSED = 1
EXIT_QUARANTINED = 3
MAX_PRINTED_REJECTS = 50

console = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `import` to the root app."""

    @app.command("import")
    def import_file(
        source: str = typer.Argument(..., help="The source: persons, family_members, incomes, …"),
        file: Path = typer.Argument(
            ..., help="A .csv (with a header row), .jsonl or .parquet file."
        ),
        agency: str | None = typer.Option(None, help="The sending agency (default: the source's)."),
        file_format: str | None = typer.Option(
            None, "--format", help="csv, jsonl or parquet (default: from the extension)."
        ),
        batch_key: str | None = typer.Option(
            None, "--batch-key", help="The batch's key (default: the file's SHA-256)."
        ),
        workers: int | None = typer.Option(
            None, min=0, max=32, help="Validation worker processes (default: 2 for big files)."
        ),
        chunk_rows: int | None = typer.Option(
            None, "--chunk-rows", min=100, help="Rows per chunk; each chunk is committed."
        ),
    ) -> None:
        """Import an agency file: good rows land, bad rows go to the quarantine with the reason."""
        if not structlog.is_configured():
            # Logs go to stderr so stdout carries only the summary.
            settings = get_settings()
            configure_logging(settings.log_level, json=settings.log_json)
        try:
            result, created = _run(
                source, file, agency, file_format, batch_key, workers, chunk_rows
            )
        except AppError as exc:
            console.print(f"error: {exc.message}", markup=False)
            raise typer.Exit(EXIT_REFUSED) from None
        except SQLAlchemyError as exc:
            log.error("import_store_error", error_type=type(exc).__name__)
            original = getattr(exc, "orig", None) or exc
            first = (str(original).splitlines() or [type(exc).__name__])[0]
            console.print(
                f"error: the store refused the import ({first}); is it migrated "
                "(socialcard db upgrade) and reachable?",
                markup=False,
            )
            raise typer.Exit(EXIT_REFUSED) from None
        except OSError as exc:
            console.print(f"error: {exc.strerror or exc}: {exc.filename or file}", markup=False)
            raise typer.Exit(EXIT_REFUSED) from None
        except KeyboardInterrupt:
            console.print(
                "error: interrupted; the chunks committed so far stay loaded, run the import again"
                " to finish it"
            )
            raise typer.Exit(130) from None
        _print_summary(result, created)
        if result.rows_rejected:
            raise typer.Exit(EXIT_QUARANTINED)


def _run(
    source: str,
    file: Path,
    agency: str | None,
    file_format: str | None,
    batch_key: str | None,
    workers: int | None,
    chunk_rows: int | None,
) -> tuple[BatchResult, bool]:
    with (
        Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]:,} rows"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        ) as progress,
        session_scope() as session,
    ):
        task = progress.add_task(f"importing {file.name}", total=None, rows=0)

        def on_progress(position: int, total: int, rows: int) -> None:
            progress.update(task, completed=position, total=total, rows=rows)

        outcome = service.import_file(
            session,
            source=source,
            path=file,
            file_format=file_format,
            agency=agency,
            batch_key=batch_key,
            checkpoint=session.commit,
            progress=on_progress,
            workers=service.default_workers(file) if workers is None else workers,
            chunk_rows=chunk_rows,
        )
        return outcome.result, outcome.created


def _print_summary(result: BatchResult, created: bool) -> None:
    if not created:
        out.print(
            f"batch {result.id} was already loaded from this content; nothing changed",
            markup=False,
        )
    out.print(
        f"batch {result.id} ({result.source}/{result.agency}, {result.status}): "
        f"{result.rows_total} rows, {result.rows_accepted} accepted, "
        f"{result.rows_rejected} rejected",
        markup=False,
    )
    for row in result.rejected[:MAX_PRINTED_REJECTS]:
        out.print(f"row {row.row_number}: {row.field}: {row.reason}", markup=False)
    more = result.rows_rejected - min(len(result.rejected), MAX_PRINTED_REJECTS)
    if more > 0:
        out.print(
            f"… and {more} more, see quarantine of batch {result.id} "
            f"(GET /api/v1/sources/{result.source}/batches/{result.id}/quarantine)",
            markup=False,
        )
