"""Sign-in and sign-out pages of staff (password) — the console's and merchants' door."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from socialcard.core.deps import DbSession
from socialcard.core.errors import AppError
from socialcard.security.accounts import service as accounts
from socialcard.security.enums import Role
from socialcard.web.deps import (
    SESSION_COOKIE,
    SignInForm,
    attach_pre_csrf,
    clear_session_cookie,
    pre_session_csrf,
    set_session_cookie,
)
from socialcard.web.render import render

router = APIRouter(include_in_schema=False)
NextQuery = Annotated[str, Query(max_length=300)]


def safe_next(value: str | None, default: str) -> str:
    """A local path to return to after sign-in (never another site)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


def _login_page(
    request: Request,
    *,
    action: str,
    title_key: str,
    next_path: str,
    error_key: str | None = None,
    username: str | None = None,
    status_code: int = 200,
) -> Response:
    pre_session_csrf(request)
    others = [
        (k, h)
        for k, h in (
            ("login.staff_link", "/login"),
            ("login.citizen_link", "/citizen/login"),
            ("login.merchant_link", "/merchant/login"),
        )
        if h != action
    ]
    response = render(
        request,
        "login.html",
        status_code=status_code,
        action=action,
        title_key=title_key,
        next=next_path,
        error_key=error_key,
        username=username,
        other_logins=others,
        expired=bool(request.query_params.get("expired")),
    )
    return attach_pre_csrf(request, response)


def _sign_in(
    request: Request, session: DbSession, form: dict[str, str], *, action: str, title: str
) -> Response:
    default = "/merchant" if action == "/merchant/login" else "/"
    next_path = safe_next(form.get("next"), default)
    username = form.get("username", "")[:60]
    try:
        token, signed_in = accounts.sign_in_staff(
            session, username=username, password=form.get("password", "")[:256]
        )
    except AppError as exc:
        # Answered as a page (the failed attempt still counts: the request commits).
        key = "login.locked" if exc.code == "account_locked" else "login.failed"
        return _login_page(
            request,
            action=action,
            title_key=title,
            next_path=next_path,
            error_key=key,
            username=username,
            status_code=401,
        )
    if signed_in.role == Role.MERCHANT.value:
        next_path = next_path if next_path.startswith("/merchant") else "/merchant"
    elif next_path.startswith("/merchant"):
        next_path = "/"
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(response, token)
    return response


@router.get("/login")
def login_page(request: Request, next: NextQuery = "/") -> Response:
    """The staff sign-in page."""
    return _login_page(
        request, action="/login", title_key="login.title", next_path=safe_next(next, "/")
    )


@router.post("/login")
def login(request: Request, session: DbSession, form: SignInForm) -> Response:
    """Check the password and open a session."""
    return _sign_in(request, session, form, action="/login", title="login.title")


@router.get("/merchant/login")
def merchant_login_page(request: Request, next: NextQuery = "/merchant") -> Response:
    """The merchant staff's sign-in page."""
    return _login_page(
        request,
        action="/merchant/login",
        title_key="merchant.login_title",
        next_path=safe_next(next, "/merchant"),
    )


@router.post("/merchant/login")
def merchant_login(request: Request, session: DbSession, form: SignInForm) -> Response:
    """Check the merchant staff's password and open a session."""
    return _sign_in(request, session, form, action="/merchant/login", title="merchant.login_title")


@router.post("/logout")
async def logout(request: Request, session: DbSession) -> Response:
    """End the session (any kind) and forget its cookie; an expired session just goes."""
    form = await request.form(max_fields=5)
    given = form.get("csrf")
    token = request.cookies.get(SESSION_COOKIE)
    target = "/login"
    if token:
        try:
            signed_in = await run_in_threadpool(accounts.resolve, session, token=token)
        except AppError:
            signed_in = None
        if signed_in is not None:
            accounts.check_csrf(
                signed_in, expected=None, given=given if isinstance(given, str) else None
            )
            await run_in_threadpool(accounts.sign_out, session, token=token)
            target = LOGOUT_TARGETS.get(
                signed_in.kind
                if signed_in.staff is None or signed_in.role != "merchant"
                else "merchant",
                "/login",
            )
    response = RedirectResponse(target, status_code=303)
    clear_session_cookie(response)
    return response


LOGOUT_TARGETS = {"staff": "/login", "citizen": "/citizen/login", "merchant": "/merchant/login"}
