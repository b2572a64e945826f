"""`socialcard campaign ...` and `socialcard proactive ...`: campaigns, jobs, operators."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from socialcard.core.db import session_scope
from socialcard.core.errors import AppError
from socialcard.proactive import jobs, service
from socialcard.proactive.schemas import FunnelRow
from socialcard.security import service as security_service
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor

console = Console()
PeriodOpt = Annotated[str, typer.Option("--period", help="The month, YYYY-MM.")]


def _actor() -> Actor:
    return security_service.system_actor()


def _fail(exc: AppError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(2)


_SHORT = {"eligible": "elig", "offered": "offer", "delivered": "deliv", "refused": "refus"}
_SHORT |= {"assigned": "assig", "agreed": "agree", "lapsed": "lapse"}


def print_funnel(
    rows: list[FunnelRow], *, by_region: bool = True, out: Console | None = None
) -> None:
    """The funnel as a table: per campaign and region (or per campaign), then totals."""
    columns = (
        "eligible",
        "offered",
        "delivered",
        "agreed",
        "refused",
        "lapsed",
        "assigned",
        "paid",
    )
    periods = sorted({row.period for row in rows})
    one_period = len(periods) == 1
    title = f"Campaign funnel {periods[0]}" if one_period else "Campaign funnel"
    table = Table(title=title, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    table.add_column("campaign", no_wrap=True)
    if by_region:
        table.add_column("region", no_wrap=True)
    for name in columns:
        header = _SHORT.get(name, name)
        table.add_column(header, justify="right", min_width=len(header))
    lines: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:
        label = row.program_id if one_period else f"{row.program_id} {row.period}"
        key = (label, row.region_kato if by_region else "")
        line = lines.setdefault(key, dict.fromkeys(columns, 0))
        for name in columns:
            line[name] += getattr(row, name)
    totals = dict.fromkeys(columns, 0)
    for (label, region), line in lines.items():
        for name in columns:
            totals[name] += line[name]
        table.add_row(label, *([region] if by_region else []), *[f"{line[n]:,}" for n in columns])
    pad = [""] if by_region else []
    table.add_row("total", *pad, *[f"{totals[n]:,}" for n in columns], style="bold")
    (out or console).print(table)


def register(app: typer.Typer) -> None:
    """Add the `campaign` and `proactive` command groups."""
    campaign = typer.Typer(help="Proactive benefit campaigns.", no_args_is_help=True)
    proactive = typer.Typer(help="Proactive flow jobs: send, watch, replies.", no_args_is_help=True)
    app.add_typer(campaign, name="campaign")
    app.add_typer(proactive, name="proactive")

    @campaign.command("run")
    def run(
        program: str,
        period: PeriodOpt,
        fresh_rules: Annotated[
            bool, typer.Option("--fresh-rules", help="Run the rules again, not the stored run.")
        ] = False,
    ) -> None:
        """Offer PROGRAM for a month to everyone eligible (safe to re-run)."""
        try:
            with Progress(
                SpinnerColumn(),
                TextColumn("[bold]campaign {task.fields[program]}: {task.completed:,} eligible"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("run", total=None, program=program)
                result = jobs.run_campaign(
                    program_id=program,
                    period=period,
                    progress=lambda done: bar.update(task, completed=done),
                    fresh_rules=fresh_rules,
                )
        except AppError as exc:
            raise _fail(exc) from exc
        typer.echo(result.model_dump_json())

    @campaign.command("schedule")
    def schedule(period: PeriodOpt) -> None:
        """The periodic job: every program's campaign, accrual and deadlines for a month."""
        try:
            for result in jobs.schedule(period=period):
                typer.echo(result.model_dump_json())
        except AppError as exc:
            raise _fail(exc) from exc

    @campaign.command("accrue")
    def accrue(period: PeriodOpt, program: Annotated[str | None, typer.Option()] = None) -> None:
        """Create the month's payment orders for recurring assignments still eligible."""
        try:
            typer.echo(json.dumps(jobs.accrue(period=period, program_id=program)))
        except AppError as exc:
            raise _fail(exc) from exc

    @campaign.command("deadlines")
    def deadlines() -> None:
        """Send due reminders; lapse offers past their deadline."""
        typer.echo(json.dumps(jobs.process_deadlines()))

    @campaign.command("funnel")
    def funnel(
        campaign_id: Annotated[int | None, typer.Option("--campaign")] = None,
        program: Annotated[str | None, typer.Option()] = None,
        regions: Annotated[bool, typer.Option("--regions/--no-regions")] = True,
    ) -> None:
        """The funnel per campaign and region (--no-regions: per campaign)."""
        with session_scope() as session:
            rows = service.funnel(session, campaign_id=campaign_id, program_id=program)
        print_funnel(rows, by_region=regions)

    @campaign.command("offers")
    def offers(
        purpose: Annotated[Purpose, typer.Option(help="Why you look (audited).")],
        offer_id: Annotated[int | None, typer.Option("--offer")] = None,
        person_id: Annotated[int | None, typer.Option("--person")] = None,
        program: Annotated[str | None, typer.Option()] = None,
        status: Annotated[str | None, typer.Option()] = None,
        region: Annotated[str | None, typer.Option()] = None,
        size: Annotated[int, typer.Option(min=1, max=200)] = 50,
    ) -> None:
        """Search offers (one JSON line each)."""
        with session_scope() as session:
            page = service.search_offers(
                session,
                actor=_actor(),
                purpose=purpose,
                offer_id=offer_id,
                person_id=person_id,
                program_id=program,
                status=status,
                region=region,
                size=size,
            )
        for item in page.items:
            typer.echo(item.model_dump_json())
        typer.echo(f"{page.total} offer(s)", err=True)

    @campaign.command("override")
    def override(
        offer_id: int,
        action: Annotated[str, typer.Option(help="agree, refuse or cancel")],
        reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")],
        iban: Annotated[str | None, typer.Option()] = None,
    ) -> None:
        """Decide a pending offer by hand with a written reason."""
        if action not in ("agree", "refuse", "cancel"):
            typer.echo("error: --action must be agree, refuse or cancel", err=True)
            raise typer.Exit(2)
        try:
            with session_scope() as session:
                detail = service.override_offer(
                    session,
                    offer_id=offer_id,
                    action=action,
                    reason=reason,
                    actor=_actor(),
                    iban=iban,
                )
        except AppError as exc:
            raise _fail(exc) from exc
        typer.echo(detail.model_dump_json())

    @proactive.command("send")
    def send(batch: Annotated[int, typer.Option(min=1)] = 1000) -> None:
        """Send the queued messages through the configured gateway."""
        typer.echo(json.dumps(jobs.dispatch(batch=batch)))

    @proactive.command("events")
    def events(limit: Annotated[int, typer.Option(min=1)] = 1000) -> None:
        """Process new life events once: offers for affected families, endings."""
        typer.echo(json.dumps(jobs.process_events_once(limit)))

    @proactive.command("watch")
    def watch(
        interval: Annotated[float, typer.Option(min=0.05)] = 1.0,
        send: Annotated[bool, typer.Option("--send/--no-send")] = True,
    ) -> None:
        """Loop: life events -> offers -> messages, every INTERVAL seconds (Ctrl+C stops)."""
        try:
            jobs.watch(interval=interval, send=send)
        except KeyboardInterrupt:
            return

    @proactive.command("reply")
    def reply(
        message_id: Annotated[str, typer.Option("--id", help="The provider's message id.")],
        sender: Annotated[str, typer.Option("--from", help="The sender's phone.")],
        text: Annotated[str, typer.Option("--text")],
    ) -> None:
        """Process one inbound SMS reply (as the webhook does)."""
        try:
            with session_scope() as session:
                result = service.receive_reply(
                    session, provider_message_id=message_id, phone=sender, body=text
                )
        except AppError as exc:
            raise _fail(exc) from exc
        typer.echo(result.model_dump_json())

    @proactive.command("templates")
    def templates() -> None:
        """Print every message text (kind, language, edited, body)."""
        with session_scope() as session:
            for row in service.list_templates(session):
                typer.echo(row.model_dump_json())

    @proactive.command("set-template")
    def set_template(kind: str, language: str, body: str) -> None:
        """Replace one message text."""
        try:
            with session_scope() as session:
                typer.echo(
                    service.set_template(
                        session, kind=kind, language=language, body=body
                    ).model_dump_json()
                )
        except AppError as exc:
            raise _fail(exc) from exc
