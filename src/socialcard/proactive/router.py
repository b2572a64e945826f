"""Proactive HTTP API: campaigns, funnel, offers, overrides, templates, jobs, payment orders,
the SMS provider's callbacks, and the citizen's signed consent page."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ValidationError

from socialcard.core.deps import DbSession, IdPath, IdQuery
from socialcard.core.errors import AppError, InvalidInput
from socialcard.core.http import PROBLEM_JSON, PROBLEM_RESPONSES, parse_json
from socialcard.jobs import worker as jobs_worker
from socialcard.jobs.router import ACCEPTED as JOB_ACCEPTED
from socialcard.jobs.schemas import JobRead
from socialcard.proactive import service
from socialcard.proactive.enums import ConsentDecision, Destination
from socialcard.proactive.errors import OfferLate
from socialcard.proactive.pages import code_page, error_page, late_page, offer_page, result_page
from socialcard.proactive.schemas import (
    CampaignRead,
    CampaignRun,
    DeliveryReceipt,
    FunnelRow,
    InboundRead,
    InboundSms,
    JobResult,
    MarkPaid,
    OfferDetail,
    OfferPage,
    OverrideCreate,
    PaymentOrderRead,
    TemplateRead,
    TemplateUpdate,
)
from socialcard.security.deps import require_roles
from socialcard.security.enums import Purpose, Role
from socialcard.security.schemas import Actor

router = APIRouter(prefix="/api/v1/proactive", tags=["proactive"], responses=PROBLEM_RESPONSES)
pages = APIRouter(tags=["proactive"])

Operator = Annotated[Actor, Depends(require_roles(Role.OPERATOR))]
Payer = Annotated[Actor, Depends(require_roles(Role.PAYMENT_PROVIDER))]
PurposeQuery = Annotated[Purpose, Query(description="Why the data is read; kept in the audit log.")]
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Business conflict", "content": {PROBLEM_JSON: {}}}
}
FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"description": "Bad signature", "content": {PROBLEM_JSON: {}}}
}
# The consent pages answer HTML, errors included (a path that fails validation: problem+json).
PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}},
    "4XX": {
        "description": "An error page (invalid or expired link, closed offer, late answer)",
        "content": {"text/html": {"schema": {"type": "string"}}},
    },
    422: {
        "description": "Invalid input",
        "content": {PROBLEM_JSON: {}, "text/html": {"schema": {"type": "string"}}},
    },
}


def _signed_doc(model: type[BaseModel]) -> dict[str, Any]:
    """The body a callback reads itself (after its signature), declared for the docs."""
    schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


M = TypeVar("M", bound=BaseModel)


async def signed_body(
    request: Request, x_signature: Annotated[str | None, Header()] = None
) -> bytes:
    """The raw body of a provider callback, after checking its HMAC signature."""
    body = await request.body()
    service.verify_webhook(body, x_signature)
    return body


SignedBody = Annotated[bytes, Depends(signed_body)]


def _parse(model: type[M], body: bytes) -> M:
    # The shared strict parser: a signed body nested a thousand deep is a 422, not a 500.
    document = parse_json(body or b"null")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "reason": e["msg"]}
            for e in exc.errors()
        ]
        raise InvalidInput(
            "; ".join(f"{e['field']}: {e['reason']}" for e in errors), details=errors
        ) from None


@router.post(
    "/campaigns/{program_id}/run",
    response_model=JobRead,
    status_code=202,
    responses=JOB_ACCEPTED,
)
def run_campaign(
    program_id: Annotated[str, Path(max_length=80)],
    payload: CampaignRun,
    response: Response,
    actor: Operator,
) -> JobRead:
    """Run a program's campaign for a month as a job in the background: offers and their
    messages (idempotent). 202 with the job, its URL in Location; 409 while another campaign
    job is queued or running."""
    job = jobs_worker.start(
        "campaign", {"program_id": program_id, "period": payload.period}, actor=actor
    )
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return job


@router.get("/campaigns", response_model=list[CampaignRead])
def list_campaigns(session: DbSession, actor: Operator) -> list[CampaignRead]:
    """The latest campaigns with their counts."""
    return service.list_campaigns(session)


@router.get("/campaigns/{campaign_id}", response_model=CampaignRead)
def get_campaign(campaign_id: IdPath, session: DbSession, actor: Operator) -> CampaignRead:
    """One campaign."""
    return service.get_campaign(session, campaign_id=campaign_id)


@router.get("/funnel", response_model=list[FunnelRow])
def funnel(
    session: DbSession,
    actor: Operator,
    campaign_id: IdQuery = None,
    program_id: Annotated[str | None, Query(max_length=60)] = None,
) -> list[FunnelRow]:
    """Per campaign and region: eligible, offered, delivered, agreed/refused/lapsed, assigned,
    paid."""
    return service.funnel(session, campaign_id=campaign_id, program_id=program_id)


@router.get("/offers", response_model=OfferPage)
def search_offers(
    session: DbSession,
    actor: Operator,
    purpose: PurposeQuery,
    offer_id: IdQuery = None,
    person_id: IdQuery = None,
    program_id: Annotated[str | None, Query(max_length=60)] = None,
    campaign_id: IdQuery = None,
    status: Annotated[str | None, Query(max_length=10)] = None,
    region: Annotated[str | None, Query(max_length=9, pattern=r"^\d+$")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> OfferPage:
    """Search offers by id, person, program, campaign, status and region (audited)."""
    return service.search_offers(
        session,
        actor=actor,
        purpose=purpose,
        offer_id=offer_id,
        person_id=person_id,
        program_id=program_id,
        campaign_id=campaign_id,
        status=status,
        region=region,
        page=page,
        size=size,
    )


@router.get("/offers/{offer_id}", response_model=OfferDetail)
def get_offer(
    offer_id: IdPath, session: DbSession, actor: Operator, purpose: PurposeQuery
) -> OfferDetail:
    """An offer with its messages, consent, assignment, payment orders and overrides."""
    return service.offer_detail(session, offer_id=offer_id, actor=actor, purpose=purpose)


@router.post("/offers/{offer_id}/override", response_model=OfferDetail, responses=CONFLICT)
def override_offer(
    offer_id: IdPath, payload: OverrideCreate, session: DbSession, actor: Operator
) -> OfferDetail:
    """Decide a pending offer by hand (agree, refuse, cancel) with a written reason."""
    return service.override_offer(
        session,
        offer_id=offer_id,
        action=payload.action,
        reason=payload.reason,
        actor=actor,
        iban=payload.iban,
    )


@router.get("/templates", response_model=list[TemplateRead])
def list_templates(session: DbSession, actor: Operator) -> list[TemplateRead]:
    """Every message text by kind and language."""
    return service.list_templates(session)


@router.put("/templates/{kind}/{language}", response_model=TemplateRead)
def set_template(
    session: DbSession,
    actor: Operator,
    payload: TemplateUpdate,
    kind: Annotated[str, Path(max_length=20)],
    language: Annotated[str, Path(max_length=2)],
) -> TemplateRead:
    """Replace a message text; placeholders: {program} {amount} {deadline} {link} {period}
    {reason}."""
    return service.set_template(session, kind=kind, language=language, body=payload.body)


@router.post("/jobs/deadlines", response_model=JobResult)
def run_deadlines(session: DbSession, actor: Operator) -> JobResult:
    """Send due reminders and lapse offers past their deadline."""
    return JobResult(counts=service.process_deadlines(session))


@router.post("/jobs/events", response_model=JobResult)
def run_events(session: DbSession, actor: Operator) -> JobResult:
    """Process new life events now (the watcher does this continuously)."""
    return JobResult(counts=service.process_events(session))


@router.post("/jobs/accrue", response_model=JobResult)
def run_accrual(
    session: DbSession,
    actor: Operator,
    period: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$")],
) -> JobResult:
    """Create the month's payment orders for recurring assignments still eligible."""
    return JobResult(counts=service.accrue(session, period=period))


