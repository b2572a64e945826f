"""Segments that act: an operator's well-being segment, its outreach campaign, a case per family.

A segment picks families of a scoring run (level, region, indicators held, level worse than in
the previous run). Its campaign invites each family's adult (`eligibility.recipient_of`) to a
family support centre: the invitation is a proactive offer of the program `outreach.<code>`,
so the outbox, the SMS or link answer, reminders, the deadline and the checks against the dead
are the proactive flow's own (`proactive.service.offer_candidates`, `decide`,
`process_deadlines`); only its texts differ (`templates.DEFAULTS["seg_*"]`) and an agreement
assigns nothing. Each invitation gets a light case: the assigned worker, the contacts made, the
outcome and the next review date. Every read of a case is audited with its purpose.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy.orm import Session

from socialcard.core.clock import today, utcnow
from socialcard.core.errors import InvalidInput, field_error
from socialcard.outreach import condition as segment_condition
from socialcard.outreach import repository
from socialcard.outreach.enums import CaseOutcome
from socialcard.outreach.errors import CaseNotFound, SegmentExists, SegmentNotFound
from socialcard.outreach.models import OutreachCase, Segment
from socialcard.outreach.schemas import (
    CasePage,
    CaseRead,
    CaseUpdate,
    ContactRead,
    SegmentCampaignRead,
    SegmentCreate,
    SegmentFunnel,
    SegmentRead,
)
from socialcard.proactive import eligibility
from socialcard.proactive import service as proactive_service
from socialcard.proactive.eligibility import Candidate
from socialcard.proactive.templates import OUTREACH_PREFIX
from socialcard.registry import service as registry_service
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor
from socialcard.wellbeing import service as wellbeing_service

# Social Code art. 24: the card's lists are the ground for finding families potentially in need,
# proactive services included (REFERENCE.md §3).
LEGAL_BASIS = (
    "Социальный кодекс РК, статья 24: списки цифровой карты семьи — основание для выявления "
    "семей, потенциально нуждающихся в социальной защите, в том числе проактивно"
)
# Families whose level worsened since the previous scoring run: always there, not stored.
BUILTIN = {
    "worsened": SegmentRead(
        code="worsened",
        title="Level worsened since the previous scoring run",
        methodology_id=None,
        levels=[],
        region=None,
        indicators=[],
        worsened=True,
        builtin=True,
        created_by="system",
        created_at=None,
    )
}


def program_of(code: str) -> str:
    """The proactive program id of a segment's invitations."""
    return f"{OUTREACH_PREFIX}{code}"


def _read(row: Segment) -> SegmentRead:
    return SegmentRead(
        code=row.code,
        title=row.title,
        methodology_id=row.methodology_id,
        levels=list(row.levels or []),
        region=row.region,
        indicators=list(row.indicators or []),
        worsened=row.worsened,
        condition=row.condition,
        builtin=False,
        created_by=row.created_by,
        created_at=row.created_at,
    )


# --- segments --------------------------------------------------------------------------------
def list_segments(session: Session) -> list[SegmentRead]:
    """The built-in segments, then the operators' by code."""
    return [*BUILTIN.values(), *(_read(r) for r in repository.segments(session))]


def get_segment(session: Session, *, code: str) -> SegmentRead:
    """One segment by code (SegmentNotFound)."""
    if code in BUILTIN:
        return BUILTIN[code]
    row = repository.segment_by_code(session, code)
    if row is None:
        raise SegmentNotFound(
            f"no segment {code!r}", details=[field_error("code", "unknown segment")]
        )
    return _read(row)


def create_segment(session: Session, *, payload: SegmentCreate, actor: Actor) -> SegmentRead:
    """Store a segment after checking its criteria against the methodology (4xx naming the
    field: an unknown level, indicator or methodology, a bad region, a taken code)."""
    if payload.code in BUILTIN or repository.segment_by_code(session, payload.code) is not None:
        raise SegmentExists(
            f"segment {payload.code!r} exists", details=[field_error("code", "already taken")]
        )
    levels = list(dict.fromkeys(payload.levels))
    indicators = list(dict.fromkeys(payload.indicators))
    wellbeing_service.check_segment(
        methodology_id=payload.methodology_id,
        levels=levels,
        region=payload.region,
        indicators=indicators,
    )
    condition = payload.condition.strip() if payload.condition else None
    if condition:
        segment_condition.compiled(condition)  # InvalidInput naming `condition`
    row = Segment(
        code=payload.code,
        title=payload.title.strip(),
        methodology_id=payload.methodology_id,
        levels=levels,
        region=payload.region,
        indicators=indicators,
        worsened=payload.worsened,
        condition=condition or None,
        created_by=actor.name[:100],
        created_at=utcnow(),
    )
    repository.add(session, row)
    return _read(row)


