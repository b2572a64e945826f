"""`socialcard demo`: the README's main job on the embedded default store.

Migrates the store, generates a synthetic region if the registry is empty, runs the rules and
the well-being score for this month, invites a well-being segment to a family support centre,
runs campaigns whose SMS simulated citizens answer, pays
the consented decisions and issues vouchers from the rules run's decisions into social wallets,
redeems some, prints the funnel and voucher statistics, issues operator keys, and serves.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from socialcard.card import demo as card_demo
from socialcard.core.clock import CLOCK_ENV, set_clock, today
from socialcard.core.config import get_settings
from socialcard.core.db import get_engine, session_scope
from socialcard.core.migrate import upgrade
from socialcard.outreach import demo as outreach_demo
from socialcard.proactive.demo import print_demo_funnel, run_demo_campaigns
from socialcard.registry import service as registry_service
from socialcard.registry.population.loader import generate_population
from socialcard.rules import cli as rules_cli
from socialcard.security import service as security_service
from socialcard.security.schemas import Actor
from socialcard.wallet import demo as wallet_demo
from socialcard.web import demo as web_demo
from socialcard.wellbeing import cli as wellbeing_cli

console = Console()


def register(app: typer.Typer) -> None:
    """Add `demo` to the root app."""

    @app.command("demo")
    def demo(
        families: int = typer.Option(20_000, min=1, help="Families to generate if empty."),
        seed: int = typer.Option(1, min=0, help="Seed of the synthetic region."),
        region: str = typer.Option("750000000", help="KATO code of the region to generate."),
        host: str = typer.Option(None, help="Interface to listen on."),
        port: int = typer.Option(None, help="Port to listen on."),
        serve: bool = typer.Option(True, "--serve/--no-serve", help="Start the HTTP server."),
        month: str = typer.Option(
            None,
            help="Play the demo in this month (YYYY-MM): the clock is set to its 10th, "
            "09:00 in Almaty, and runs on from there (also for the server).",
        ),
    ) -> None:
        """Set up a synthetic region in the store and serve the API."""
        if month is not None:
            _set_demo_clock(month)
        settings = get_settings()
        engine = get_engine()
        upgrade(engine)
        with session_scope() as session:
            counts = registry_service.registry_counts(session)
        if counts["families"] == 0:
            console.print(f"Generating a synthetic region: {families:,} families (seed {seed})")
            with Progress(
                TextColumn("[bold]generate"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as bar:
                task = bar.add_task("families", total=families)
                generate_population(
                    engine,
                    families=families,
                    seed=seed,
                    region=region,
                    progress=lambda done: bar.update(task, completed=done),
                )
        with session_scope() as session:
            counts = registry_service.registry_counts(session)
            family_ids = registry_service.sample_family_ids(session, 3)
            key = security_service.create_api_key(session, name="demo-operator", role="operator")
            checker = security_service.create_api_key(
                session, name="demo-policy-owner", role="policy_owner"
            )
            auditor = security_service.create_api_key(session, name="demo-auditor", role="auditor")
        # Money is created only by a request one person files and another approves.
        staff = wallet_demo.DemoStaff(
            maker=Actor(key_id=key.id, name=key.name, role=key.role),
            checker=Actor(key_id=checker.id, name=checker.name, role=checker.role),
        )
        host = host or settings.server.host
        port = port or settings.server.port
        base = f"http://{host}:{port}"
        console.print(
            f"Registry: {counts['persons']:,} persons in {counts['families']:,} families, "
            f"{counts['facts']:,} facts, {counts['events']:,} life events."
        )
        period = f"{today():%Y-%m}"
        rules_cli.demo_step()
        wellbeing_cli.demo_step(console)
        outreach_demo.invite(console)
        run_demo_campaigns(console, period, seed=seed, funnel=False)
        wallet_demo.run_demo_step(console, period=period, staff=staff)
        print_demo_funnel(console)
        outreach_demo.follow_up(console)
        card_demo.run_demo_step(console, period=period)
        with session_scope() as session:
            sign_in = web_demo.demo_accounts(session)
        # Plain echo: a terminal-width wrap would break the keys for copy and paste.
        typer.echo(f"Operator key (files requests, the maker):   {key.key}")
        typer.echo(f"Policy owner key (approves, the checker):   {checker.key}")
        typer.echo(f"Auditor key (audit trail and its chain):    {auditor.key}")
        if family_ids:
            console.print("Try:")
            # Plain echo: a terminal-width wrap would break the commands for copy and paste.
            typer.echo(
                f"  curl -H 'X-API-Key: {key.key}' "
                f"'{base}/api/v1/families/{family_ids[0]}?purpose=case_review'"
            )
            typer.echo(f"  curl -H 'X-API-Key: {auditor.key}' '{base}/api/v1/audit/events'")
            typer.echo(f"  curl -H 'X-API-Key: {auditor.key}' '{base}/api/v1/audit/verify'")
            typer.echo(
                f"  curl -H 'X-API-Key: {checker.key}' '{base}/api/v1/approvals?status=approved'"
            )
        console.print(f"API docs: {base}/docs")
        web_demo.print_sign_in(console, base, sign_in)
        if not serve:
            return
        import uvicorn

        console.print(f"socialcard is serving on {base}/  (the operator console; Ctrl+C to stop)")
        uvicorn.run(
            "socialcard.app:create_app", factory=True, host=host, port=port, log_level="warning"
        )


def _set_demo_clock(month: str) -> None:
    try:
        start = datetime.strptime(month, "%Y-%m").replace(day=10, hour=4, tzinfo=UTC)
    except ValueError:
        console.print(f"error: --month {month!r} is not a month of the form YYYY-MM")
        raise typer.Exit(2) from None
    set_clock(start)
    # The server's worker reads the clock from the environment: it starts where the demo does.
    os.environ[CLOCK_ENV] = start.isoformat()
