"""Citizen pages (what the phone app shows): sign-in by a one-time SMS code, offers to accept
or refuse, decisions explained in the citizen's language, the wallet, and who read my data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from socialcard.card import service as card_service
from socialcard.card.errors import CardNotFound
from socialcard.core.deps import DbSession
from socialcard.core.errors import AppError, InvalidInput
from socialcard.proactive import jobs as proactive_jobs
from socialcard.proactive import service as proactive_service
from socialcard.proactive.enums import ConsentDecision
from socialcard.registry import service as registry_service
from socialcard.reports import service as reports_service
from socialcard.rules import service as rules_service
from socialcard.security import service as security_service
from socialcard.security.accounts import service as accounts
from socialcard.security.enums import Purpose
from socialcard.wallet.vouchers import service as voucher_service
from socialcard.web.auth import safe_next
from socialcard.web.deps import (
    Citizen,
    Form,
    SignInForm,
    actor_of,
    attach_pre_csrf,
    pre_session_csrf,
    set_session_cookie,
)
from socialcard.web.i18n import Translator
from socialcard.web.render import render

router = APIRouter(include_in_schema=False)
IdPath = Annotated[int, Path(ge=1, le=2**62)]


def _login(
    request: Request,
    *,
    step: str,
    national_id: str = "",
    error_key: str | None = None,
    status_code: int = 200,
) -> Response:
    pre_session_csrf(request)
    response = render(
        request,
        "citizen/login.html",
        status_code=status_code,
        step=step,
        national_id=national_id,
        error_key=error_key,
        expired=bool(request.query_params.get("expired")),
    )
    return attach_pre_csrf(request, response)


@router.get("/citizen/login")
def login_page(request: Request, next: Annotated[str, Query(max_length=300)] = "") -> Response:
    """Step 1: the national identifier (ИИН)."""
    return _login(request, step="id")


@router.post("/citizen/login")
def request_code(
    request: Request, session: DbSession, form: SignInForm, background: BackgroundTasks
) -> Response:
    """Send a one-time code by SMS to the phone registered for this ИИН (the answer is the
    same whether or not the ИИН is known, so the page cannot be used to probe the registry)."""
    national_id = "".join(ch for ch in form.get("national_id", "") if ch.isdigit())[:12]
    if len(national_id) != 12:
        return _login(request, step="id", error_key="citizen.bad_iin", status_code=422)

    def send(person_id: int, phone: str, language: str, code: str) -> None:
        t = Translator(language)
        proactive_service.queue_sms(
            session,
            key=f"sign-in:{person_id}:{code}:{phone}",
            person_id=person_id,
            phone=phone,
            language=language,
            body=t("citizen.sms_code", code=code),
        )
        # The outbox is sent once this request has committed.
        background.add_task(proactive_jobs.dispatch, max_batches=1)

    accounts.request_code(session, national_id=national_id, send=send)
    return _login(request, step="code", national_id=national_id)


@router.post("/citizen/login/code")
def check_code(request: Request, session: DbSession, form: SignInForm) -> Response:
    """Step 2: the code from the SMS; opens the citizen's session."""
    national_id = "".join(ch for ch in form.get("national_id", "") if ch.isdigit())[:12]
    code = "".join(ch for ch in form.get("code", "") if ch.isdigit())[:6]
    try:
        token, _ = accounts.sign_in_citizen(session, national_id=national_id, code=code)
    except AppError:
        # A wrong code is answered as a page; the failed try still counts (the request commits).
        return _login(
            request,
            step="code",
            national_id=national_id,
            error_key="citizen.bad_code",
            status_code=401,
        )
    response = RedirectResponse(safe_next(form.get("next"), "/citizen"), status_code=303)
    set_session_cookie(response, token)
    return response


@router.get("/citizen")
def home(request: Request, session: DbSession, me: Citizen) -> Response:
    """My offers (answer them here) and my decisions explained."""
    person_id = me.person_id or 0
    lang = Translator(getattr(request.state, "lang", "kk")).lang
    offers = proactive_service.offers_of_person(session, person_id=person_id)
    texts = {
        o.id: proactive_service.offer_text_for(session, offer_id=o.id, person_id=person_id)
        for o in offers
        if o.status == "pending"
    }
    family_id = registry_service.current_family_id(session, person_id=person_id)
    decisions = []
    if family_id is not None:
        try:
            evaluation = rules_service.family_eligibility(
                session,
                family_id=family_id,
                period=reports_service.current_period(),
                actor=actor_of(request, me),
                purpose=Purpose.CITIZEN_INQUIRY,
                lang=lang,
            )
        except AppError:
            evaluation = None
        if evaluation is not None:
            decisions = [
                d
                for d in evaluation.decisions
                if d.eligible and (d.entity_type == "family" or d.person_id == person_id)
            ]
    return render(
        request,
        "citizen/home.html",
        section="home",
        offers=offers,
        texts=texts,
        decisions=decisions,
        titles=reports_service.program_titles(lang),
    )