# --- campaigns -------------------------------------------------------------------------------
def start_campaign(
    session: Session,
    *,
    code: str,
    actor: Actor,
    purpose: Purpose,
    run_id: int | None = None,
    now: datetime | None = None,
) -> SegmentCampaignRead:
    """Invite the segment's families (of the given scoring run, else the newest one) and open a
    case for each new invitation. Running it again invites nobody twice (the proactive
    offer's uniqueness, pending invitations and the cool-off after a refusal)."""
    now = now or utcnow()
    segment = get_segment(session, code=code)
    run = wellbeing_service.segment_run(
        session, methodology_id=segment.methodology_id, run_id=run_id
    )
    selection = wellbeing_service.segment_families(
        session,
        run_id=run.id,
        levels=segment.levels,
        region=segment.region,
        indicators=segment.indicators,
        worsened=segment.worsened,
    )
    program_id = program_of(code)
    period = selection.period
    families = selection.families
    if segment.condition:
        # Read as of the run's period: audited like the rest of the campaign's reads.
        registry_service.record_family_read(
            session,
            actor=actor,
            action="outreach.segment.condition",
            family_ids=[f.family_id for f in families],
            purpose=purpose,
        )
        held = segment_condition.holds(
            session,
            text=segment.condition,
            family_ids=[f.family_id for f in families],
            period=period,
        )
        families = [f for f in families if f.family_id in held]
    family_ids = [f.family_id for f in families]
    # Who to write to: members and their contacts are personal data read for this purpose.
    registry_service.record_family_read(
        session,
        actor=actor,
        action="outreach.campaign.start",
        family_ids=family_ids,
        purpose=purpose,
    )
    members = registry_service.current_members(session, family_ids)
    on = now.date()
    candidates: list[Candidate] = []
    no_adult = 0
    for family in families:
        recipient = eligibility.recipient_of(members.get(family.family_id, []), on)
        if recipient is None:
            no_adult += 1
            continue
        candidates.append(
            Candidate(
                program_id=program_id,
                program_version=f"run {selection.run_id}",
                entity_type="family",
                entity_id=family.family_id,
                family_id=family.family_id,
                person_id=recipient,
                region_kato=family.region_kato or "",
                amount_minor=0,
                period=period,
                legal_basis=LEGAL_BASIS,
                explanation=json.dumps(
                    {
                        "segment": code,
                        "wellbeing_run_id": selection.run_id,
                        "previous_run_id": selection.previous_run_id,
                        "level": family.level,
                        "previous_level": family.previous_level,
                    },
                    ensure_ascii=False,
                ),
            )
        )
    campaign = proactive_service.open_campaign(session, program_id=program_id, period=period)
    blocked = proactive_service.blocked_entities(session, program_id=program_id, period=period)
    stats = proactive_service.offer_candidates(
        session, campaign=campaign, candidates=candidates, blocked=blocked, now=now
    )
    proactive_service.close_campaign(session, campaign_id=campaign.id, stats=stats)
    levels = {f.family_id: f.level for f in families}
    offers = proactive_service.campaign_offers(session, campaign_id=campaign.id)
    have = repository.case_offer_ids(session, [o.offer_id for o in offers])
    opened = 0
    for offer in offers:
        if offer.offer_id in have:
            continue
        repository.add(
            session,
            OutreachCase(
                segment_code=code,
                offer_id=offer.offer_id,
                campaign_id=campaign.id,
                wellbeing_run_id=selection.run_id,
                family_id=offer.entity_id,
                person_id=offer.person_id,
                region_kato=offer.region_kato,
                level=levels.get(offer.entity_id, ""),
                contacts=[],
                outcome=CaseOutcome.OPEN.value,
                created_at=now,
                updated_at=now,
            ),
        )
        opened += 1
    return SegmentCampaignRead(
        segment_code=code,
        program_id=program_id,
        campaign_id=campaign.id,
        wellbeing_run_id=selection.run_id,
        previous_run_id=selection.previous_run_id,
        period=period,
        families=len(families),
        invited=stats.offered,
        messages=stats.messages,
        skipped={
            "already_invited": stats.already_offered,
            "pending": stats.pending,
            "refused_recently": stats.refused,
            "deceased": stats.deceased,
            "no_adult": no_adult,
        },
        cases_opened=opened,
    )


