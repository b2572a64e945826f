"""Every query of the proactive domain."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from socialcard.core.bulk import copy_rows
from socialcard.proactive.enums import (
    AssignmentStatus,
    MessageKind,
    MessageStatus,
    OfferStatus,
    PaymentStatus,
)
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

_CHUNK = 5_000


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


# campaigns ------------------------------------------------------------------------------------


def campaign_for(session: Session, program_id: str, period: str) -> Campaign | None:
    return session.scalars(
        select(Campaign).where(Campaign.program_id == program_id, Campaign.period == period)
    ).first()


def campaign_by_id(session: Session, campaign_id: int) -> Campaign | None:
    return session.get(Campaign, campaign_id)


def campaigns(session: Session, *, limit: int) -> Sequence[Campaign]:
    return session.scalars(select(Campaign).order_by(Campaign.id.desc()).limit(limit)).all()


# exclusions -----------------------------------------------------------------------------------


def active_assignment_entities(session: Session, program_id: str) -> set[int]:
    rows = session.scalars(
        select(Assignment.entity_id).where(
            Assignment.program_id == program_id, Assignment.status == AssignmentStatus.ACTIVE
        )
    )
    return set(rows)


def active_assignment_recipients(session: Session, program_id: str, until: date) -> dict[int, int]:
    """Entity -> recipient person of the program's active assignments starting by `until`."""
    rows = session.execute(
        select(Assignment.entity_id, Assignment.person_id).where(
            Assignment.program_id == program_id,
            Assignment.status == AssignmentStatus.ACTIVE,
            Assignment.from_on <= until,
        )
    )
    return {row.entity_id: row.person_id for row in rows}


def pending_offer_entities(session: Session, program_id: str) -> set[int]:
    rows = session.scalars(
        select(Offer.entity_id).where(
            Offer.program_id == program_id, Offer.status == OfferStatus.PENDING
        )
    )
    return set(rows)


def refused_entities_since(session: Session, program_id: str, since: datetime) -> set[int]:
    rows = session.scalars(
        select(Offer.entity_id).where(
            Offer.program_id == program_id,
            Offer.status == OfferStatus.REFUSED,
            Offer.decided_at >= since,
        )
    )
    return set(rows)


def offered_entities(session: Session, program_id: str, period: str) -> set[int]:
    rows = session.scalars(
        select(Offer.entity_id).where(Offer.program_id == program_id, Offer.period == period)
    )
    return set(rows)


# offers ---------------------------------------------------------------------------------------


def insert_offers(session: Session, rows: list[dict[str, Any]]) -> dict[int, int]:
    """Insert offers in bulk (COPY on PostgreSQL, executemany on SQLite, in the session's
    transaction); returns entity id -> offer id. Rows share one program and period."""
    if not rows:
        return {}
    columns = tuple(rows[0])
    copy_rows(session, Offer.__tablename__, columns, [tuple(r[c] for c in columns) for r in rows])
    program_id, period = rows[0]["program_id"], rows[0]["period"]
    entity_ids = [r["entity_id"] for r in rows]
    found: dict[int, int] = {}
    for chunk in _chunks(entity_ids):
        for entity_id, offer_id in session.execute(
            select(Offer.entity_id, Offer.id).where(
                Offer.program_id == program_id,
                Offer.period == period,
                Offer.entity_id.in_(chunk),
            )
        ):
            found[entity_id] = offer_id
    return found


def offer_by_id(session: Session, offer_id: int) -> Offer | None:
    return session.get(Offer, offer_id)


def offer_for_entity(
    session: Session, program_id: str, entity_type: str, entity_id: int, period: str
) -> Offer | None:
    return session.scalars(
        select(Offer).where(
            Offer.program_id == program_id,
            Offer.entity_type == entity_type,
            Offer.entity_id == entity_id,
            Offer.period == period,
        )
    ).first()