@router.post("/citizen/offers/{offer_id}")
def answer_offer(
    request: Request, session: DbSession, me: Citizen, offer_id: IdPath, form: Form
) -> Response:
    """Accept or refuse one of my offers."""
    try:
        decision = ConsentDecision(form.get("decision", ""))
    except ValueError:
        raise InvalidInput(
            "decision: agree or refuse", details=[{"field": "decision", "reason": "agree, refuse"}]
        ) from None
    proactive_service.decide_as_citizen(
        session, offer_id=offer_id, person_id=me.person_id or 0, decision=decision
    )
    return RedirectResponse(f"/citizen?answered={decision.value}", status_code=303)


@router.get("/citizen/wallet")
def wallet(request: Request, session: DbSession, me: Citizen) -> Response:
    """My balances, vouchers (activate the gas voucher here) and history."""
    person_id = me.person_id or 0
    return render(
        request,
        "citizen/wallet.html",
        section="wallet",
        wallet=voucher_service.citizen_wallet(session, person_id=person_id),
        history=voucher_service.citizen_history(session, person_id=person_id, limit=50),
        activated=request.query_params.get("activated"),
        activation=voucher_service.activation_needs(),
    )


@router.post("/citizen/vouchers/{voucher_id}/activate")
def activate(
    request: Request, session: DbSession, me: Citizen, voucher_id: IdPath, form: Form
) -> Response:
    """Activate my voucher (gas: with the utility account number)."""
    account = "".join(ch for ch in form.get("utility_account", "") if ch.isdigit())[:20] or None
    if form.get("utility_account") and (account is None or len(account) < 6):
        raise InvalidInput(
            "utility_account: 6 to 20 digits",
            details=[{"field": "utility_account", "reason": "6 to 20 digits"}],
        )
    voucher_service.activate(
        session, person_id=me.person_id or 0, voucher_id=voucher_id, utility_account=account
    )
    return RedirectResponse(f"/citizen/wallet?activated={voucher_id}", status_code=303)


@router.get("/citizen/access")
def access_log(request: Request, session: DbSession, me: Citizen) -> Response:
    """Who read my data, when and why (from the audit log)."""
    person_id = me.person_id or 0
    rows, _ = security_service.list_audit_events(
        session, subject_type="person", subject_id=person_id, offset=0, limit=100
    )
    family_id = registry_service.current_family_id(session, person_id=person_id)
    if family_id is not None:
        family_rows, _ = security_service.list_audit_events(
            session, subject_type="family", subject_id=family_id, offset=0, limit=100
        )
        rows = sorted([*rows, *family_rows], key=lambda r: r.at, reverse=True)[:100]
    return render(
        request,
        "citizen/access.html",
        section="access",
        rows=rows,
        me_name=f"citizen:{person_id}",
    )


@router.get("/citizen/card")
def card(request: Request, session: DbSession, me: Citizen) -> Response:
    """My statuses and my card, with a button that shows its pass as a QR code."""
    lang = Translator(getattr(request.state, "lang", "kk")).lang
    try:
        held = card_service.holder_card(
            session,
            person_id=me.person_id or 0,
            actor=actor_of(request, me),
            purpose=Purpose.SELF_SERVICE,
            lang=lang,
        )
    except CardNotFound:
        held = None
    return render(request, "citizen/card.html", section="card", held=held, shown=None)


@router.post("/citizen/card/qr")
def card_qr(request: Request, session: DbSession, me: Citizen, form: Form) -> Response:
    """A fresh single-use pass with the tariff asked, as a QR code to show at a till."""
    lang = Translator(getattr(request.state, "lang", "kk")).lang
    shown = card_service.present_pass(
        session,
        person_id=me.person_id or 0,
        tariff=form.get("tariff", "")[:40],
        actor=actor_of(request, me),
        lang=lang,
    )
    return render(request, "citizen/card.html", section="card", held=shown.holder, shown=shown)