def funnel(session: Session, *, code: str) -> SegmentFunnel:
    """A segment's outreach over all its campaigns: families -> invited -> delivered ->
    agreed/refused/lapsed -> cases by outcome (counts only)."""
    get_segment(session, code=code)
    program_id = program_of(code)
    rows = proactive_service.funnel(session, program_id=program_id)
    outcomes = repository.outcome_counts(session, code)

    def total(name: str) -> int:
        return sum(int(getattr(r, name)) for r in rows)

    return SegmentFunnel(
        segment_code=code,
        program_id=program_id,
        families=total("eligible"),
        invited=total("offered"),
        delivered=total("delivered"),
        pending=total("pending"),
        agreed=total("agreed"),
        refused=total("refused"),
        lapsed=total("lapsed"),
        cancelled=total("cancelled"),
        cases=sum(outcomes.values()),
        outcomes={o.value: outcomes.get(o.value, 0) for o in CaseOutcome},
    )


# --- cases -----------------------------------------------------------------------------------
def _case_reads(session: Session, rows: list[OutreachCase]) -> list[CaseRead]:
    statuses = proactive_service.offer_statuses(session, offer_ids=[r.offer_id for r in rows])
    return [
        CaseRead(
            id=r.id,
            segment_code=r.segment_code,
            offer_id=r.offer_id,
            offer_status=statuses.get(r.offer_id, ""),
            campaign_id=r.campaign_id,
            wellbeing_run_id=r.wellbeing_run_id,
            family_id=r.family_id,
            person_id=r.person_id,
            region_kato=r.region_kato,
            level=r.level,
            assigned_worker=r.assigned_worker,
            contacts=[ContactRead.model_validate(c) for c in (r.contacts or [])],
            outcome=CaseOutcome(r.outcome),
            next_review_on=r.next_review_on,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]


def _case(session: Session, case_id: int) -> OutreachCase:
    row = repository.case_by_id(session, case_id)
    if row is None:
        raise CaseNotFound(
            f"no outreach case {case_id}", details=[field_error("case_id", "unknown case")]
        )
    return row


def list_cases(
    session: Session,
    *,
    actor: Actor,
    purpose: Purpose,
    segment_code: str | None = None,
    outcome: CaseOutcome | None = None,
    family_id: int | None = None,
    page: int = 1,
    size: int = 50,
) -> CasePage:
    """Cases (of a segment, an outcome, a family), oldest first; the families shown audited."""
    rows, total = repository.cases(
        session,
        segment_code=segment_code,
        outcome=outcome.value if outcome is not None else None,
        family_id=family_id,
        offset=(page - 1) * size,
        limit=size,
    )
    registry_service.record_family_read(
        session,
        actor=actor,
        action="outreach.case.read",
        family_ids=[r.family_id for r in rows],
        purpose=purpose,
    )
    return CasePage(items=_case_reads(session, rows), page=page, size=size, total=total)


def get_case(session: Session, *, case_id: int, actor: Actor, purpose: Purpose) -> CaseRead:
    """One case (audited)."""
    row = _case(session, case_id)
    registry_service.record_family_read(
        session,
        actor=actor,
        action="outreach.case.read",
        family_ids=[row.family_id],
        purpose=purpose,
    )
    return _case_reads(session, [row])[0]


def update_case(
    session: Session,
    *,
    case_id: int,
    payload: CaseUpdate,
    actor: Actor,
    purpose: Purpose,
    now: datetime | None = None,
) -> CaseRead:
    """Assign a worker, record a contact, set the outcome or the next review date (audited).
    A review date in the past is refused (422 naming `next_review_on`)."""
    now = now or utcnow()
    row = _case(session, case_id)
    if payload.next_review_on is not None and payload.next_review_on < today():
        raise InvalidInput(
            "next_review_on: a review date cannot be in the past",
            details=[field_error("next_review_on", f"on or after {today().isoformat()}")],
        )
    if payload.assigned_worker is not None:
        row.assigned_worker = payload.assigned_worker.strip()
    if payload.contact is not None:
        entry = {
            "at": now.isoformat(),
            "channel": payload.contact.channel.value,
            "note": payload.contact.note,
            "by": actor.name[:100],
        }
        row.contacts = [*(row.contacts or []), entry]
    if payload.outcome is not None:
        row.outcome = payload.outcome.value
    if payload.next_review_on is not None:
        row.next_review_on = payload.next_review_on
    row.updated_at = now
    session.flush()
    registry_service.record_family_read(
        session,
        actor=actor,
        action="outreach.case.update",
        family_ids=[row.family_id],
        purpose=purpose,
    )
    return _case_reads(session, [row])[0]
