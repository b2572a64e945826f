"""Page dependencies: the signed-in session from its cookie, roles, and CSRF-checked forms."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from socialcard.core.config import get_settings
from socialcard.core.deps import DbSession
from socialcard.core.errors import AppError, InvalidInput
from socialcard.security.accounts import service as accounts
from socialcard.security.accounts.errors import CsrfMismatch
from socialcard.security.accounts.service import SignedIn
from socialcard.security.enums import Role
from socialcard.security.schemas import Actor
from socialcard.web.errors import SignInRequired
from socialcard.web.security import LANG_COOKIE

SESSION_COOKIE = "sc_session"
PRE_CSRF_COOKIE = "sc_csrf"
MAX_FORM_BYTES = 64 * 1024
CONSOLE_ROLES = (Role.OPERATOR, Role.POLICY_OWNER, Role.AUDITOR)
LOGINS = {"staff": "/login", "citizen": "/citizen/login", "merchant": "/merchant/login"}


def set_session_cookie(response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        secure=get_settings().web.cookie_secure,
        samesite="strict",
        path="/",
    )


def set_language_cookie(response: Response, lang: str) -> None:
    response.set_cookie(
        LANG_COOKIE,
        lang,
        max_age=365 * 24 * 3600,
        secure=get_settings().web.cookie_secure,
        samesite="lax",
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def pre_session_csrf(request: Request, response: Response | None = None) -> str:
    """The double-submit token of a form shown before sign-in (cookie + hidden field)."""
    token = request.cookies.get(PRE_CSRF_COOKIE) or getattr(request.state, "pre_csrf", None)
    if not token:
        token = secrets.token_urlsafe(24)
        request.state.pre_csrf = token
    request.state.csrf = token
    return token


def attach_pre_csrf(request: Request, response: Response) -> Response:
    """Send the pre-session token's cookie when the page just made one."""
    token = getattr(request.state, "pre_csrf", None)
    if token and request.cookies.get(PRE_CSRF_COOKIE) != token:
        response.set_cookie(
            PRE_CSRF_COOKIE,
            token,
            httponly=True,
            secure=get_settings().web.cookie_secure,
            samesite="strict",
            path="/",
        )
    return response


def _signed_in(kind: str, roles: tuple[Role, ...]) -> Callable[..., SignedIn]:
    def dependency(request: Request, session: DbSession) -> SignedIn:
        login = LOGINS["merchant" if Role.MERCHANT in roles else kind]
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise SignInRequired("please sign in", login=login)
        try:
            signed_in = accounts.resolve(session, token=token)
        except AppError:
            raise SignInRequired("please sign in", login=login) from None
        if signed_in.kind != kind:
            raise SignInRequired("please sign in", login=login)
        if roles:
            accounts.ensure_role(signed_in, roles)
        request.state.signed_in = signed_in
        request.state.csrf = signed_in.csrf_token
        return signed_in

    return dependency


def actor_of(request: Request, signed_in: SignedIn) -> Actor:
    return signed_in.actor(getattr(request.state, "request_id", None))


Staff = Annotated[SignedIn, Depends(_signed_in("staff", ()))]
ConsoleUser = Annotated[SignedIn, Depends(_signed_in("staff", CONSOLE_ROLES))]
OperatorUser = Annotated[SignedIn, Depends(_signed_in("staff", (Role.OPERATOR,)))]
PolicyUser = Annotated[SignedIn, Depends(_signed_in("staff", (Role.POLICY_OWNER, Role.OPERATOR)))]
AuditorUser = Annotated[SignedIn, Depends(_signed_in("staff", (Role.AUDITOR,)))]
AdminUser = Annotated[SignedIn, Depends(_signed_in("staff", (Role.ADMIN,)))]
MerchantUser = Annotated[SignedIn, Depends(_signed_in("staff", (Role.MERCHANT,)))]
Citizen = Annotated[SignedIn, Depends(_signed_in("citizen", ()))]


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise InvalidInput("the form is too large", details=[{"field": "body", "reason": "size"}])
    form = await request.form(max_fields=50)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    for key, value in fields.items():
        if "\x00" in value:
            raise InvalidInput(f"{key}: contains U+0000", details=[{"field": key, "reason": "NUL"}])
    return fields


def checked_form(*, signed_in: bool) -> Callable[..., Awaitable[dict[str, str]]]:
    """A urlencoded form whose CSRF token matches the session's, or, for a sign-in form shown
    before any session, the pre-session cookie's (double submit)."""

    async def dependency(request: Request, session: DbSession) -> dict[str, str]:
        fields = await _form(request)
        current = None
        if signed_in:
            token = request.cookies.get(SESSION_COOKIE)
            if token:
                try:
                    current = await run_in_threadpool(accounts.resolve, session, token=token)
                except AppError:
                    current = None
            if current is None:
                raise CsrfMismatch("the form has expired; reload the page and try again")
        accounts.check_csrf(
            current, expected=request.cookies.get(PRE_CSRF_COOKIE), given=fields.get("csrf")
        )
        return fields

    return dependency


Form = Annotated[dict[str, str], Depends(checked_form(signed_in=True))]
SignInForm = Annotated[dict[str, str], Depends(checked_form(signed_in=False))]
