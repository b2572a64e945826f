"""Jobs that commit as they go: the campaign run (in chunks), the outbox dispatcher, the
deadline and accrual jobs and the life-event watcher. Each is safe to kill and run again."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from socialcard.core.clock import utcnow
from socialcard.core.db import session_scope
from socialcard.core.logging import get_logger
from socialcard.proactive import eligibility, service
from socialcard.proactive.config import get_proactive_settings
from socialcard.proactive.crash import crashpoint
from socialcard.proactive.eligibility import Candidate
from socialcard.proactive.errors import UnknownProgram
from socialcard.proactive.gateways import Gateway, make_gateway
from socialcard.proactive.schemas import CampaignRead
from socialcard.proactive.templates import is_outreach

log = get_logger(__name__)
T = TypeVar("T")


def _chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def run_campaign(
    *,
    program_id: str,
    period: str,
    candidates: Iterable[Candidate] | None = None,
    progress: Callable[[int], None] | None = None,
    fresh_rules: bool = False,
) -> CampaignRead:
    """Offer a program for a month to everyone eligible (the rules service's stored run for the
    month, run first when missing or when `fresh_rules`) and not excluded; commits per chunk,
    so a re-run after a crash continues where the last committed chunk ended."""
    if candidates is None and is_outreach(program_id):
        # An invitation has no rules decisions: a segment's campaign makes its candidates.
        raise UnknownProgram(
            f"{program_id!r} is a segment's outreach, started from /api/v1/outreach",
            details=[{"field": "program_id", "reason": "not a benefit program"}],
        )
    with session_scope() as session:
        campaign = service.open_campaign(session, program_id=program_id, period=period)
        campaign_id = campaign.id
    if candidates is None:
        with session_scope() as session:
            run_id = eligibility.rules_run_for(
                session, program_id=program_id, period=period, fresh=fresh_rules
            )
        with session_scope() as session:
            candidates = list(
                eligibility.rules_candidates(
                    session, run_id=run_id, program_id=program_id, period=period
                )
            )
    with session_scope() as session:
        blocked = service.blocked_entities(session, program_id=program_id, period=period)
    totals = service.OfferStats()
    done = 0
    for chunk in _chunked(candidates, get_proactive_settings().chunk_size):
        with session_scope() as session:
            campaign = service.open_campaign(session, program_id=program_id, period=period)
            stats = service.offer_candidates(
                session, campaign=campaign, candidates=chunk, blocked=blocked, now=utcnow()
            )
        crashpoint("campaign_after_chunk")
        totals.add(stats)
        done += len(chunk)
        if progress:
            progress(done)
    with session_scope() as session:
        result = service.close_campaign(session, campaign_id=campaign_id, stats=totals)
    log.info("campaign_run", program_id=program_id, period=period, offered=totals.offered)
    return result


def dispatch(
    *, gateway: Gateway | None = None, batch: int = 1000, max_batches: int | None = None
) -> dict[str, int]:
    """Send queued messages: claim (commit `sending`), send with idempotency keys, record."""
    own = gateway is None
    gateway = gateway or make_gateway(get_proactive_settings())
    counts = {"sent": 0, "failed": 0}
    try:
        for _ in itertools.count() if max_batches is None else range(max_batches):
            with session_scope() as session:
                claimed = service.claim_messages(session, limit=batch, now=utcnow())
            if not claimed:
                break
            crashpoint("send_after_claim")
            results = service.send_claimed(gateway, claimed)
            with session_scope() as session:
                done = service.record_results(session, results=results, now=utcnow())
            for key, value in done.items():
                counts[key] += value
            if done["sent"] == 0:
                break  # only failures left: retry on a later run, after their backoff
    finally:
        if own:
            gateway.close()
    return counts


def process_deadlines() -> dict[str, int]:
    """Reminders before deadlines and lapses after them."""
    with session_scope() as session:
        return service.process_deadlines(session)


def accrue(*, period: str, program_id: str | None = None) -> dict[str, int]:
    """The month's payment orders for recurring assignments."""
    with session_scope() as session:
        return service.accrue(session, period=period, program_id=program_id)


def process_events_once(limit: int = 1000) -> dict[str, int]:
    """One pass over new life events (one transaction: events, offers and cursor together)."""
    with session_scope() as session:
        return service.process_events(session, limit=limit)


def watch(
    *,
    interval: float = 1.0,
    send: bool = True,
    stop: Callable[[], bool] | None = None,
    gateway: Gateway | None = None,
) -> None:
    """Loop: life events -> offers, then deadlines and the outbox, every `interval` seconds."""
    own = gateway is None and send
    if send and gateway is None:
        gateway = make_gateway(get_proactive_settings())
    try:
        while not (stop and stop()):
            counts = process_events_once()
            if send and gateway is not None:
                dispatch(gateway=gateway)
            if counts["events"] == 0:
                time.sleep(interval)
    finally:
        if own and gateway is not None:
            gateway.close()


def schedule(*, period: str, programs: list[str] | None = None) -> list[CampaignRead]:
    """The periodic run: every configured program's campaign for the month, then the month's
    accrual and deadlines (cron or a systemd timer calls `socialcard campaign schedule`)."""
    from socialcard.proactive.config import all_campaign_settings

    results = [
        run_campaign(program_id=program_id, period=period)
        for program_id in programs or sorted(all_campaign_settings())
    ]
    accrue(period=period)
    process_deadlines()
    return results
