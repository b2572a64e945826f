"""Card API: cards and passes, the merchants' verification, status lists and the issuer's keys,
linked bank cards, chip cards with a PIN, and kiosk sessions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from socialcard.card import service
from socialcard.card.schemas import (
    BankCheckRequest,
    BankCheckResponse,
    BankLinkCreate,
    BankLinkRead,
    CardRead,
    ChipIssued,
    EventsProcessed,
    KioskSessionStarted,
    KioskStart,
    KioskView,
    ListPublished,
    PassBatchRead,
    PassIssueRequest,
    PinSet,
    VerifyRequest,
    VerifyResponse,
)
from socialcard.core.deps import DbSession
from socialcard.core.errors import Forbidden
from socialcard.core.http import PROBLEM_JSON, PROBLEM_RESPONSES
from socialcard.jobs import worker as jobs_worker
from socialcard.jobs.router import ACCEPTED as JOB_ACCEPTED
from socialcard.jobs.schemas import JobRead
from socialcard.security.deps import require_roles
from socialcard.security.enums import Purpose, Role
from socialcard.security.schemas import Actor
from socialcard.wallet.vouchers import service as voucher_service

router = APIRouter()
api = APIRouter(prefix="/api/v1/card", tags=["card"], responses=PROBLEM_RESPONSES)
public = APIRouter(tags=["card"], responses=PROBLEM_RESPONSES)

IdPath = Annotated[int, Path(ge=1, le=2**62)]
PurposeQuery = Annotated[Purpose, Query(description="Why the data is read; kept in the audit log.")]
Operator = Annotated[Actor, Depends(require_roles(Role.OPERATOR))]
Merchant = Annotated[Actor, Depends(require_roles(Role.MERCHANT))]
Acquirer = Annotated[Actor, Depends(require_roles(Role.PAYMENT_PROVIDER, Role.MERCHANT))]
Kiosk = Annotated[Actor, Depends(require_roles(Role.KIOSK))]
Holder = Annotated[Actor, Depends(require_roles(Role.OPERATOR, Role.CITIZEN))]
_429: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many requests", "content": {PROBLEM_JSON: {}}}
}


def _own_card(session: DbSession, actor: Actor, card_id: int) -> None:
    """A citizen acts only on their own card (operators on any)."""
    if actor.role != Role.CITIZEN:
        return
    person_id = voucher_service.person_for_citizen_key(session, api_key_id=actor.key_id)
    card = service.card_view_unaudited(session, card_id=card_id)
    if card.person_id != person_id:
        raise Forbidden("this card is not yours")


@api.post("/sync", response_model=JobRead, status_code=202, responses=JOB_ACCEPTED)
def sync(
    response: Response,
    actor: Operator,
    period: Annotated[str | None, Query(max_length=7)] = None,
) -> JobRead:
    """Cards for every person with a status in the period's latest stored rules run, as a
    job in the background: 202 with the job, its URL in Location (the job's result is the
    sync's counts). 409 while another sync runs."""
    job = jobs_worker.start("card_sync", {"period": period}, actor=actor)
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return job


@api.get("/cards/{card_id}", response_model=CardRead)
def get_card(
    card_id: IdPath, session: DbSession, actor: Operator, purpose: PurposeQuery
) -> CardRead:
    """One card with its statuses and tariffs (audited)."""
    return service.card_view(session, card_id=card_id, actor=actor, purpose=purpose)


@api.get("/persons/{person_id}/card", response_model=CardRead)
def person_card(
    person_id: IdPath, session: DbSession, actor: Operator, purpose: PurposeQuery
) -> CardRead:
    """A person's card (audited)."""
    return service.card_for_person(session, person_id=person_id, actor=actor, purpose=purpose)


@api.post("/cards/{card_id}/passes", response_model=PassBatchRead, status_code=201)
def issue_passes(
    card_id: IdPath, body: PassIssueRequest, session: DbSession, actor: Holder
) -> PassBatchRead:
    """A batch of single-use passes, one per holder key the wallet app sends."""
    _own_card(session, actor, card_id)
    return service.issue_passes(
        session,
        card_id=card_id,
        holder_keys=body.holder_keys,
        actor=actor if actor.role != Role.CITIZEN else None,
    )


@api.post("/cards/{card_id}/suspend", response_model=CardRead)
def suspend(card_id: IdPath, session: DbSession, actor: Operator) -> CardRead:
    """Suspend a card: its passes answer invalid until resumed."""
    return service.suspend_card(session, card_id=card_id, actor=actor, reason="suspended")


@api.post("/cards/{card_id}/resume", response_model=CardRead)
def resume(card_id: IdPath, session: DbSession, actor: Operator) -> CardRead:
    """Lift a suspension."""
    return service.resume_card(session, card_id=card_id, actor=actor)


@api.post("/cards/{card_id}/revoke")
def revoke(card_id: IdPath, session: DbSession, actor: Operator) -> dict[str, int]:
    """Revoke every pass of a card for good."""
    return {
        "batches_revoked": service.revoke_card(
            session, card_id=card_id, actor=actor, reason="operator"
        )
    }


@api.post("/verify", response_model=VerifyResponse, response_model_exclude_none=False)
async def verify(body: VerifyRequest, actor: Merchant) -> VerifyResponse:
    """A merchant's check: a presentation and the tariff asked -> result and valid_until,
    nothing else. Answered from memory (signed pass, cached status list)."""
    result, until = service.verify_online(body.presentation, body.tariff)
    return VerifyResponse.model_validate({"result": result, "valid_until": until})


@api.post("/lists/publish", response_model=ListPublished)
def publish(session: DbSession, actor: Operator) -> ListPublished:
    """Re-sign the status lists that changed (the revocation job does this continuously)."""
    return service.publish_lists(session)


@api.post("/events/process", response_model=EventsProcessed)
def process_events(session: DbSession, actor: Operator) -> EventsProcessed:
    """One step of the revocation job over the registry's life events."""
    done = service.process_events(session)
    service.publish_lists(session)
    return done


@api.post("/cards/{card_id}/bank-links", response_model=BankLinkRead, status_code=201)
def link_bank_card(
    card_id: IdPath, body: BankLinkCreate, session: DbSession, actor: Holder
) -> BankLinkRead:
    """Link a bank card (PAR, or a card number turned into a keyed token and dropped)."""
    _own_card(session, actor, card_id)
    return service.link_bank_card(
        session,
        card_id=card_id,
        par=body.par,
        pan=body.pan,
        notice_version=body.consent.notice_version if body.consent else None,
        channel=body.consent.channel if body.consent else None,
        actor=actor,
    )


@api.get("/cards/{card_id}/bank-links", response_model=list[BankLinkRead])
def bank_links(card_id: IdPath, session: DbSession, actor: Holder) -> list[BankLinkRead]:
    """A card's bank links (no number, no token)."""
    _own_card(session, actor, card_id)
    return service.bank_links(
        session, card_id=card_id, actor=actor if actor.role != Role.CITIZEN else None
    )


@api.delete("/bank-links/{link_id}", response_model=BankLinkRead)
def unlink_bank_card(link_id: IdPath, session: DbSession, actor: Operator) -> BankLinkRead:
    """Unlink a bank card; it takes effect at once."""
    return service.unlink_bank_card(session, link_id=link_id, actor=actor)


@api.post("/bank-check", response_model=BankCheckResponse)
def bank_check(body: BankCheckRequest, session: DbSession, actor: Acquirer) -> BankCheckResponse:
    """An acquirer's or till's question: this bank card, tariff X? Yes or no."""
    yes = service.check_bank_card(session, par=body.par, pan=body.pan, tariff=body.tariff)
    return BankCheckResponse(result="yes" if yes else "no")


@api.post("/cards/{card_id}/chip", response_model=ChipIssued, status_code=201)
def issue_chip(card_id: IdPath, session: DbSession, actor: Operator) -> ChipIssued:
    """A chip identity (identifier and key, shown once) for a card."""
    return service.issue_chip(session, card_id=card_id, actor=actor)


@api.put("/cards/{card_id}/pin", status_code=204)
def set_pin(card_id: IdPath, body: PinSet, session: DbSession, actor: Operator) -> Response:
    """Set or reset a card's PIN (an operator's act, audited; it also lifts a block)."""
    service.set_pin(session, card_id=card_id, pin=body.pin, actor=actor)
    return Response(status_code=204)


@api.post("/kiosk/sessions", response_model=KioskSessionStarted, status_code=201, responses=_429)
def kiosk_start(
    body: KioskStart, request: Request, session: DbSession, kiosk: Kiosk
) -> KioskSessionStarted:
    """Card + PIN at a kiosk opens a session (120 s idle timeout)."""
    return service.start_kiosk_session(
        session,
        chip_id=body.chip_id,
        chip_key=body.chip_key,
        pin=body.pin,
        kiosk=kiosk,
        address=request.client.host if request.client else "unknown",
        commit=session.commit,
    )


KioskToken = Annotated[str, Header(alias="X-Kiosk-Session", min_length=1, max_length=64)]


@api.get("/kiosk/session", response_model=KioskView, responses=_429)
def kiosk_read(
    token: KioskToken,
    session: DbSession,
    kiosk: Kiosk,
    lang: Annotated[str, Query(pattern="^(kk|ru|en)$")] = "kk",
) -> KioskView:
    """The citizen's view, assembled now (statuses, decisions, offers, wallet)."""
    return service.kiosk_view(session, token=token, kiosk=kiosk, lang=lang)


@api.delete("/kiosk/session", status_code=204)
def kiosk_end(token: KioskToken, session: DbSession, kiosk: Kiosk) -> Response:
    """Logout: nothing of the session stays but the audit record."""
    service.end_kiosk_session(session, token=token, kiosk=kiosk)
    return Response(status_code=204)


@public.get("/status")
def status_lists(session: DbSession) -> list[str]:
    """The URIs of every published status list (what an offline verifier downloads)."""
    return service.published_list_uris(session)


@public.get("/status/{list_id}", response_class=Response)
async def status_list(list_id: IdPath, session: DbSession) -> Response:
    """A published Token Status List (JWT, `application/statuslist+jwt`)."""
    token = await run_in_threadpool(service.status_list_token, session, list_id=list_id)
    ttl = service.list_ttl()
    return Response(
        content=token,
        media_type="application/statuslist+jwt",
        headers={"Cache-Control": f"max-age={ttl}"},
    )


@public.get("/.well-known/jwks.json")
def jwks() -> dict[str, Any]:
    """The issuer's public keys (active and retired-but-still-verifying)."""
    return service.published_jwks()


@public.get("/.well-known/jwt-vc-issuer")
def vc_issuer() -> dict[str, Any]:
    """SD-JWT VC issuer metadata."""
    return service.issuer_metadata()


router.include_router(api)
router.include_router(public)