@router.get("/payment-orders", response_model=list[PaymentOrderRead])
def pending_payment_orders(
    session: DbSession, actor: Payer, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000
) -> list[PaymentOrderRead]:
    """Bank transfers waiting for the paying bank (each read is audited)."""
    return service.orders_for_payer(session, actor=actor, limit=limit)


@router.post("/payment-orders/{order_id}/paid", response_model=PaymentOrderRead, responses=CONFLICT)
def mark_paid(
    order_id: IdPath, payload: MarkPaid, session: DbSession, actor: Payer
) -> PaymentOrderRead:
    """Mark a bank transfer paid (idempotent with the same reference; audited)."""
    return service.mark_payment_order_paid(
        session,
        order_id=order_id,
        reference=payload.reference,
        actor=actor,
        destination=Destination.BANK,
    )


@router.post(
    "/sms/inbound",
    response_model=InboundRead,
    responses=FORBIDDEN,
    openapi_extra=_signed_doc(InboundSms),
)
def inbound_sms(session: DbSession, body: SignedBody) -> InboundRead:
    """A citizen's SMS reply forwarded by the provider (signed with X-Signature)."""
    message = _parse(InboundSms, body)
    return service.receive_reply(
        session, provider_message_id=message.id, phone=message.sender, body=message.text
    )


