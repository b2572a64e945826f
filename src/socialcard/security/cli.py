"""`socialcard apikey ...`: issue keys from the command line."""

from __future__ import annotations

import typer
from rich.console import Console

from socialcard.core.db import session_scope
from socialcard.core.errors import AppError
from socialcard.security import service

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add `apikey` to the root app."""
    key_app = typer.Typer(help="API keys for clients.", no_args_is_help=True)
    app.add_typer(key_app, name="apikey")

    @key_app.command("create")
    def create(
        name: str = typer.Option(..., help="Who the key is for."),
        role: str = typer.Option(..., help="admin, operator, agency, auditor, ..."),
    ) -> None:
        """Issue a key; it is printed once on stdout and stored only as a keyed hash."""
        try:
            with session_scope() as session:
                created = service.create_api_key(session, name=name, role=role)
        except AppError as exc:
            console.print(f"error: {exc.message}")
            raise typer.Exit(2) from None
        typer.echo(created.key)
