"""The proactive flow: offers from eligibility, messages, consent, assignments, payment orders,
deadlines, monthly accrual, life events and the operators' funnel.

Services never commit; the jobs (`proactive/jobs.py`), the CLI and the request dependency do.
Every step can run twice: unique keys (offer per program/entity/period, message per offer and
kind, consent and assignment per offer, payment order per assignment and month) make a repeat a
no-op, so a crash at any point followed by a re-run leaves no duplicate.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.errors import InvalidInput
from socialcard.proactive import eligibility, links, repository
from socialcard.proactive.config import (
    CampaignSettings,
    all_campaign_settings,
    campaign_settings,
    get_proactive_settings,
)
from socialcard.proactive.crash import crashpoint
from socialcard.proactive.eligibility import Candidate
from socialcard.proactive.enums import (
    AssignmentStatus,
    CampaignSource,
    Channel,
    ConsentDecision,
    Destination,
    InboundOutcome,
    MessageKind,
    MessageStatus,
    OfferStatus,
    PaymentStatus,
)
from socialcard.proactive.errors import (
    CampaignNotFound,
    ExpiredLink,
    InvalidIban,
    OfferClosed,
    OfferLate,
    OfferNotFound,
    PaymentOrderConflict,
    PaymentOrderNotFound,
)
from socialcard.proactive.gateways import Gateway, OutgoingSms
from socialcard.proactive.iban import IbanError, validate_kz_iban
from socialcard.proactive.models import (
    Assignment,
    Campaign,
    Consent,
    InboundReply,
    Message,
    Offer,
    Override,
    PaymentOrder,
    Template,
)
from socialcard.proactive.schemas import (
    AssignmentRead,
    CampaignRead,
    ConsentRead,
    FunnelRow,
    InboundRead,
    MessageRead,
    OfferDetail,
    OfferPage,
    OfferRead,
    OverrideRead,
    PaymentOrderRead,
    TemplateRead,
)
from socialcard.proactive.templates import (
    DEFAULTS,
    END_REASONS,
    LANGUAGES,
    check_template,
    is_outreach,
    language_of,
    render,
    text_kind,
)
from socialcard.registry import service as registry_service
from socialcard.rules import service as rules_service
from socialcard.security import codes as security_codes
from socialcard.security import keyring
from socialcard.security import service as security_service
from socialcard.security.enums import Purpose
from socialcard.security.keyring import Key, KeySet
from socialcard.security.schemas import Actor

CONSUMER = "proactive"


# formatting -----------------------------------------------------------------------------------


def format_amount(amount_minor: int) -> str:
    """Tenge with thin grouping, tiyn only when present.

    >>> format_amount(6933000), format_amount(2945325)
    ('69 330 ₸', '29 453,25 ₸')
    """
    major, minor = divmod(amount_minor, 100)
    text = f"{major:,}".replace(",", " ")
    return f"{text},{minor:02d} ₸" if minor else f"{text} ₸"


def period_start(period: str) -> date:
    return eligibility.parse_period(period).start


def period_end(period: str) -> date:
    return eligibility.parse_period(period).end


class TextBook:
    """Message templates: edited rows over the built-in defaults, read once per job."""

    def __init__(self, session: Session) -> None:
        self.bodies = {(k, lang): body for k, by in DEFAULTS.items() for lang, body in by.items()}
        for row in repository.templates(session):
            self.bodies[(row.kind, row.language)] = row.body

    def text(self, kind: MessageKind, language: str, **values: str) -> str:
        return render(self.bodies[(kind, language_of(language))], values)

    def text_for(
        self, program_id: str | None, kind: MessageKind, language: str, **values: str
    ) -> str:
        """`text` for an offer of `program_id` (an outreach invitation has its own texts)."""
        return render(self.bodies[(text_kind(program_id, kind), language_of(language))], values)


def _offer_values(offer: Offer, language: str, link: str = "") -> dict[str, str]:
    return {
        "program": eligibility.program_title(offer.program_id, language),
        "amount": format_amount(offer.amount_minor),
        "deadline": offer.deadline_at.strftime("%d.%m.%Y"),
        "period": period_start(offer.period).strftime("%d.%m.%Y"),
        "link": link,
    }


# What an outbox row holds where a secret goes: the live link or code is made only when the
# message is handed to the gateway, so no operator reads it from the stored or shown body.
LINK_MARK = "⟨consent link⟩"
CODE_MARK = "⟨one-time code⟩"


def link_ref(offer_id: int, expires_at: datetime) -> str:
    """The outbox reference from which an offer's consent link is made at sending time."""
    return f"link:{offer_id}:{int(expires_at.timestamp())}"


def consent_url(offer_id: int, expires_at: datetime) -> str:
    """The citizen's signed link to an offer's consent page."""
    base = get_proactive_settings().public_base_url.rstrip("/")
    return f"{base}/consent/{links.make_token(offer_id, expires_at=expires_at)}"


def with_secret(session: Session, body: str, secret_ref: str | None) -> str:
    """The message as sent: its marker replaced by the live link or one-time code."""
    if not secret_ref:
        return body
    kind, _, rest = secret_ref.partition(":")
    if kind == "link":
        offer_id, _, expiry = rest.partition(":")
        url = consent_url(int(offer_id), datetime.fromtimestamp(int(expiry), tz=UTC))
        return body.replace(LINK_MARK, url)
    if kind == "code":
        return body.replace(CODE_MARK, security_codes.code_text(session, code_id=int(rest)))
    return body


def _queue(
    session: Session,
    book: TextBook,
    *,
    key: str,
    kind: MessageKind,
    offer: Offer | None,
    person_id: int | None,
    phone: str | None,
    language: str,
    values: dict[str, str],
    secret_ref: str | None = None,
) -> bool:
    """Queue one message unless its key exists (or there is no phone); True when queued."""
    if not phone or repository.message_key_exists(session, key):
        return False
    lang = language_of(language)
    session.add(
        Message(
            idempotency_key=key,
            offer_id=offer.id if offer else None,
            kind=kind,
            person_id=person_id,
            phone=phone,
            language=lang,
            body=book.text_for(offer.program_id if offer else None, kind, lang, **values),
            secret_ref=secret_ref,
        )
    )
    return True


def _queue_for_offer(
    session: Session, book: TextBook, offer: Offer, kind: MessageKind, **extra: str
) -> bool:
    contact = registry_service.contacts(session, [offer.person_id]).get(offer.person_id)
    if contact is None or contact.death_on is not None:
        return False  # the dead are never written to (the dispatcher checks again)
    phone = contact.phone
    lang = language_of(contact.language)
    values = {**_offer_values(offer, lang), **extra}
    return _queue(
        session,
        book,
        key=f"offer:{offer.id}:{kind.value}",
        kind=kind,
        offer=offer,
        person_id=offer.person_id,
        phone=phone,
        language=lang,
        values=values,
    )


# life and death ------------------------------------------------------------------------------


def holder_of(entity_type: str, entity_id: int) -> int | None:
    """The person a person benefit is for (None for a family benefit). A person benefit ends
    with its holder: it is never re-addressed to a relative."""
    return entity_id if entity_type == "person" else None


def deaths_among(session: Session, person_ids: Iterable[int | None]) -> dict[int, date]:
    """Which of these persons the registry records as dead now, with their death dates."""
    ids = sorted({p for p in person_ids if p is not None})
    if not ids:
        return {}
    return {
        person_id: life.death_on
        for person_id, life in registry_service.life_dates(session, ids).items()
        if life.death_on is not None
    }


def _death_of(offer: Offer, deaths: dict[int, date]) -> str | None:
    """Why an offer can no longer be answered or paid because of a death (None: all alive)."""
    if offer.person_id in deaths:
        return f"the recipient died on {deaths[offer.person_id].isoformat()}"
    holder = holder_of(offer.entity_type, offer.entity_id)
    if holder is not None and holder in deaths:
        return f"the person the offer is for died on {deaths[holder].isoformat()}"
    return None


