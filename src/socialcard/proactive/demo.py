"""The demo's proactive step: campaigns on the generated region, sent by the file gateway."""

from __future__ import annotations

from rich.console import Console

from socialcard.core.clock import today
from socialcard.core.db import session_scope
from socialcard.proactive import jobs, service
from socialcard.proactive.cli import print_funnel
from socialcard.proactive.config import get_proactive_settings

DEMO_PROGRAMS = ("kz.large_family", "kz.birth_allowance", "kz.asp", "kz.disability")


def run_demo_campaigns(console: Console, period: str | None = None) -> None:
    """Run a few programs' campaigns for this month, send the SMS to the file gateway and print
    the funnel (safe to repeat: a second demo run adds nothing)."""
    day = today()
    month = period or f"{day.year:04d}-{day.month:02d}"
    for program_id in DEMO_PROGRAMS:
        result = jobs.run_campaign(program_id=program_id, period=month)
        console.print(
            f"Campaign {program_id} {month}: {result.eligible:,} eligible, "
            f"{result.offered:,} offered"
        )
    sent = jobs.dispatch()
    console.print(
        f"SMS sent: {sent['sent']:,} (file gateway: {get_proactive_settings().outbox_file})"
    )
    with session_scope() as session:
        print_funnel(service.funnel(session), by_region=False, out=console)
