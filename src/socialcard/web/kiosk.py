"""Kiosk pages: a public kiosk's browser, where a citizen inserts a chip card and types the PIN,
then sees their own view (statuses, decisions explained, offers, wallet) until they end the
session or leave it idle.

The kiosk itself is a device with a kiosk key (role `kiosk`), entered once when the kiosk is
set up and kept in an HttpOnly cookie scoped to `/kiosk` (what the kiosk's software would hold
anyway). A citizen's session is the card domain's kiosk session: its token lives in a session
cookie, the view is assembled per request by `card.service.kiosk_view` and never stored, and
ending (or idling out) deletes the session row and the cookie; the page's script only keeps
time and replaces history entries (static/kiosk.js). Every form is checked by a double-submit
CSRF token, as the sign-in forms are.
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from socialcard.card import service as card_service
from socialcard.card.errors import KioskSessionNotFound, PinWrong
from socialcard.core.config import get_settings
from socialcard.core.deps import DbSession
from socialcard.core.errors import AppError
from socialcard.proactive.schemas import OfferRead
from socialcard.reports import service as reports_service
from socialcard.security import service as security_service
from socialcard.security.enums import Role
from socialcard.security.schemas import Actor
from socialcard.wallet.vouchers.schemas import WalletRead
from socialcard.web.deps import SignInForm, attach_pre_csrf, pre_session_csrf
from socialcard.web.render import render
from socialcard.web.security import LANG_COOKIE

router = APIRouter(include_in_schema=False)
DEVICE_COOKIE = "sc_kiosk_device"
SESSION_COOKIE = "sc_kiosk_session"
PATH = "/kiosk"
# What a failed start is shown as (the card domain's codes; anything else: try again).
_START_ERRORS = {
    "chip_key_wrong": "kiosk.card_unknown",
    "card_not_active": "kiosk.card_inactive",
    "pin_not_set": "kiosk.pin_not_set",
    "pin_wrong": "kiosk.pin_wrong",
    "pin_locked": "kiosk.pin_locked",
    "rate_limited": "kiosk.too_many",
}
_FIELDS = {"chip_id": 32, "chip_key": 64, "pin": 16}


def _device(request: Request, session: DbSession) -> Actor | None:
    """The kiosk behind the device cookie, or None when the kiosk is not set up (or its key
    was revoked or is not a kiosk's)."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return None
    try:
        actor = security_service.authenticate(
            session, raw_key=raw, request_id=getattr(request.state, "request_id", None)
        )
        security_service.ensure_role(actor, [Role.KIOSK])
    except AppError:
        return None
    return actor


def _cookie(response: Response, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        secure=get_settings().web.cookie_secure,
        samesite="strict",
        path=PATH,
    )


def _start_page(
    request: Request,
    *,
    device: Actor | None,
    error_key: str | None = None,
    error_field: str | None = None,
    tries_left: int | None = None,
    status_code: int = 200,
) -> Response:
    pre_session_csrf(request)
    ended = request.query_params.get("ended")
    response = render(
        request,
        "kiosk/start.html",
        status_code=status_code,
        device=device,
        error_key=error_key,
        error_field=error_field,
        tries_left=tries_left,
        ended=ended if ended in ("timeout", "logout") else None,
    )
    return attach_pre_csrf(request, response)


def _ended(reason: str) -> Response:
    """Back to the start page; the session's cookie and the language chosen with it go."""
    response = RedirectResponse(f"{PATH}?ended={reason}", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PATH)
    response.delete_cookie(LANG_COOKIE, path="/")
    return response


@router.get("/kiosk")
def start_page(request: Request, session: DbSession) -> Response:
    """Insert the card and type the PIN (or, on a kiosk not set up yet, enter its key). A
    session still open in this browser ends here: the start page never leaves one behind."""
    device = _device(request, session)
    token = request.cookies.get(SESSION_COOKIE)
    if device is not None and token:
        with contextlib.suppress(KioskSessionNotFound):
            card_service.end_kiosk_session(session, token=token[:64], kiosk=device)
    response = _start_page(request, device=device)
    if token:
        response.delete_cookie(SESSION_COOKIE, path=PATH)
    return response


@router.post("/kiosk/setup")
def setup(request: Request, session: DbSession, form: SignInForm) -> Response:
    """Set this browser up as a kiosk with a kiosk key (done once by the installer)."""
    raw = form.get("kiosk_key", "").strip()[:128]
    try:
        actor = security_service.authenticate(session, raw_key=raw)
        security_service.ensure_role(actor, [Role.KIOSK])
    except AppError:
        return _start_page(
            request,
            device=None,
            error_key="kiosk.key_refused",
            error_field="kiosk_key",
            status_code=401,
        )
    response = RedirectResponse(PATH, status_code=303)
    _cookie(response, DEVICE_COOKIE, raw, max_age=365 * 24 * 3600)
    return response


@router.post("/kiosk/start")
def start(request: Request, session: DbSession, form: SignInForm) -> Response:
    """Card + PIN open a kiosk session (wrong PINs and the block as the card domain counts
    them: each try is committed before the check)."""
    device = _device(request, session)
    if device is None:
        return _start_page(request, device=None, error_key="kiosk.not_set_up", status_code=403)
    values = {name: form.get(name, "").strip() for name in _FIELDS}
    for name, limit in _FIELDS.items():
        if not values[name] or len(values[name]) > limit:
            return _start_page(
                request,
                device=device,
                error_key=f"kiosk.missing_{name}",
                error_field=name,
                status_code=422,
            )
    try:
        started = card_service.start_kiosk_session(
            session,
            chip_id=values["chip_id"],
            chip_key=values["chip_key"],
            pin=values["pin"],
            kiosk=device,
            address=request.client.host if request.client else "unknown",
            commit=session.commit,
        )
    except AppError as exc:
        refused = _start_page(
            request,
            device=device,
            error_key=_START_ERRORS.get(exc.code, "kiosk.failed"),
            error_field="pin" if exc.code == "pin_wrong" else None,
            tries_left=exc.tries_left if isinstance(exc, PinWrong) else None,
            status_code=exc.status_code,
        )
        refused.headers.update(exc.headers)  # Retry-After past a rate limit
        return refused
    response = RedirectResponse(f"{PATH}/view", status_code=303)
    _cookie(response, SESSION_COOKIE, started.token)
    return response


@router.get("/kiosk/view")
def view(request: Request, session: DbSession) -> Response:
    """The citizen's view, assembled now from the domains' services (and never stored)."""
    device = _device(request, session)
    token = request.cookies.get(SESSION_COOKIE)
    if device is None or not token:
        return _ended("timeout")
    lang = getattr(request.state, "lang", None) or "kk"
    try:
        shown = card_service.kiosk_view(session, token=token[:64], kiosk=device, lang=lang)
    except KioskSessionNotFound:
        return _ended("timeout")
    pre_session_csrf(request)
    response = render(
        request,
        "kiosk/view.html",
        view=shown,
        offers=[OfferRead.model_validate(o) for o in shown.offers],
        wallet=WalletRead.model_validate(shown.wallet),
        titles=reports_service.program_titles(lang),
        idle_seconds=get_settings().card.kiosk_idle_seconds,
    )
    return attach_pre_csrf(request, response)


@router.post("/kiosk/touch")
def touch(request: Request, session: DbSession, form: SignInForm) -> Response:
    """The citizen is still here: the session's idle clock restarts (204; 404 when ended)."""
    device = _device(request, session)
    token = request.cookies.get(SESSION_COOKIE)
    if device is None or not token:
        return Response(status_code=404)
    try:
        card_service.touch_kiosk_session(session, token=token[:64], kiosk=device)
    except KioskSessionNotFound:
        return Response(status_code=404)
    return Response(status_code=204)


@router.post("/kiosk/end")
def end(request: Request, session: DbSession, form: SignInForm) -> Response:
    """End the session (the citizen's button, or the idle timer): the server deletes it, the
    browser forgets its cookie; only the audit record stays."""
    reason = "timeout" if form.get("reason") == "timeout" else "logout"
    device = _device(request, session)
    token = request.cookies.get(SESSION_COOKIE)
    if device is not None and token:
        # A session that had timed out already has nothing left to delete.
        with contextlib.suppress(KioskSessionNotFound):
            card_service.end_kiosk_session(session, token=token[:64], kiosk=device)
    return _ended(reason)