def pending_offer_for_phone(session: Session, phone: str, now: datetime) -> Offer | None:
    """The newest pending offer, still within its deadline, whose offer message went to this
    phone."""
    return session.scalars(
        select(Offer)
        .join(Message, Message.offer_id == Offer.id)
        .where(
            Message.phone == phone,
            Message.kind == MessageKind.OFFER,
            Offer.status == OfferStatus.PENDING,
            Offer.deadline_at > now,
        )
        .order_by(Offer.created_at.desc(), Offer.id.desc())
        .limit(1)
    ).first()


def late_offer_for_phone(session: Session, phone: str, now: datetime) -> Offer | None:
    """The newest offer sent to this phone whose deadline has passed without an answer: lapsed,
    or still pending because the lapse job has not run yet."""
    return session.scalars(
        select(Offer)
        .join(Message, Message.offer_id == Offer.id)
        .where(
            Message.phone == phone,
            Message.kind == MessageKind.OFFER,
            Offer.status.in_((OfferStatus.PENDING, OfferStatus.LAPSED)),
            Offer.deadline_at <= now,
        )
        .order_by(Offer.created_at.desc(), Offer.id.desc())
        .limit(1)
    ).first()


def offers_by_ids(session: Session, offer_ids: Iterable[int]) -> dict[int, Offer]:
    out: dict[int, Offer] = {}
    for chunk in _chunks(sorted(set(offer_ids))):
        out.update((o.id, o) for o in session.scalars(select(Offer).where(Offer.id.in_(chunk))))
    return out


def offers_to_remind(session: Session, now: datetime, limit: int) -> Sequence[Offer]:
    return session.scalars(
        select(Offer)
        .where(
            Offer.status == OfferStatus.PENDING,
            Offer.remind_at <= now,
            Offer.reminded_at.is_(None),
            Offer.deadline_at > now,
        )
        .order_by(Offer.id)
        .limit(limit)
    ).all()


def offers_past_deadline(session: Session, now: datetime, limit: int) -> Sequence[Offer]:
    return session.scalars(
        select(Offer)
        .where(Offer.status == OfferStatus.PENDING, Offer.deadline_at <= now)
        .order_by(Offer.id)
        .limit(limit)
    ).all()


def pending_offers_of_entity(session: Session, program_id: str, entity_id: int) -> Sequence[Offer]:
    return session.scalars(
        select(Offer).where(
            Offer.program_id == program_id,
            Offer.entity_id == entity_id,
            Offer.status == OfferStatus.PENDING,
        )
    ).all()


def search_offers(
    session: Session,
    *,
    offer_id: int | None,
    person_id: int | None,
    program_id: str | None,
    campaign_id: int | None,
    status: str | None,
    region: str | None,
    offset: int,
    limit: int,
) -> tuple[Sequence[Offer], int]:
    query = select(Offer)
    if offer_id is not None:
        query = query.where(Offer.id == offer_id)
    if person_id is not None:
        query = query.where(Offer.person_id == person_id)
    if program_id:
        query = query.where(Offer.program_id == program_id)
    if campaign_id is not None:
        query = query.where(Offer.campaign_id == campaign_id)
    if status:
        query = query.where(Offer.status == status)
    if region:
        query = query.where(Offer.region_kato.startswith(region))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Offer.id).offset(offset).limit(limit)).all()
    return rows, total


# messages -------------------------------------------------------------------------------------