def is_late(offer: Offer, now: datetime) -> bool:
    """An answer now would come after the offer's deadline (lapsed, or pending because the
    lapse job has not run yet). The deadline is the same instant the lapse job uses."""
    return offer.status == OfferStatus.LAPSED or (
        offer.status == OfferStatus.PENDING and offer.deadline_at <= now
    )


def _late(session: Session, offer: Offer) -> OfferLate:
    return OfferLate(
        f"offer {offer.id}: the deadline to answer was {offer.deadline_at:%d.%m.%Y %H:%M} UTC; "
        "an answer after it is not recorded",
        language=person_language(session, offer.person_id),
        deadline=offer.deadline_at.strftime("%d.%m.%Y"),
        details=[{"field": "offer_id", "reason": "answered after the deadline"}],
    )


# campaigns ------------------------------------------------------------------------------------


@dataclass
class OfferStats:
    """What happened to a batch of candidates."""

    eligible: int = 0
    offered: int = 0
    messages: int = 0
    receiving: int = 0
    pending: int = 0
    refused: int = 0
    deceased: int = 0
    already_offered: int = 0
    by_region: dict[str, int] = field(default_factory=dict)

    def add(self, other: OfferStats) -> None:
        for name in (
            "eligible",
            "offered",
            "messages",
            "receiving",
            "pending",
            "refused",
            "deceased",
            "already_offered",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for region, count in other.by_region.items():
            self.by_region[region] = self.by_region.get(region, 0) + count


def check_campaign_request(*, program_id: str, period: str) -> None:
    """The checks a campaign run starts with (program, its settings, the month, a rules run of
    the program possible in that month), made before it is queued: bad input is a 4xx then,
    not a failed job later."""
    eligibility.check_program(program_id)
    campaign_settings(program_id)
    eligibility.parse_period(period)
    rules_service.check_run_request(
        period=period, programs=[program_id], pack_path=eligibility.pack_path()
    )


def open_campaign(session: Session, *, program_id: str, period: str) -> Campaign:
    """The program's campaign for the month, created when missing (status `running`)."""
    if not is_outreach(program_id):
        eligibility.check_program(program_id)
    campaign_settings(program_id)
    eligibility.parse_period(period)
    campaign = repository.campaign_for(session, program_id, period)
    if campaign is None:
        campaign = Campaign(program_id=program_id, period=period, status="running")
        session.add(campaign)
        session.flush()
    return campaign


def close_campaign(session: Session, *, campaign_id: int, stats: OfferStats) -> CampaignRead:
    """Record a finished run's counts (the last run's, so a re-run does not double them)."""
    campaign = repository.campaign_by_id(session, campaign_id)
    if campaign is None:
        raise CampaignNotFound(f"no campaign {campaign_id}")
    campaign.status = "done"
    campaign.eligible = stats.eligible
    campaign.offered = len(
        repository.offered_entities(session, campaign.program_id, campaign.period)
    )
    campaign.skipped_receiving = stats.receiving
    campaign.skipped_pending = stats.pending
    campaign.skipped_refused = stats.refused
    campaign.skipped_deceased = stats.deceased
    campaign.finished_at = utcnow()
    campaign.eligible_by_region = json.dumps(stats.by_region, sort_keys=True)
    session.flush()
    return CampaignRead.model_validate(campaign)


def _blocked(
    session: Session,
    *,
    program_id: str,
    period: str,
    settings: CampaignSettings,
    now: datetime,
) -> dict[int, str]:
    """Entities that must not get an offer, with the reason (first reason wins)."""
    blocked: dict[int, str] = {}
    for entity_id in repository.offered_entities(session, program_id, period):
        blocked[entity_id] = "already_offered"
    for entity_id in repository.active_assignment_entities(session, program_id):
        blocked.setdefault(entity_id, "receiving")
    for entity_id in repository.pending_offer_entities(session, program_id):
        blocked.setdefault(entity_id, "pending")
    since = now - timedelta(days=settings.cooloff_days)
    for entity_id in repository.refused_entities_since(session, program_id, since):
        blocked.setdefault(entity_id, "refused")
    return blocked


def offer_candidates(
    session: Session,
    *,
    campaign: Campaign,
    candidates: Sequence[Candidate],
    blocked: dict[int, str],
    now: datetime,
    book: TextBook | None = None,
    source: CampaignSource = CampaignSource.BATCH,
) -> OfferStats:
    """Turn candidates into offers and queued offer messages, skipping blocked entities and
    deceased recipients. `blocked` is updated with the new offers."""
    settings = campaign_settings(campaign.program_id)
    book = book or TextBook(session)
    stats = OfferStats(eligible=len(candidates))
    contacts = registry_service.contacts(session, [c.person_id for c in candidates])
    # A person benefit of someone recorded dead is never offered (to them or to a relative).
    dead_holders = deaths_among(
        session, (holder_of(c.entity_type, c.entity_id) for c in candidates)
    )
    deadline = now + timedelta(days=settings.consent_days)
    remind = (
        deadline - timedelta(days=settings.reminder_days_before)
        if settings.reminder_days_before
        else None
    )
    rows: list[dict[str, Any]] = []
    chosen: dict[int, Candidate] = {}
    for candidate in candidates:
        stats.by_region[candidate.region_kato] = stats.by_region.get(candidate.region_kato, 0) + 1
        reason = blocked.get(candidate.entity_id)
        contact = contacts.get(candidate.person_id)
        if reason is None and (
            contact is None
            or contact.death_on is not None
            or holder_of(candidate.entity_type, candidate.entity_id) in dead_holders
        ):
            reason = "deceased"
        if reason is not None:
            setattr(stats, reason, getattr(stats, reason) + 1)
            continue
        if candidate.entity_id in chosen:
            continue
        chosen[candidate.entity_id] = candidate
        rows.append(
            {
                "campaign_id": campaign.id,
                "program_id": candidate.program_id,
                "period": candidate.period,
                "entity_type": candidate.entity_type,
                "entity_id": candidate.entity_id,
                "family_id": candidate.family_id,
                "person_id": candidate.person_id,
                "region_kato": candidate.region_kato,
                "amount_minor": candidate.amount_minor,
                "program_version": candidate.program_version,
                "legal_basis": candidate.legal_basis,
                "explanation": candidate.explanation,
                "source": source.value,
                "status": OfferStatus.PENDING.value,
                "created_at": now,
                "deadline_at": deadline,
                "remind_at": remind,
            }
        )
    ids = repository.insert_offers(session, rows)
    stats.offered = len(ids)
    expires = links.link_expiry(deadline, get_proactive_settings().link_ttl_hours, now)
    messages: list[dict[str, Any]] = []
    deadline_text = deadline.strftime("%d.%m.%Y")
    titles = {lang: eligibility.program_title(campaign.program_id, lang) for lang in LANGUAGES}
    for entity_id, offer_id in ids.items():
        blocked[entity_id] = "already_offered"
        candidate = chosen[entity_id]
        contact = contacts[candidate.person_id]
        phone = contact.phone
        if not phone:
            continue
        lang = language_of(contact.language)
        values = {
            "program": titles[lang],
            "amount": format_amount(candidate.amount_minor),
            "deadline": deadline_text,
            "link": LINK_MARK,
        }
        messages.append(
            {
                "idempotency_key": f"offer:{offer_id}:offer",
                "offer_id": offer_id,
                "kind": MessageKind.OFFER.value,
                "person_id": candidate.person_id,
                "phone": phone,
                "language": lang,
                "body": book.text_for(campaign.program_id, MessageKind.OFFER, lang, **values),
                "secret_ref": link_ref(offer_id, expires),
                "status": MessageStatus.QUEUED.value,
                "attempts": 0,
                "created_at": now,
            }
        )
    repository.insert_messages(session, messages)
    stats.messages = len(messages)
    return stats


def blocked_entities(session: Session, *, program_id: str, period: str) -> dict[int, str]:
    """The entities a campaign run must skip (see `offer_candidates`)."""
    return _blocked(
        session,
        program_id=program_id,
        period=period,
        settings=campaign_settings(program_id),
        now=utcnow(),
    )


def get_campaign(session: Session, *, campaign_id: int) -> CampaignRead:
    """One campaign's counts."""
    campaign = repository.campaign_by_id(session, campaign_id)
    if campaign is None:
        raise CampaignNotFound(
            f"no campaign {campaign_id}", details=[{"field": "campaign_id", "reason": "unknown"}]
        )
    return CampaignRead.model_validate(campaign)


def list_campaigns(session: Session, *, limit: int = 100) -> list[CampaignRead]:
    """The latest campaigns."""
    return [CampaignRead.model_validate(c) for c in repository.campaigns(session, limit=limit)]


# sending --------------------------------------------------------------------------------------


# What each kind of offer message needs of its offer when it is handed to the gateway; kinds
# not listed need only a living recipient (and holder): an end notice, the answer to the
# citizen's own SMS (help on an unclear reply, the reply to a late one), a sign-in code.
_SEND_WHEN: dict[str, frozenset[str]] = {
    MessageKind.OFFER: frozenset({OfferStatus.PENDING}),
    MessageKind.REMINDER: frozenset({OfferStatus.PENDING}),
    MessageKind.CODE: frozenset({OfferStatus.PENDING}),
    MessageKind.LAPSED: frozenset({OfferStatus.LAPSED}),
    MessageKind.CONFIRMATION: frozenset({OfferStatus.AGREED}),
    MessageKind.REFUSAL: frozenset({OfferStatus.REFUSED}),
}
# Kinds that ask for an answer: pointless (and misleading) once the deadline has passed.
_BEFORE_DEADLINE = frozenset({MessageKind.OFFER, MessageKind.REMINDER, MessageKind.CODE})


def _hold_reason(
    message: Message, offer: Offer | None, deaths: dict[int, date], now: datetime
) -> str | None:
    """Why a message must not be sent now (None: send it)."""
    if message.person_id is not None and message.person_id in deaths:
        return f"not sent: the recipient died on {deaths[message.person_id].isoformat()}"
    if offer is None:
        return None
    holder = holder_of(offer.entity_type, offer.entity_id)
    if holder is not None and holder in deaths and message.kind != MessageKind.ENDED:
        return f"not sent: the person the offer is for died on {deaths[holder].isoformat()}"
    wanted = _SEND_WHEN.get(message.kind)
    if wanted is not None and offer.status not in wanted:
        return f"not sent: the offer is {offer.status}"
    if message.kind in _BEFORE_DEADLINE and offer.deadline_at <= now:
        return "not sent: the offer's deadline has passed"
    return None


def _hold_back(session: Session, rows: Sequence[Message], now: datetime) -> dict[int, str]:
    """The messages among `rows` that must not be sent, with the reason, read at this moment
    from the registry (a death recorded after queueing, its event not yet processed) and from
    the offers."""
    offers = repository.offers_by_ids(session, (m.offer_id for m in rows if m.offer_id))
    deaths = deaths_among(
        session,
        itertools.chain(
            (m.person_id for m in rows),
            (holder_of(o.entity_type, o.entity_id) for o in offers.values()),
        ),
    )
    held: dict[int, str] = {}
    for message in rows:
        offer = offers.get(message.offer_id) if message.offer_id else None
        reason = _hold_reason(message, offer, deaths, now)
        if reason is not None:
            held[message.id] = reason
    return held


def claim_messages(session: Session, *, limit: int, now: datetime) -> list[OutgoingSms]:
    """Messages to send now, marked `sending` (kept on retry: same key, provider dedupes).

    Each is checked at this moment against its recipient's life and its offer's state: one to
    a person recorded dead, or about an offer that no longer stands (cancelled, answered, past
    its deadline, or for a holder who died), is `cancelled` with the reason and never sent."""
    while True:
        rows = repository.messages_to_send(session, now, limit)
        if not rows:
            return []
        held = _hold_back(session, rows, now)
        repository.update_messages(
            session,
            [
                {
                    "id": message_id,
                    "status": MessageStatus.CANCELLED.value,
                    "last_error": reason[:300],
                    "next_attempt_at": None,
                }
                for message_id, reason in held.items()
            ],
        )
        rows = [m for m in rows if m.id not in held]
        if rows:
            break  # else the next batch: the cancelled ones no longer match
    repository.set_message_status(
        session, [m.id for m in rows if m.status != MessageStatus.SENDING], MessageStatus.SENDING
    )
    return [
        OutgoingSms(
            key=m.idempotency_key, phone=m.phone, body=with_secret(session, m.body, m.secret_ref)
        )
        for m in rows
    ]


def record_results(session: Session, *, results: Iterable[Any], now: datetime) -> dict[str, int]:
    """Store what the gateway answered: sent (with the provider id) or failed (retry later)."""
    settings = get_proactive_settings()
    by_key = {r.key: r for r in results}
    rows = repository.messages_by_keys(session, list(by_key))
    updates: list[dict[str, Any]] = []
    counts = {"sent": 0, "failed": 0}
    for message in rows:
        result = by_key[message.idempotency_key]
        attempts = message.attempts + 1
        if result.ok:
            counts["sent"] += 1
            updates.append(
                {
                    "id": message.id,
                    "status": (
                        MessageStatus.DELIVERED if result.delivered else MessageStatus.SENT
                    ).value,
                    "provider_message_id": result.provider_id,
                    "sent_at": now,
                    "delivered_at": now if result.delivered else None,
                    "attempts": attempts,
                    "last_error": None,
                }
            )
        else:
            counts["failed"] += 1
            retry = result.retryable and attempts < settings.sms_max_attempts * 4
            updates.append(
                {
                    "id": message.id,
                    "status": MessageStatus.FAILED.value,
                    "attempts": attempts,
                    "last_error": (result.error or "")[:300],
                    "next_attempt_at": now + timedelta(seconds=30 * attempts) if retry else None,
                }
            )
    repository.update_messages(session, updates)
    return counts


def send_claimed(gateway: Gateway, messages: Sequence[OutgoingSms]) -> list[Any]:
    """Hand claimed messages to the gateway (no database work: runs between two commits)."""
    results = gateway.send_many(messages)
    crashpoint("send_after_gateway")
    return results


def record_receipt(session: Session, *, provider_id: str, status: str, now: datetime) -> bool:
    """A delivery receipt: delivered or failed; False when no message has that id."""
    message = repository.message_by_provider_id(session, provider_id)
    if message is None:
        return False
    if status == "delivered":
        message.status = MessageStatus.DELIVERED
        message.delivered_at = message.delivered_at or now
    elif message.status != MessageStatus.DELIVERED:
        message.status = MessageStatus.FAILED
        message.last_error = "provider reported a delivery failure"
        message.next_attempt_at = None
    session.flush()
    return True


# consent --------------------------------------------------------------------------------------


def _text_shown(session: Session, offer: Offer) -> str:
    message = repository.offer_message(session, offer.id)
    if message is not None:
        return message.body
    return offer_page_text(session, offer)


def offer_page_text(session: Session, offer: Offer) -> str:
    """The offer as the citizen's page shows it, in their language."""
    contact = registry_service.contacts(session, [offer.person_id]).get(offer.person_id)
    lang = language_of(contact.language if contact else None)
    return TextBook(session).text_for(
        offer.program_id, MessageKind.OFFER, lang, **_offer_values(offer, lang)
    )


def person_language(session: Session, person_id: int) -> str:
    contact = registry_service.contacts(session, [person_id]).get(person_id)
    return language_of(contact.language if contact else None)


def decide(
    session: Session,
    *,
    offer_id: int,
    decision: ConsentDecision,
    channel: Channel,
    actor: str,
    text_shown: str | None = None,
    reply: str | None = None,
    reason: str | None = None,
    iban: str | None = None,
    now: datetime | None = None,
) -> OfferRead:
    """Record an answer to a pending offer; on agreement assign and order the payment.

    Answering again with the same decision is a no-op; a different answer to a closed offer is
    OfferClosed (409); an answer after the deadline is OfferLate (409), whether or not the
    lapse job has run; an answer for a recipient or a holder recorded dead is OfferClosed.
    """
    now = now or utcnow()
    offer = repository.offer_by_id(session, offer_id)
    if offer is None:
        raise OfferNotFound(
            f"no offer {offer_id}", details=[{"field": "offer_id", "reason": "unknown"}]
        )
    wanted = OfferStatus.AGREED if decision is ConsentDecision.AGREE else OfferStatus.REFUSED
    if offer.status == wanted:
        return OfferRead.model_validate(offer)
    if is_late(offer, now):
        raise _late(session, offer)
    if offer.status != OfferStatus.PENDING:
        raise OfferClosed(
            f"offer {offer_id} is already {offer.status}",
            details=[{"field": "offer_id", "reason": f"offer is {offer.status}"}],
        )
    died = _death_of(
        offer,
        deaths_among(session, (offer.person_id, holder_of(offer.entity_type, offer.entity_id))),
    )
    if died is not None:
        raise OfferClosed(
            f"offer {offer_id} no longer stands: {died}",
            details=[{"field": "offer_id", "reason": died}],
        )
    destination = Destination.WALLET
    normalized_iban = None
    if iban:
        normalized_iban = _checked_iban(iban)
        destination = Destination.BANK
    session.add(
        Consent(
            offer_id=offer.id,
            decision=decision.value,
            channel=channel.value,
            actor=actor[:100],
            text_shown=text_shown if text_shown is not None else _text_shown(session, offer),
            reply=reply,
            reason=reason,
            at=now,
        )
    )
    offer.status = wanted
    offer.decided_at = now
    book = TextBook(session)
    if decision is ConsentDecision.AGREE and is_outreach(offer.program_id):
        # An invitation accepted: nothing is assigned or paid; the case worker takes over.
        _queue_for_offer(session, book, offer, MessageKind.CONFIRMATION)
    elif decision is ConsentDecision.AGREE:
        assignment = _assign(session, offer, destination, normalized_iban, now)
        _order_payment(session, assignment, offer.period, offer.amount_minor)
        _queue_for_offer(session, book, offer, MessageKind.CONFIRMATION)
    else:
        _queue_for_offer(session, book, offer, MessageKind.REFUSAL)
    session.flush()
    crashpoint("consent_before_commit")
    return OfferRead.model_validate(offer)


def _assign(
    session: Session, offer: Offer, destination: Destination, iban: str | None, now: datetime
) -> Assignment:
    existing = repository.assignment_for_offer(session, offer.id)
    if existing is not None:
        return existing
    settings = campaign_settings(offer.program_id)
    assignment = Assignment(
        offer_id=offer.id,
        program_id=offer.program_id,
        program_version=offer.program_version,
        entity_type=offer.entity_type,
        entity_id=offer.entity_id,
        family_id=offer.family_id,
        person_id=offer.person_id,
        region_kato=offer.region_kato,
        amount_minor=offer.amount_minor,
        recurring=settings.recurring,
        from_on=period_start(offer.period),
        until_on=None if settings.recurring else period_end(offer.period),
        legal_basis=offer.legal_basis,
        explanation=offer.explanation,
        destination_kind=destination.value,
        iban=iban,
        status=AssignmentStatus.ACTIVE.value,
        created_at=now,
    )
    session.add(assignment)
    session.flush()
    return assignment


def _order_payment(
    session: Session, assignment: Assignment, period: str, amount_minor: int
) -> PaymentOrder | None:
    key = f"assignment:{assignment.id}:{period}"
    if repository.payment_order_by_key(session, key) is not None or amount_minor <= 0:
        return None
    order = PaymentOrder(
        idempotency_key=key,
        assignment_id=assignment.id,
        person_id=assignment.person_id,
        program_id=assignment.program_id,
        region_kato=assignment.region_kato,
        period=period,
        amount_minor=amount_minor,
        destination_kind=assignment.destination_kind,
        iban=assignment.iban,
        status=PaymentStatus.PENDING.value,
    )
    session.add(order)
    session.flush()
    return order


def normalize_phone(raw: str) -> str:
    """Digits with a leading +, the form stored in the registry.

    >>> normalize_phone(" 8 (701) 123-45-67 "), normalize_phone("+77011234567")
    ('+77011234567', '+77011234567')
    """
    digits = "".join(ch for ch in raw if ch.isdigit())
    if len(digits) == 11 and digits.startswith("8"):
        digits = "7" + digits[1:]
    return "+" + digits


def receive_reply(
    session: Session,
    *,
    provider_message_id: str,
    phone: str,
    body: str,
    now: datetime | None = None,
) -> InboundRead:
    """An inbound SMS: a decision on the sender's pending offer, a help message when the reply
    is not understood, or recorded and ignored when the number has no pending offer."""
    from socialcard.proactive.replies import parse_reply

    now = now or utcnow()
    existing = repository.inbound_by_provider_id(session, provider_message_id)
    if existing is not None:
        return InboundRead.model_validate(existing)
    number = normalize_phone(phone)
    decision = parse_reply(body)
    offer = repository.pending_offer_for_phone(session, number, now)
    late = False
    if offer is None and decision is not None:
        offer = repository.late_offer_for_phone(session, number, now)
        late = offer is not None
    if offer is not None and _death_of(
        offer,
        deaths_among(session, (offer.person_id, holder_of(offer.entity_type, offer.entity_id))),
    ):
        offer, late = None, False  # nothing is decided for, or written to, the dead
    if offer is None:
        outcome = InboundOutcome.NO_OFFER
    elif late:
        outcome = InboundOutcome.LATE
    elif decision is None:
        outcome = InboundOutcome.HELP
    else:
        outcome = InboundOutcome.DECIDED
    inbound = InboundReply(
        provider_message_id=provider_message_id,
        phone=number,
        # PostgreSQL text cannot hold NUL; the reply is still recorded, the NUL made visible.
        body=body[:500].replace("\x00", "\ufffd"),
        outcome=outcome.value,
        offer_id=offer.id if offer else None,
        received_at=now,
    )
    session.add(inbound)
    session.flush()
    if offer is not None and late:
        _refuse_late(session, offer=offer, inbound=inbound, phone=number, now=now)
    elif offer is not None and decision is not None:
        decide(
            session,
            offer_id=offer.id,
            decision=decision,
            channel=Channel.SMS,
            actor=f"person:{offer.person_id}",
            reply=body[:500],
            now=now,
        )
    elif offer is not None:
        _queue(
            session,
            TextBook(session),
            key=f"inbound:{inbound.id}:help",
            kind=MessageKind.HELP,
            offer=offer,
            person_id=offer.person_id,
            phone=number,
            language=person_language(session, offer.person_id),
            values={},
        )
        session.flush()
    return InboundRead.model_validate(inbound)


def _refuse_late(
    session: Session, *, offer: Offer, inbound: InboundReply, phone: str, now: datetime
) -> None:
    """An SMS answer after the deadline: no consent, no payment; the offer lapses now if the
    lapse job has not run (without the lapse notice: the reply says it), and the citizen is
    told in their language that the answer came too late."""
    if offer.status == OfferStatus.PENDING:
        _lapse(session, None, offer, now)
    language = person_language(session, offer.person_id)
    _queue(
        session,
        TextBook(session),
        key=f"inbound:{inbound.id}:late",
        kind=MessageKind.LATE,
        offer=offer,
        person_id=offer.person_id,
        phone=phone,
        language=language,
        values=_offer_values(offer, language),
    )
    session.flush()


def offer_for_link(session: Session, *, token: str, now: datetime | None = None) -> Offer:
    """The offer a signed link opens (InvalidLink / ExpiredLink / OfferNotFound); a genuine
    link that expired with its offer's deadline is OfferLate (the page says so)."""
    now = now or utcnow()
    try:
        offer_id = links.verify_token(token, now=now)
    except ExpiredLink as expired:
        late = repository.offer_by_id(session, expired.offer_id) if expired.offer_id else None
        if late is not None and is_late(late, now):
            raise _late(session, late) from None
        raise
    offer = repository.offer_by_id(session, offer_id)
    if offer is None:
        raise OfferNotFound("this offer no longer exists")
    return offer


ACCOUNT_CODE = "consent_account"  # one-time codes confirming a bank account for an offer


@dataclass(frozen=True)
class LinkOutcome:
    """What the consent page answers: decided, or a code sent / refused for the account."""

    status: str  # decided | code_sent | code_wrong | code_expired | no_phone
    decision: str | None = None
    attempts_left: int = 0


def decide_by_link(
    session: Session,
    *,
    token: str,
    decision: ConsentDecision | None,
    iban: str | None = None,
    code: str | None = None,
) -> LinkOutcome:
    """The citizen's answer from the signed link's page.

    Agreeing to be paid into the social wallet, or refusing, decides at once. A bank account
    is only taken once the citizen confirms it with the one-time code sent to the phone the
    registry holds for them: whoever opens a link (a forwarded SMS, an operator) cannot send
    the money elsewhere.
    """
    now = utcnow()
    offer = offer_for_link(session, token=token, now=now)
    if is_outreach(offer.program_id):
        iban = code = None  # an invitation pays nothing: no account to take
    subject = f"offer:{offer.id}"
    if code is not None:
        checked = security_codes.check(session, purpose=ACCOUNT_CODE, subject=subject, code=code)
        if checked.reason == "wrong":
            return LinkOutcome("code_wrong", attempts_left=checked.attempts_left)
        if checked.reason is not None or checked.payload is None:
            return LinkOutcome("code_expired")
        iban, decision = str(checked.payload["iban"]), ConsentDecision.AGREE
    elif decision is ConsentDecision.AGREE and iban:
        normalized = _checked_iban(iban)
        if is_late(offer, now):
            raise _late(session, offer)
        _ensure_pending(offer, ConsentDecision.AGREE)
        contact = registry_service.contacts(session, [offer.person_id]).get(offer.person_id)
        if contact is None or not contact.phone:
            return LinkOutcome("no_phone")
        code_id = security_codes.issue(
            session,
            purpose=ACCOUNT_CODE,
            subject=subject,
            person_id=offer.person_id,
            payload={"iban": normalized},
        )
        _queue(
            session,
            TextBook(session),
            key=f"code:{code_id}",
            kind=MessageKind.CODE,
            offer=offer,
            person_id=offer.person_id,
            phone=contact.phone,
            language=language_of(contact.language),
            values={
                "program": eligibility.program_title(
                    offer.program_id, language_of(contact.language)
                ),
                "code": CODE_MARK,
            },
            secret_ref=f"code:{code_id}",
        )
        session.flush()
        return LinkOutcome("code_sent")
    if decision is None:
        raise InvalidInput(
            "decision: agree or refuse", details=[{"field": "decision", "reason": "required"}]
        )
    decide(
        session,
        offer_id=offer.id,
        decision=decision,
        channel=Channel.LINK,
        actor=f"person:{offer.person_id}",
        text_shown=offer_page_text(session, offer),
        iban=iban if decision is ConsentDecision.AGREE else None,
        now=now,
    )
    return LinkOutcome("decided", decision=decision.value)


def _checked_iban(iban: str) -> str:
    try:
        return validate_kz_iban(iban)
    except IbanError as exc:
        raise InvalidIban(f"iban: {exc}", details=[{"field": "iban", "reason": str(exc)}]) from None


def _ensure_pending(offer: Offer, decision: ConsentDecision) -> None:
    wanted = OfferStatus.AGREED if decision is ConsentDecision.AGREE else OfferStatus.REFUSED
    if offer.status != OfferStatus.PENDING and offer.status != wanted:
        raise OfferClosed(
            f"offer {offer.id} is already {offer.status}",
            details=[{"field": "offer_id", "reason": f"offer is {offer.status}"}],
        )


@dataclass(frozen=True)
class AwaitingAnswer:
    """A delivered offer SMS whose offer has no answer yet."""

    message_id: int
    phone: str
    language: str
    program_id: str
    entity_id: int
    period: str


def awaiting_answer(session: Session, *, period: str) -> list[AwaitingAnswer]:
    """The month's delivered offer messages whose offers are still pending."""
    return [
        AwaitingAnswer(m.id, m.phone, m.language, o.program_id, o.entity_id, o.period)
        for m, o in repository.delivered_offer_messages(session, period)
    ]


def last_deadline(session: Session, *, period: str) -> datetime | None:
    """When the last of the month's pending offers runs out (None when none is pending)."""
    return repository.pending_deadlines(session, period)


# deadlines, accrual, endings ------------------------------------------------------------------


def process_deadlines(
    session: Session, *, now: datetime | None = None, limit: int = 10_000
) -> dict[str, int]:
    """Send due reminders and lapse offers whose deadline passed in silence."""
    now = now or utcnow()
    book = TextBook(session)
    reminded = 0
    for offer in repository.offers_to_remind(session, now, limit):
        offer.reminded_at = now
        reminded += int(_queue_for_offer(session, book, offer, MessageKind.REMINDER))
    lapsed = 0
    for offer in repository.offers_past_deadline(session, now, limit):
        _lapse(session, book, offer, now)
        lapsed += 1
    session.flush()
    return {"reminded": reminded, "lapsed": lapsed}


def _lapse(session: Session, book: TextBook | None, offer: Offer, now: datetime) -> None:
    """A pending offer whose deadline passed lapses; with a `book`, the recipient is told."""
    offer.status = OfferStatus.LAPSED
    offer.decided_at = now
    if book is not None:
        _queue_for_offer(session, book, offer, MessageKind.LAPSED)


def end_assignment(
    session: Session,
    *,
    assignment: Assignment,
    reason: str,
    on: date,
    notify: bool = True,
    notice: str | None = None,
) -> bool:
    """End an active assignment with a notice to the recipient (its words: `notice`, else the
    reason's); False if already ended."""
    if assignment.status != AssignmentStatus.ACTIVE:
        return False
    assignment.status = AssignmentStatus.ENDED
    assignment.until_on = on
    assignment.end_reason = reason
    if notify:
        offer = repository.offer_by_id(session, assignment.offer_id)
        if offer is not None:
            lang = person_language(session, assignment.person_id)
            words = END_REASONS.get(notice or reason, END_REASONS["not_eligible"])
            _queue_for_offer(
                session, TextBook(session), offer, MessageKind.ENDED, reason=words[lang]
            )
    session.flush()
    return True


def accrue(
    session: Session, *, period: str, program_id: str | None = None, online: bool = False
) -> dict[str, int]:
    """Create the month's payment orders for recurring assignments still eligible; end those no
    longer eligible, with a notice.

    Eligibility and amounts come from the rules service's stored run of the month for each
    program it covers (one pass over its eligible decisions); programs without a stored run,
    or all with `online`, re-evaluate each family online."""
    eligibility.parse_period(period)
    start = period_start(period)
    counts = {"ordered": 0, "ended": 0, "kept": 0}
    assignments = [
        a
        for a in repository.active_recurring_assignments(session, program_id)
        if a.from_on <= start
    ]
    # A death recorded whose event is not processed yet: nothing more is ordered for the dead.
    deaths = deaths_among(
        session,
        itertools.chain.from_iterable(
            (a.person_id, holder_of(a.entity_type, a.entity_id)) for a in assignments
        ),
    )
    living: list[Assignment] = []
    for assignment in assignments:
        if _end_for_death(session, assignment, deaths):
            counts["ended"] += 1
        elif assignment.status == AssignmentStatus.ACTIVE:
            living.append(assignment)
    assignments = living
    programs = sorted({a.program_id for a in assignments})
    stored = {} if online else eligibility.stored_amounts(session, period=period, programs=programs)
    amounts: dict[tuple[str, int], int] = {
        (program, entity): amount
        for program, by_entity in stored.items()
        for entity, amount in by_entity.items()
    }
    by_family: dict[int, list[Assignment]] = {}
    for assignment in assignments:
        if assignment.program_id in stored:
            continue
        by_family.setdefault(assignment.family_id or -assignment.person_id, []).append(assignment)
    for family_key, items in by_family.items():
        family_id = (
            family_key
            if family_key > 0
            else registry_service.current_family_id(session, person_id=items[0].person_id)
        )
        result = (
            eligibility.family_candidates(
                session,
                family_id=family_id,
                period=period,
                programs=sorted({a.program_id for a in items}),
            )
            if family_id is not None
            else eligibility.FamilyResult()
        )
        amounts.update({(c.program_id, c.entity_id): c.amount_minor for c in result.candidates})
    for assignment in assignments:
        amount = amounts.get((assignment.program_id, assignment.entity_id))
        if amount is None:
            counts["ended"] += int(
                end_assignment(session, assignment=assignment, reason="not_eligible", on=start)
            )
            continue
        if _order_payment(session, assignment, period, amount) is not None:
            counts["ordered"] += 1
        else:
            counts["kept"] += 1
    session.flush()
    return counts


# life events ----------------------------------------------------------------------------------


def _end_for_death(session: Session, assignment: Assignment, deaths: dict[int, date]) -> bool:
    """End an assignment whose recipient or (person benefit) holder is among `deaths`: the
    benefit ends with its holder and nothing is paid to the dead. The recipient is told only
    when alive (a parent whose child's benefit ends)."""
    holder = holder_of(assignment.entity_type, assignment.entity_id)
    if assignment.person_id in deaths:
        died_on = deaths[assignment.person_id]
    elif holder is not None and holder in deaths:
        died_on = deaths[holder]
    else:
        return False
    return end_assignment(
        session,
        assignment=assignment,
        reason="death",
        on=died_on,
        notify=assignment.person_id not in deaths,
        notice="holder_death",
    )


def cancel_for_death(
    session: Session, *, person_id: int, died_on: date, now: datetime
) -> dict[str, int]:
    """What a death stops: the person's assignments (and person benefits they held) end, their
    pending offers are cancelled, messages not yet sent to them or about those offers are
    cancelled, and unpaid orders to them or of a person benefit they held are cancelled."""
    counts = {"ended": 0, "offers_cancelled": 0, "messages_cancelled": 0, "orders_cancelled": 0}
    deaths = {person_id: died_on}
    for assignment in repository.active_assignments_of_person(session, person_id):
        counts["ended"] += int(_end_for_death(session, assignment, deaths))
    offer_ids: list[int] = []
    for offer in repository.pending_offers_of_person(session, person_id):
        offer.status = OfferStatus.CANCELLED
        offer.decided_at = now
        offer_ids.append(offer.id)
    counts["offers_cancelled"] = len(offer_ids)
    session.flush()
    reason = f"not sent: the recipient or the person the offer is for died on {died_on}"
    for message in repository.unsent_messages(session, person_id=person_id, offer_ids=offer_ids):
        if message.kind == MessageKind.ENDED and message.person_id != person_id:
            continue  # a living recipient's notice that the benefit ended
        message.status = MessageStatus.CANCELLED
        message.last_error = reason[:300]
        message.next_attempt_at = None
        counts["messages_cancelled"] += 1
    for order in repository.pending_orders_of_deceased(session, person_id):
        order.status = PaymentStatus.CANCELLED
        counts["orders_cancelled"] += 1
    session.flush()
    return counts


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def offer_for_family(
    session: Session,
    *,
    family_id: int,
    period: str,
    now: datetime,
    programs: Sequence[str] | None = None,
) -> dict[str, int]:
    """Re-evaluate one family online: offer what it newly qualifies for, end what it lost."""
    wanted = list(programs or sorted(all_campaign_settings()))
    result = eligibility.family_candidates(
        session, family_id=family_id, period=period, programs=wanted
    )
    counts = {"offered": 0, "ended": 0}
    book = TextBook(session)
    by_program: dict[str, list[Candidate]] = {}
    for candidate in result.candidates:
        by_program.setdefault(candidate.program_id, []).append(candidate)
    for program_id, candidates in by_program.items():
        campaign = open_campaign(session, program_id=program_id, period=period)
        blocked = _blocked_for(session, program_id, period, [c.entity_id for c in candidates], now)
        stats = offer_candidates(
            session,
            campaign=campaign,
            candidates=candidates,
            blocked=blocked,
            now=now,
            book=book,
            source=CampaignSource.EVENT,
        )
        counts["offered"] += stats.offered
    eligible = {(c.program_id, c.entity_id) for c in result.candidates}
    start = period_start(period)
    for assignment in repository.active_assignments_of_family(session, family_id):
        key = (assignment.program_id, assignment.entity_id)
        if (
            assignment.recurring
            and assignment.from_on <= start
            and key in result.evaluated
            and key not in eligible
        ):
            counts["ended"] += int(
                end_assignment(session, assignment=assignment, reason="not_eligible", on=start)
            )
    return counts


def _blocked_for(
    session: Session, program_id: str, period: str, entity_ids: Sequence[int], now: datetime
) -> dict[int, str]:
    settings = campaign_settings(program_id)
    since = now - timedelta(days=settings.cooloff_days)
    return repository.blocked_among(
        session, program_id=program_id, period=period, entity_ids=entity_ids, refused_since=since
    )


def process_events(
    session: Session, *, limit: int = 1000, now: datetime | None = None
) -> dict[str, int]:
    """Read the registry's life events from our cursor, re-evaluate only the affected families,
    end assignments of the deceased, and move the cursor (all in the caller's transaction)."""
    from socialcard.registry import events as registry_events

    now = now or utcnow()
    events = registry_events.read_events(session, consumer=CONSUMER, limit=limit)
    counts = {"events": len(events), "families": 0, "offered": 0, "ended": 0}
    if not events:
        return counts
    families: dict[tuple[int, str], None] = {}
    for event in events:
        month = _month(event.occurred_on)
        if event.kind == "death" and event.person_id is not None:
            stopped = cancel_for_death(
                session, person_id=event.person_id, died_on=event.occurred_on, now=now
            )
            for name, value in stopped.items():
                counts[name] = counts.get(name, 0) + value
        family_id = event.family_id
        if family_id is None and event.person_id is not None:
            family_id = registry_service.current_family_id(session, person_id=event.person_id)
        if family_id is not None:
            families[(family_id, month)] = None
    for family_id, month in families:
        done = offer_for_family(session, family_id=family_id, period=month, now=now)
        counts["offered"] += done["offered"]
        counts["ended"] += done["ended"]
    counts["families"] = len(families)
    registry_events.acknowledge(session, consumer=CONSUMER, position=events[-1].id)
    session.flush()
    return counts


# operators ------------------------------------------------------------------------------------


def funnel(
    session: Session, *, campaign_id: int | None = None, program_id: str | None = None
) -> list[FunnelRow]:
    """Per campaign and region: eligible, offered, delivered, agreed/refused/lapsed, assigned,
    paid."""
    rows = repository.funnel_rows(session, campaign_id=campaign_id, program_id=program_id)
    campaigns: dict[int, Campaign] = {}
    out: list[FunnelRow] = []
    for row in rows:
        campaign = campaigns.get(row["campaign_id"]) or repository.campaign_by_id(
            session, row["campaign_id"]
        )
        if campaign is None:
            continue
        campaigns[campaign.id] = campaign
        eligible_by_region = json.loads(campaign.eligible_by_region or "{}")
        out.append(
            FunnelRow(
                program_id=campaign.program_id,
                period=campaign.period,
                eligible=int(eligible_by_region.get(row["region_kato"], row["offered"])),
                **row,
            )
        )
    return out


def search_offers(
    session: Session,
    *,
    actor: Actor,
    purpose: Purpose,
    offer_id: int | None = None,
    person_id: int | None = None,
    program_id: str | None = None,
    campaign_id: int | None = None,
    status: str | None = None,
    region: str | None = None,
    page: int = 1,
    size: int = 50,
) -> OfferPage:
    """Find offers (audited: each recipient whose offer is shown)."""
    rows, total = repository.search_offers(
        session,
        offer_id=offer_id,
        person_id=person_id,
        program_id=program_id,
        campaign_id=campaign_id,
        status=status,
        region=region,
        offset=(page - 1) * size,
        limit=size,
    )
    security_service.record_access(
        session,
        actor=actor,
        action="proactive.offer.search",
        subject_type="person",
        subject_ids=sorted({o.person_id for o in rows}),
        purpose=purpose,
    )
    return OfferPage(
        items=[OfferRead.model_validate(o) for o in rows], page=page, size=size, total=total
    )


def offer_detail(session: Session, *, offer_id: int, actor: Actor, purpose: Purpose) -> OfferDetail:
    """An offer with its whole history (audited)."""
    offer = repository.offer_by_id(session, offer_id)
    if offer is None:
        raise OfferNotFound(
            f"no offer {offer_id}", details=[{"field": "offer_id", "reason": "unknown"}]
        )
    security_service.record_access(
        session,
        actor=actor,
        action="proactive.offer.read",
        subject_type="person",
        subject_ids=[offer.person_id],
        purpose=purpose,
    )
    return _detail(session, offer)


def _detail(session: Session, offer: Offer) -> OfferDetail:
    consent = repository.consent_for_offer(session, offer.id)
    assignment = repository.assignment_for_offer(session, offer.id)
    orders = repository.payment_orders_of_assignment(session, assignment.id) if assignment else []
    return OfferDetail(
        **OfferRead.model_validate(offer).model_dump(),
        messages=[
            MessageRead.model_validate(m) for m in repository.messages_of_offer(session, offer.id)
        ],
        consent=ConsentRead.model_validate(consent) if consent else None,
        assignment=AssignmentRead.model_validate(assignment) if assignment else None,
        payment_orders=[PaymentOrderRead.model_validate(o) for o in orders],
        overrides=[
            OverrideRead.model_validate(o) for o in repository.overrides_of_offer(session, offer.id)
        ],
    )


def override_offer(
    session: Session,
    *,
    offer_id: int,
    action: str,
    reason: str,
    actor: Actor,
    iban: str | None = None,
) -> OfferDetail:
    """An operator's manual decision on a pending offer, with a written reason (audited)."""
    from socialcard.proactive.errors import ReasonRequired

    if len(reason.strip()) < 10:
        raise ReasonRequired(
            "reason: write at least 10 characters",
            details=[{"field": "reason", "reason": "write at least 10 characters"}],
        )
    if iban:
        # Where money goes is the citizen's choice, confirmed by a code to their own phone
        # (the consent link); an operator agreeing for them pays into their social wallet.
        raise InvalidIban(
            "iban: an operator cannot choose the account; the citizen confirms a bank account "
            "on the consent page with a code sent to their registered phone",
            details=[{"field": "iban", "reason": "not accepted from an operator"}],
        )
    offer = repository.offer_by_id(session, offer_id)
    if offer is None:
        raise OfferNotFound(
            f"no offer {offer_id}", details=[{"field": "offer_id", "reason": "unknown"}]
        )
    if offer.status != OfferStatus.PENDING:
        raise OfferClosed(
            f"offer {offer_id} is already {offer.status}",
            details=[{"field": "offer_id", "reason": f"offer is {offer.status}"}],
        )
    if action == "cancel":
        offer.status = OfferStatus.CANCELLED
        offer.decided_at = utcnow()
    else:
        decide(
            session,
            offer_id=offer.id,
            decision=ConsentDecision.AGREE if action == "agree" else ConsentDecision.REFUSE,
            channel=Channel.OPERATOR,
            actor=f"operator:{actor.name}",
            reason=reason.strip(),
        )
    session.add(
        Override(
            offer_id=offer.id,
            action=action,
            reason=reason.strip(),
            actor_name=actor.name,
            actor_key_id=actor.key_id,
        )
    )
    security_service.record_access(
        session,
        actor=actor,
        action=f"proactive.offer.override.{action}",
        subject_type="person",
        subject_ids=[offer.person_id],
        purpose=Purpose.BENEFIT_ASSIGNMENT,
    )
    session.flush()
    return _detail(session, offer)


# templates ------------------------------------------------------------------------------------


def list_templates(session: Session) -> list[TemplateRead]:
    """Every message text, edited or built in."""
    edited = {(t.kind, t.language): t.body for t in repository.templates(session)}
    return [
        TemplateRead(
            kind=kind,
            language=lang,
            body=edited.get((kind, lang), body),
            edited=(kind, lang) in edited,
        )
        for kind, by_lang in DEFAULTS.items()
        for lang, body in by_lang.items()
    ]


def set_template(session: Session, *, kind: str, language: str, body: str) -> TemplateRead:
    """Replace a message text (placeholders checked)."""
    from socialcard.proactive.errors import InvalidTemplate

    if kind not in DEFAULTS:
        raise InvalidTemplate(
            f"kind: unknown message kind {kind!r}",
            details=[{"field": "kind", "reason": f"use one of {sorted(DEFAULTS)}"}],
        )
    if language not in LANGUAGES:
        raise InvalidTemplate(
            f"language: {language!r} is not kk, ru or en",
            details=[{"field": "language", "reason": "use kk, ru or en"}],
        )
    check_template(body)
    row = repository.template(session, kind, language)
    if row is None:
        row = Template(kind=kind, language=language, body=body)
        session.add(row)
    else:
        row.body = body
    session.flush()
    return TemplateRead(kind=kind, language=language, body=body, edited=True)


# payment orders and recipients (consumed by the wallet) ---------------------------------------


def receiving(session: Session, *, program_id: str, period: str) -> dict[int, int]:
    """Who is receiving a program in a month: entity id -> the recipient who agreed (active
    assignments that started by the month's end)."""
    return repository.active_assignment_recipients(session, program_id, period_end(period))


def pending_payment_orders(
    session: Session, *, limit: int = 1000, destination: Destination | None = None
) -> list[PaymentOrderRead]:
    """Payment orders waiting to be paid, oldest first, with the decision's entity (all, or
    those to one destination: the wallet's own, or bank transfers). Orders to a person, or of
    a person benefit for a person, that the registry records as dead are left out even before
    the death's event cancels them."""
    rows = repository.pending_payment_orders(
        session, limit, destination.value if destination else None
    )
    deaths = deaths_among(
        session,
        itertools.chain.from_iterable(
            (o.person_id, holder_of(entity_type, entity_id)) for o, entity_type, entity_id in rows
        ),
    )
    return [
        PaymentOrderRead.model_validate(o).model_copy(
            update={"entity_type": entity_type, "entity_id": entity_id}
        )
        for o, entity_type, entity_id in rows
        if o.person_id not in deaths and holder_of(entity_type, entity_id) not in deaths
    ]


def orders_for_payer(session: Session, *, actor: Actor, limit: int) -> list[PaymentOrderRead]:
    """The bank transfers waiting for the paying bank (audited per recipient: they carry the
    person and the account). Orders into social wallets are the wallet's, never a payer's."""
    orders = pending_payment_orders(session, limit=limit, destination=Destination.BANK)
    security_service.record_access(
        session,
        actor=actor,
        action="proactive.payment_order.read",
        subject_type="person",
        subject_ids=sorted({o.person_id for o in orders}),
        purpose=Purpose.PAYMENT,
    )
    return orders


def mark_payment_order_paid(
    session: Session,
    *,
    order_id: int,
    reference: str,
    now: datetime | None = None,
    actor: Actor | None = None,
    destination: Destination | None = None,
) -> PaymentOrderRead:
    """Mark an order paid with the payer's reference (repeating the same reference is a no-op;
    audited). `destination` limits it to one kind of order: a bank marks only bank transfers
    paid, so no payer can mark a wallet order paid and keep it from ever being paid."""
    order = repository.payment_order_by_id(session, order_id)
    if order is None or (destination is not None and order.destination_kind != destination):
        raise PaymentOrderNotFound(
            f"no payment order {order_id}"
            + (f" to a {destination.value} account" if destination is not None else ""),
            details=[{"field": "order_id", "reason": "unknown"}],
        )
    if order.status == PaymentStatus.PAID:
        if order.external_reference == reference:
            return PaymentOrderRead.model_validate(order)
        raise PaymentOrderConflict(
            f"payment order {order_id} is already paid under another reference",
            details=[{"field": "reference", "reason": "already paid"}],
        )
    if order.status == PaymentStatus.CANCELLED:
        raise PaymentOrderConflict(
            f"payment order {order_id} is cancelled (a death stopped it) and must not be paid",
            details=[{"field": "order_id", "reason": "cancelled"}],
        )
    order.status = PaymentStatus.PAID
    order.paid_at = now or utcnow()
    order.external_reference = reference
    session.flush()
    security_service.record_access(
        session,
        actor=actor or security_service.system_actor("job:payment-orders"),
        action="proactive.payment_order.paid",
        subject_type="person",
        subject_ids=[order.person_id],
        purpose=Purpose.PAYMENT,
        detail=f"order {order.id}: {order.amount_minor} to {order.destination_kind}, {reference}",
    )
    return PaymentOrderRead.model_validate(order)


# citizen link and provider webhooks -----------------------------------------------------------


@dataclass(frozen=True)
class LinkView:
    """What the consent page shows."""

    offer_id: int
    language: str
    text: str
    status: str  # the offer's, or `late` when its deadline has passed unanswered
    deadline: str = ""
    outreach: bool = False  # an invitation to a support centre, not a benefit


def link_view(session: Session, *, token: str) -> LinkView:
    """The offer behind a signed link, as its page shows it."""
    now = utcnow()
    offer = offer_for_link(session, token=token, now=now)
    return LinkView(
        offer_id=offer.id,
        language=person_language(session, offer.person_id),
        text=offer_page_text(session, offer),
        status="late" if is_late(offer, now) else offer.status,
        deadline=offer.deadline_at.strftime("%d.%m.%Y"),
        outreach=is_outreach(offer.program_id),
    )


def check_secrets() -> None:
    """Refuse, in production, a webhook secret that is public or short (a server's start)."""
    explicit = get_proactive_settings().webhook_secret
    if explicit is None or get_settings().environment != "production":
        return
    value = explicit.get_secret_value()
    if value in keyring.KNOWN_PUBLIC or len(value) < keyring.MIN_PRODUCTION_SECRET:
        raise keyring.SecretsError(
            "SOCIALCARD_PROACTIVE__WEBHOOK_SECRET is a public or short secret; production "
            f"needs at least {keyring.MIN_PRODUCTION_SECRET} random characters"
        )


def webhook_keys() -> KeySet:
    """The keys a provider callback may be signed with: the secret configured for the
    provider first (when set), then the keyring's `sms_webhook` keys (rotation)."""
    keys = keyring.keyset("sms_webhook")
    explicit = get_proactive_settings().webhook_secret
    if explicit is not None:
        keys = keys.with_current(Key(id="configured", secret=explicit.get_secret_value().encode()))
    return keys


def webhook_signature(body: bytes) -> str:
    """HMAC-SHA256 (hex) of a callback body under the current webhook key."""
    return webhook_keys().current.mac(body).hex()


def verify_webhook(body: bytes, signature: str | None) -> None:
    """BadSignature unless the provider signed this body with one of our webhook keys."""
    from socialcard.proactive.errors import BadSignature

    try:
        mac = bytes.fromhex((signature or "").strip())
    except ValueError:
        mac = b""
    if not mac or not webhook_keys().verify_any(body, mac):
        raise BadSignature(
            "the X-Signature header does not match the body",
            details=[{"field": "X-Signature", "reason": "missing or wrong HMAC-SHA256"}],
        )


def payments_by_program_region(session: Session, *, period: str) -> list[dict[str, Any]]:
    """The month's payment orders by program, region and status (counts and tiyn)."""
    return repository.payments_by_program_region(session, period=period)


# --- the citizen's own pages (the person signed in as themselves: not an operator read) ------


def offers_of_person(session: Session, *, person_id: int, limit: int = 50) -> list[OfferRead]:
    """A person's own offers, newest first."""
    rows, _ = repository.search_offers(
        session,
        offer_id=None,
        person_id=person_id,
        program_id=None,
        campaign_id=None,
        status=None,
        region=None,
        offset=0,
        limit=limit,
    )
    return [OfferRead.model_validate(row) for row in rows]


def offer_text_for(session: Session, *, offer_id: int, person_id: int) -> str:
    """The offer's text in the person's language (what the SMS said); OfferNotFound unless
    the offer is the person's."""
    offer = repository.offer_by_id(session, offer_id)
    if offer is None or offer.person_id != person_id:
        raise OfferNotFound(
            f"no offer {offer_id}", details=[{"field": "offer_id", "reason": "unknown"}]
        )
    return offer_page_text(session, offer)


def decide_as_citizen(
    session: Session, *, offer_id: int, person_id: int, decision: ConsentDecision
) -> OfferRead:
    """The citizen's answer from their signed-in page (the offer must be theirs)."""
    text = offer_text_for(session, offer_id=offer_id, person_id=person_id)
    return decide(
        session,
        offer_id=offer_id,
        decision=decision,
        channel=Channel.LINK,
        actor=f"person:{person_id}",
        text_shown=text,
    )


def queue_sms(
    session: Session, *, key: str, person_id: int, phone: str, language: str, body: str
) -> bool:
    """Queue one message (outside an offer, e.g. a sign-in code) for the outbox dispatcher."""
    if repository.message_key_exists(session, key):
        return False
    session.add(
        Message(
            idempotency_key=key,
            offer_id=None,
            kind=MessageKind.SIGN_IN,
            person_id=person_id,
            phone=phone,
            language=language_of(language),
            body=body,
        )
    )
    session.flush()
    return True


# outreach: invitations ride on offers ----------------------------------------------------------


@dataclass(frozen=True)
class CampaignOffer:
    offer_id: int
    entity_id: int
    person_id: int
    region_kato: str


def campaign_offers(session: Session, *, campaign_id: int) -> list[CampaignOffer]:
    """Every offer of a campaign (ids only: no personal data is read)."""
    return [
        CampaignOffer(int(o), int(e), int(p), str(r))
        for o, e, p, r in repository.campaign_offer_rows(session, campaign_id)
    ]


def offer_statuses(session: Session, *, offer_ids: Sequence[int]) -> dict[int, str]:
    """The status of each offer (pending, agreed, refused, lapsed, cancelled), by id."""
    return repository.offer_statuses(session, offer_ids)
