"""The demo's proactive step: campaigns on the generated region, sent by the file gateway,
answered by simulated citizens through the real inbound-reply path, and the consent window
played to its end so that silence lapses."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rich.console import Console

from socialcard.core.clock import today, utcnow
from socialcard.core.db import session_scope
from socialcard.proactive import jobs, service
from socialcard.proactive.cli import print_funnel
from socialcard.proactive.config import get_proactive_settings
from socialcard.proactive.service import AwaitingAnswer

DEMO_PROGRAMS = ("kz.large_family", "kz.birth_allowance", "kz.asp", "kz.disability")

# How the simulated citizens answer: the shares are settings (ProactiveSettings.demo_*); an
# unclear reply gets the help message and half of those then answer "yes" properly.
_AGREE = {"kk": ("иә", "Иә", "1"), "ru": ("да", "Да ", "1"), "en": ("yes", "YES", "1")}
_REFUSE = {"kk": ("жоқ", "2"), "ru": ("нет", "Нет", "2"), "en": ("no", "2")}
_UNCLEAR = ("что это?", "кім?", "1 2", "ok", "+")


@dataclass
class ReplyCounts:
    """What the simulated citizens did, by behaviour."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1


def answer_of(offer: AwaitingAnswer, seed: int) -> tuple[str, list[str]]:
    """One citizen's behaviour and the SMS bodies they send, fixed by the seed and the offer
    (program, entity, month), so both stores and every re-run see the same answers."""
    rng = random.Random(f"{seed}:{offer.program_id}:{offer.entity_id}:{offer.period}")  # noqa: S311
    draw, upto = rng.random(), 0.0
    shares = get_proactive_settings().demo_answer_shares()
    behaviour = shares[-1][0]
    for name, share in shares:
        upto += share
        if draw < upto:
            behaviour = name
            break
    lang = offer.language if offer.language in _AGREE else "ru"
    if behaviour == "agree":
        return behaviour, [rng.choice(_AGREE[lang])]
    if behaviour == "refuse":
        return behaviour, [rng.choice(_REFUSE[lang])]
    if behaviour == "unclear":
        bodies = [rng.choice(_UNCLEAR)]
        if rng.random() < 0.5:
            bodies.append(rng.choice(_AGREE[lang]))
        return behaviour, bodies
    return behaviour, []


def simulate_replies(*, period: str, seed: int, now: datetime | None = None) -> ReplyCounts:
    """Citizens answer their delivered offer SMS through `service.receive_reply` (the inbound
    webhook's path); each reply is keyed by its offer message, so a re-run adds nothing."""
    now = now or utcnow()
    with session_scope() as session:
        waiting = service.awaiting_answer(session, period=period)
    counts = ReplyCounts()
    for start in range(0, len(waiting), 500):
        with session_scope() as session:
            for offer in waiting[start : start + 500]:
                behaviour, bodies = answer_of(offer, seed)
                counts.add(behaviour)
                for number, body in enumerate(bodies):
                    service.receive_reply(
                        session,
                        provider_message_id=f"demo-reply:{offer.message_id}:{number}",
                        phone=offer.phone,
                        body=body,
                        now=now + timedelta(minutes=number + 1),
                    )
    return counts


def close_consent_window(*, period: str) -> dict[str, int]:
    """Play the clock to just after the month's last deadline: silent offers lapse."""
    with session_scope() as session:
        last = service.last_deadline(session, period=period)
        if last is None:
            return {"reminded": 0, "lapsed": 0}
        return service.process_deadlines(session, now=last + timedelta(minutes=1))


def run_demo_campaigns(
    console: Console, period: str | None = None, *, seed: int = 1, funnel: bool = True
) -> None:
    """Run a few programs' campaigns for this month, send the SMS to the file gateway, let the
    simulated citizens answer, close the consent window, and print the funnel (safe to repeat:
    a second demo run adds nothing)."""
    day = today()
    month = period or f"{day.year:04d}-{day.month:02d}"
    for program_id in DEMO_PROGRAMS:
        result = jobs.run_campaign(program_id=program_id, period=month)
        console.print(
            f"Campaign {program_id} {month}: {result.eligible:,} eligible, "
            f"{result.offered:,} offered"
        )
    sent = jobs.dispatch()["sent"]
    replies = simulate_replies(period=month, seed=seed)
    deadlines = close_consent_window(period=month)
    sent += jobs.dispatch()["sent"]
    said = ", ".join(f"{n:,} {what}" for what, n in sorted(replies.counts.items()))
    console.print(
        f"SMS sent: {sent:,} (file gateway: {get_proactive_settings().outbox_file}); "
        f"simulated answers (seed {seed}): {said or 'none pending'}; "
        f"consent window closed: {deadlines['lapsed']:,} lapsed"
    )
    if funnel:
        print_demo_funnel(console)


def print_demo_funnel(console: Console) -> None:
    """The funnel of every campaign (after the wallet paid the orders, `paid` is filled)."""
    with session_scope() as session:
        print_funnel(service.funnel(session), by_region=False, out=console)