def insert_messages(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert messages in bulk (COPY on PostgreSQL, executemany on SQLite)."""
    if rows:
        columns = tuple(rows[0])
        copy_rows(
            session, Message.__tablename__, columns, [tuple(r[c] for c in columns) for r in rows]
        )


def message_key_exists(session: Session, key: str) -> bool:
    return session.scalar(select(Message.id).where(Message.idempotency_key == key)) is not None


def messages_to_send(session: Session, now: datetime, limit: int) -> Sequence[Message]:
    """Queued messages, interrupted sends (`sending`) and failures due for a retry."""
    return session.scalars(
        select(Message)
        .where(
            (Message.status.in_((MessageStatus.QUEUED, MessageStatus.SENDING)))
            | ((Message.status == MessageStatus.FAILED) & (Message.next_attempt_at <= now))
        )
        .order_by(Message.id)
        .limit(limit)
    ).all()


_UNSENT = (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.FAILED)


def unsent_messages(
    session: Session, *, person_id: int, offer_ids: Sequence[int]
) -> Sequence[Message]:
    """Messages not (yet) sent to a person or about these offers: queued, interrupted, failed."""
    about = Message.person_id == person_id
    if offer_ids:
        about = about | Message.offer_id.in_(offer_ids)
    return session.scalars(
        select(Message).where(about, Message.status.in_(_UNSENT)).order_by(Message.id)
    ).all()


def set_message_status(session: Session, ids: Sequence[int], status: str) -> None:
    for chunk in _chunks(list(ids)):
        session.execute(update(Message).where(Message.id.in_(chunk)).values(status=status))


def update_messages(session: Session, rows: list[dict[str, Any]]) -> None:
    """Bulk update by primary key (each dict has `id`)."""
    if rows:
        session.execute(update(Message), rows)


def message_by_provider_id(session: Session, provider_id: str) -> Message | None:
    return session.scalars(
        select(Message).where(Message.provider_message_id == provider_id)
    ).first()


def messages_of_offer(session: Session, offer_id: int) -> Sequence[Message]:
    return session.scalars(
        select(Message).where(Message.offer_id == offer_id).order_by(Message.id)
    ).all()


def delivered_offer_messages(session: Session, period: str) -> list[tuple[Message, Offer]]:
    """Delivered offer messages of a month's offers still pending, oldest first."""
    rows = session.execute(
        select(Message, Offer)
        .join(Offer, Offer.id == Message.offer_id)
        .where(
            Offer.period == period,
            Offer.status == OfferStatus.PENDING,
            Message.kind == MessageKind.OFFER,
            Message.status == MessageStatus.DELIVERED,
        )
        .order_by(Message.id)
    )
    return [(row[0], row[1]) for row in rows]


def pending_deadlines(session: Session, period: str) -> datetime | None:
    """The latest deadline of a month's pending offers."""
    return session.scalar(
        select(func.max(Offer.deadline_at)).where(
            Offer.period == period, Offer.status == OfferStatus.PENDING
        )
    )


def offer_message(session: Session, offer_id: int) -> Message | None:
    return session.scalars(
        select(Message).where(Message.offer_id == offer_id, Message.kind == MessageKind.OFFER)
    ).first()


# templates ------------------------------------------------------------------------------------


def templates(session: Session) -> Sequence[Template]:
    return session.scalars(select(Template).order_by(Template.kind, Template.language)).all()


def template(session: Session, kind: str, language: str) -> Template | None:
    return session.scalars(
        select(Template).where(Template.kind == kind, Template.language == language)
    ).first()


# inbound, consent -----------------------------------------------------------------------------


def inbound_by_provider_id(session: Session, provider_id: str) -> InboundReply | None:
    return session.scalars(
        select(InboundReply).where(InboundReply.provider_message_id == provider_id)
    ).first()


def consent_for_offer(session: Session, offer_id: int) -> Consent | None:
    return session.scalars(select(Consent).where(Consent.offer_id == offer_id)).first()


# assignments, payment orders ------------------------------------------------------------------


def assignment_for_offer(session: Session, offer_id: int) -> Assignment | None:
    return session.scalars(select(Assignment).where(Assignment.offer_id == offer_id)).first()


def active_assignments_of_family(session: Session, family_id: int) -> Sequence[Assignment]:
    return session.scalars(
        select(Assignment).where(
            Assignment.family_id == family_id, Assignment.status == AssignmentStatus.ACTIVE
        )
    ).all()


def active_assignments_of_person(session: Session, person_id: int) -> Sequence[Assignment]:
    return session.scalars(
        select(Assignment).where(
            (Assignment.person_id == person_id)
            | ((Assignment.entity_type == "person") & (Assignment.entity_id == person_id)),
            Assignment.status == AssignmentStatus.ACTIVE,
        )
    ).all()


def active_recurring_assignments(session: Session, program_id: str | None) -> Sequence[Assignment]:
    query = select(Assignment).where(
        Assignment.status == AssignmentStatus.ACTIVE, Assignment.recurring.is_(True)
    )
    if program_id:
        query = query.where(Assignment.program_id == program_id)
    return session.scalars(query.order_by(Assignment.id)).all()


def payment_order_by_key(session: Session, key: str) -> PaymentOrder | None:
    return session.scalars(select(PaymentOrder).where(PaymentOrder.idempotency_key == key)).first()


def payment_order_by_id(session: Session, order_id: int) -> PaymentOrder | None:
    return session.get(PaymentOrder, order_id)


def pending_payment_orders(
    session: Session, limit: int, destination: str | None = None
) -> list[tuple[PaymentOrder, str, int]]:
    """Pending orders, oldest first, with their assignment's entity type and id."""
    query = (
        select(PaymentOrder, Assignment.entity_type, Assignment.entity_id)
        .join(Assignment, Assignment.id == PaymentOrder.assignment_id)
        .where(PaymentOrder.status == PaymentStatus.PENDING)
    )
    if destination is not None:
        query = query.where(PaymentOrder.destination_kind == destination)
    rows = session.execute(query.order_by(PaymentOrder.id).limit(limit))
    return [(row[0], row[1], row[2]) for row in rows]


def pending_orders_of_deceased(session: Session, person_id: int) -> Sequence[PaymentOrder]:
    """Unpaid orders that a death stops: those paying the person, and those of a person
    benefit the person held (paid to someone else, e.g. a child's to a parent)."""
    return session.scalars(
        select(PaymentOrder)
        .join(Assignment, Assignment.id == PaymentOrder.assignment_id)
        .where(
            PaymentOrder.status == PaymentStatus.PENDING,
            (PaymentOrder.person_id == person_id)
            | ((Assignment.entity_type == "person") & (Assignment.entity_id == person_id)),
        )
        .order_by(PaymentOrder.id)
    ).all()


def payment_orders_of_assignment(session: Session, assignment_id: int) -> Sequence[PaymentOrder]:
    return session.scalars(
        select(PaymentOrder)
        .where(PaymentOrder.assignment_id == assignment_id)
        .order_by(PaymentOrder.id)
    ).all()


def overrides_of_offer(session: Session, offer_id: int) -> Sequence[Override]:
    return session.scalars(
        select(Override).where(Override.offer_id == offer_id).order_by(Override.id)
    ).all()


# funnel ---------------------------------------------------------------------------------------


def funnel_rows(
    session: Session, *, campaign_id: int | None, program_id: str | None
) -> list[dict[str, Any]]:
    """Per campaign and region: offers by status, delivered offer messages, assignments, paid."""
    region = Offer.region_kato
    filters = []
    if campaign_id is not None:
        filters.append(Offer.campaign_id == campaign_id)
    if program_id:
        filters.append(Offer.program_id == program_id)
    statuses = [s.value for s in OfferStatus]
    offers_q = (
        select(
            Offer.campaign_id,
            region,
            func.count(),
            *[func.count().filter(Offer.status == s) for s in statuses],
        )
        .where(*filters)
        .group_by(Offer.campaign_id, region)
    )
    delivered_q = (
        select(Offer.campaign_id, region, func.count())
        .join(Message, Message.offer_id == Offer.id)
        .where(
            *filters,
            Message.kind == MessageKind.OFFER,
            Message.status == MessageStatus.DELIVERED,
        )
        .group_by(Offer.campaign_id, region)
    )
    assigned_q = (
        select(Offer.campaign_id, region, func.count())
        .join(Assignment, Assignment.offer_id == Offer.id)
        .where(*filters)
        .group_by(Offer.campaign_id, region)
    )
    paid_q = (
        select(Offer.campaign_id, region, func.count(func.distinct(Assignment.id)))
        .join(Assignment, Assignment.offer_id == Offer.id)
        .join(PaymentOrder, PaymentOrder.assignment_id == Assignment.id)
        .where(*filters, PaymentOrder.status == PaymentStatus.PAID)
        .group_by(Offer.campaign_id, region)
    )
    out: dict[tuple[int, str], dict[str, Any]] = {}
    for row in session.execute(offers_q):
        counts = dict(zip(statuses, row[3:], strict=True))
        out[(row[0], row[1])] = {
            "campaign_id": row[0],
            "region_kato": row[1],
            "offered": row[2],
            **counts,
            "delivered": 0,
            "assigned": 0,
            "paid": 0,
        }
    for name, query in (("delivered", delivered_q), ("assigned", assigned_q), ("paid", paid_q)):
        for found in session.execute(query):
            if (found[0], found[1]) in out:
                out[(found[0], found[1])][name] = found[2]
    return [out[k] for k in sorted(out)]


def messages_by_keys(session: Session, keys: Sequence[str]) -> list[Message]:
    out: list[Message] = []
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        out.extend(session.scalars(select(Message).where(Message.idempotency_key.in_(chunk))))
    return out


def pending_offers_of_person(session: Session, person_id: int) -> Sequence[Offer]:
    return session.scalars(
        select(Offer).where(
            (
                (Offer.person_id == person_id)
                | ((Offer.entity_type == "person") & (Offer.entity_id == person_id))
            ),
            Offer.status == OfferStatus.PENDING,
        )
    ).all()


def blocked_among(
    session: Session,
    *,
    program_id: str,
    period: str,
    entity_ids: Sequence[int],
    refused_since: datetime,
) -> dict[int, str]:
    """Which of these entities must not get an offer now, and why."""
    blocked: dict[int, str] = {}
    for chunk in _chunks(sorted(set(entity_ids))):
        for entity_id, offer_period, status, decided_at in session.execute(
            select(Offer.entity_id, Offer.period, Offer.status, Offer.decided_at).where(
                Offer.program_id == program_id, Offer.entity_id.in_(chunk)
            )
        ):
            if offer_period == period:
                blocked[entity_id] = "already_offered"
            elif status == OfferStatus.PENDING:
                blocked.setdefault(entity_id, "pending")
            elif status == OfferStatus.REFUSED and decided_at and decided_at >= refused_since:
                blocked.setdefault(entity_id, "refused")
        for entity_id in session.scalars(
            select(Assignment.entity_id).where(
                Assignment.program_id == program_id,
                Assignment.entity_id.in_(chunk),
                Assignment.status == AssignmentStatus.ACTIVE,
            )
        ):
            blocked[entity_id] = "receiving"
    return blocked


def payments_by_program_region(session: Session, *, period: str) -> list[dict[str, Any]]:
    """Payment orders of a month by program, region and status: how many and how much."""
    query = (
        select(
            PaymentOrder.program_id,
            PaymentOrder.region_kato,
            PaymentOrder.status,
            func.count(),
            func.coalesce(func.sum(PaymentOrder.amount_minor), 0),
        )
        .where(PaymentOrder.period == period)
        .group_by(PaymentOrder.program_id, PaymentOrder.region_kato, PaymentOrder.status)
        .order_by(PaymentOrder.program_id, PaymentOrder.region_kato, PaymentOrder.status)
    )
    return [
        {"program_id": p, "region_kato": r, "status": s, "orders": int(n), "amount_minor": int(a)}
        for p, r, s, n, a in session.execute(query).all()
    ]


def campaign_offer_rows(session: Session, campaign_id: int) -> list[tuple[Any, ...]]:
    """(offer id, entity id, person id, region) of a campaign's offers."""
    stmt = (
        select(Offer.id, Offer.entity_id, Offer.person_id, Offer.region_kato)
        .where(Offer.campaign_id == campaign_id)
        .order_by(Offer.id)
    )
    return [tuple(r) for r in session.execute(stmt)]


def offer_statuses(session: Session, offer_ids: Sequence[int]) -> dict[int, str]:
    """The status of each offer, by id."""
    ids = sorted(set(offer_ids))
    out: dict[int, str] = {}
    for start in range(0, len(ids), 900):  # below SQLite's default bound-parameter limit
        stmt = select(Offer.id, Offer.status).where(Offer.id.in_(ids[start : start + 900]))
        out.update({int(i): str(s) for i, s in session.execute(stmt)})
    return out
