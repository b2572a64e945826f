"""`socialcard report ...`: the monthly PDF report and table downloads from the command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from socialcard.core.db import session_scope
from socialcard.core.errors import AppError
from socialcard.reports import exports, pdf
from socialcard.reports import service as reports_service
from socialcard.web.i18n import LANGUAGES, Translator

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add `report` to the root app."""
    report_app = typer.Typer(help="Reports for ministries: PDF and tables.", no_args_is_help=True)
    app.add_typer(report_app, name="report")

    @report_app.command("monthly")
    def monthly(
        period: str = typer.Option(..., help="The month, YYYY-MM."),
        lang: str = typer.Option("ru", help="kk, ru or en."),
        out: Path = typer.Option(Path("report.pdf"), help="Where to write the PDF."),
    ) -> None:
        """The monthly report (funnel, spending by program and region, vouchers, exceptions)."""
        if lang not in LANGUAGES:
            console.print(f"error: --lang must be one of {', '.join(LANGUAGES)}")
            raise typer.Exit(2)
        try:
            with console.status("gathering the month's figures"), session_scope() as session:
                data = pdf.monthly_data(session, period=period)
            with console.status("typesetting"):
                body = pdf.render_monthly(data, Translator(lang))
        except AppError as exc:
            console.print(f"error: {exc.message}")
            raise typer.Exit(2) from None
        out.write_bytes(body)
        typer.echo(f"{out} ({len(body):,} bytes)")

    @report_app.command("table")
    def table(
        name: str = typer.Argument(..., help=", ".join(reports_service.TABLE_NAMES)),
        lang: str = typer.Option("ru", help="kk, ru or en (column titles)."),
        out: Path = typer.Option(..., help="A .csv or .xlsx file."),
    ) -> None:
        """Write a table (counts below 5 suppressed in aggregates by region)."""
        t = Translator(lang)
        try:
            with session_scope() as session:
                found = reports_service.table(session, name)
                if out.suffix == ".xlsx":
                    with out.open("wb") as handle:
                        for chunk in exports.xlsx_file(found, t):
                            handle.write(chunk)
                else:
                    with out.open("w", encoding="utf-8", newline="") as text:
                        text.writelines(exports.csv_lines(found, t))
        except AppError as exc:
            console.print(f"error: {exc.message}")
            raise typer.Exit(2) from None
        typer.echo(str(out))