@router.post(
    "/sms/receipts",
    response_model=dict[str, bool],
    responses=FORBIDDEN,
    openapi_extra=_signed_doc(DeliveryReceipt),
)
def delivery_receipt(session: DbSession, body: SignedBody) -> dict[str, bool]:
    """The provider's delivery report (signed with X-Signature)."""
    receipt = _parse(DeliveryReceipt, body)
    from socialcard.core.clock import utcnow

    recorded = service.record_receipt(
        session, provider_id=receipt.id, status=receipt.status, now=utcnow()
    )
    return {"recorded": recorded}


def _error_html(exc: AppError) -> HTMLResponse:
    if isinstance(exc, OfferLate):
        return HTMLResponse(late_page(exc.language, exc.deadline), status_code=exc.status_code)
    return HTMLResponse(error_page("kk", exc.code, exc.message), status_code=exc.status_code)


@pages.get("/consent/{token}", response_class=HTMLResponse, responses=PAGE_RESPONSES)
def consent_page(token: Annotated[str, Path(max_length=200)], session: DbSession) -> HTMLResponse:
    """The citizen's page from the signed SMS link: the offer and agree / refuse."""
    try:
        view = service.link_view(session, token=token)
    except AppError as exc:
        return _error_html(exc)
    return HTMLResponse(
        offer_page(
            view.language,
            view.text,
            token,
            status=view.status,
            deadline=view.deadline,
            outreach=view.outreach,
        )
    )


async def form_fields(request: Request) -> dict[str, str]:
    """A urlencoded form body as a dict (first value of each field)."""
    try:
        parsed = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    except ValueError:  # more fields than a consent form has
        raise InvalidInput(
            "body: at most 10 form fields", details=[{"field": "body", "reason": "too many fields"}]
        ) from None
    return {k: v[0] for k, v in parsed.items() if v}


@pages.post(
    "/consent/{token}",
    response_class=HTMLResponse,
    responses=PAGE_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "decision": {"type": "string", "enum": ["agree", "refuse"]},
                            "iban": {"type": "string", "maxLength": 34},
                        },
                        "required": ["decision"],
                    }
                }
            },
        }
    },
)
def consent_submit(
    token: Annotated[str, Path(max_length=200)],
    session: DbSession,
    form: Annotated[dict[str, str], Depends(form_fields)],
) -> HTMLResponse:
    """The citizen's answer from the consent page (a bank account only with the code sent to
    the registered phone)."""
    code = form.get("code")
    decision = None
    if code is None:
        try:
            decision = ConsentDecision(form.get("decision", ""))
        except ValueError:
            return HTMLResponse(
                error_page("kk", "invalid_input", "decision: agree or refuse"), status_code=422
            )
    try:
        outcome = service.decide_by_link(
            session, token=token, decision=decision, iban=form.get("iban") or None, code=code
        )
        view = service.link_view(session, token=token)
    except AppError as exc:
        return _error_html(exc)
    if outcome.status == "decided":
        return HTMLResponse(
            result_page(view.language, outcome.decision or "", outreach=view.outreach)
        )
    status_code = {"code_sent": 200, "code_wrong": 422, "code_expired": 410, "no_phone": 409}
    return HTMLResponse(
        code_page(view.language, token, status=outcome.status, attempts_left=outcome.attempts_left),
        status_code=status_code[outcome.status],
    )
