"""`socialcard staff ...`: create staff accounts for the web pages."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from socialcard.core.db import session_scope
from socialcard.core.errors import AppError
from socialcard.security.accounts import service

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add `staff` to the root app."""
    staff_app = typer.Typer(help="Staff accounts that sign in to the pages.", no_args_is_help=True)
    app.add_typer(staff_app, name="staff")

    @staff_app.command("create")
    def create(
        username: str = typer.Option(..., help="Sign-in name (letters, digits, . - _)."),
        role: str = typer.Option(..., help="admin, policy_owner, operator, auditor or merchant."),
        name: str = typer.Option("", help="Name shown on the pages."),
        merchant_id: int = typer.Option(None, help="The merchant (for the merchant role)."),
        language: str = typer.Option("ru", help="kk, ru or en."),
        password_stdin: bool = typer.Option(
            False, "--password-stdin", help="Read the password from stdin instead of generating."
        ),
    ) -> None:
        """Create an account; a generated password is printed once on stdout."""
        password = sys.stdin.readline().rstrip("\n") if password_stdin else None
        generated = password is None
        password = password or service.generate_password()
        try:
            with session_scope() as session:
                service.create_staff(
                    session,
                    username=username,
                    display_name=name or username,
                    role=role,
                    password=password,
                    merchant_id=merchant_id,
                    language=language,
                )
        except AppError as exc:
            console.print(f"error: {exc.message}")
            raise typer.Exit(2) from None
        if generated:
            typer.echo(password)
