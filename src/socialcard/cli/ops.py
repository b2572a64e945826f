"""Operational commands: migrate the store, serve HTTP, and the quick-start demo."""

from __future__ import annotations

import typer
from rich.console import Console

from socialcard.core.config import get_settings
from socialcard.core.db import get_engine
from socialcard.core.migrate import upgrade
from socialcard.proactive import service as proactive_service
from socialcard.security import keyring

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the operational commands to the root app."""
    db_app = typer.Typer(help="The operational store.", no_args_is_help=True)
    app.add_typer(db_app, name="db")

    @db_app.command("upgrade")
    def db_upgrade() -> None:
        """Create or migrate the store's tables to the newest schema."""
        upgrade(get_engine())
        console.print(f"store migrated: {get_engine().url.render_as_string(hide_password=True)}")

    @app.command("serve")
    def serve(
        host: str = typer.Option(None, help="Interface to listen on."),
        port: int = typer.Option(None, help="Port to listen on."),
        workers: int = typer.Option(1, help="Worker processes."),
    ) -> None:
        """Run the HTTP API server (uvicorn)."""
        import uvicorn

        settings = get_settings()
        try:
            keyring.check_startup()
            proactive_service.check_secrets()
        except keyring.SecretsError as exc:
            console.print(f"error: {exc.message}")
            raise typer.Exit(2) from None
        upgrade(get_engine())
        host = host or settings.server.host
        port = port or settings.server.port
        console.print(f"socialcard API on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
        uvicorn.run(
            "socialcard.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,  # filtered out at "warning" anyway; skip building each record
        )
