"""The demo's outreach step: a segment of the well-being run invited to a family support centre,
its answers played by the proactive demo, then a worker's first contacts and the funnel."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console

from socialcard.core.clock import today
from socialcard.core.db import session_scope
from socialcard.core.errors import AppError
from socialcard.outreach import service
from socialcard.outreach.enums import CaseOutcome, ContactChannel
from socialcard.outreach.schemas import CaseUpdate, ContactCreate, SegmentCreate
from socialcard.security import service as security_service
from socialcard.security.enums import Purpose

DEMO_SEGMENT = SegmentCreate(
    code="level_e_no_work",
    title="Level E (emergency), no working adult",
    methodology_id="kz.wellbeing.cks_2023",
    levels=["E"],
    indicators=["no_working_adult"],
)
PURPOSE = Purpose.CASE_REVIEW


def invite(console: Console) -> None:
    """Define the demo segment (once) and invite its families of the newest scoring run."""
    actor = security_service.system_actor("demo")
    try:
        with session_scope() as session:
            codes = {s.code for s in service.list_segments(session)}
            if DEMO_SEGMENT.code not in codes:
                service.create_segment(session, payload=DEMO_SEGMENT, actor=actor)
            result = service.start_campaign(
                session, code=DEMO_SEGMENT.code, actor=actor, purpose=PURPOSE
            )
    except AppError as exc:  # no scoring run: the demo goes on without outreach
        console.print(f"[yellow]Outreach not started: {exc.message}[/yellow]")
        return
    skipped = ", ".join(f"{n:,} {why}" for why, n in result.skipped.items() if n)
    console.print(
        f"Segment {result.segment_code} (run {result.wellbeing_run_id}, {result.period}): "
        f"{result.families:,} families, {result.invited:,} invited to a family support centre, "
        f"{result.cases_opened:,} cases opened" + (f" (skipped: {skipped})" if skipped else "")
    )


def follow_up(console: Console, *, workers: int = 3) -> None:
    """A worker takes each agreed invitation: a phone contact, reached, a review in 30 days;
    then the segment's funnel."""
    actor = security_service.system_actor("demo")
    try:
        with session_scope() as session:
            page = service.list_cases(
                session, actor=actor, purpose=PURPOSE, segment_code=DEMO_SEGMENT.code, size=200
            )
            for index, case in enumerate(page.items):
                if case.offer_status != "agreed" or case.outcome != CaseOutcome.OPEN:
                    continue
                service.update_case(
                    session,
                    case_id=case.id,
                    payload=CaseUpdate(
                        assigned_worker=f"worker {index % workers + 1}",
                        contact=ContactCreate(channel=ContactChannel.PHONE, note="first call"),
                        outcome=CaseOutcome.REACHED,
                        next_review_on=today() + timedelta(days=30),
                    ),
                    actor=actor,
                    purpose=PURPOSE,
                )
            funnel = service.funnel(session, code=DEMO_SEGMENT.code)
    except AppError as exc:
        console.print(f"[yellow]Outreach follow-up skipped: {exc.message}[/yellow]")
        return
    outcomes = ", ".join(f"{n:,} {o}" for o, n in funnel.outcomes.items() if n)
    console.print(
        f"Segment {funnel.segment_code} funnel: {funnel.families:,} families -> "
        f"{funnel.invited:,} invited -> {funnel.delivered:,} delivered -> "
        f"{funnel.agreed:,} agreed, {funnel.refused:,} refused, {funnel.lapsed:,} lapsed, "
        f"{funnel.pending:,} pending -> cases: {outcomes or 'none'}"
    )
