"""Errors on pages: a readable page in the user's language (or a redirect to sign in), never
JSON or a trace. API paths keep their problem+json handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from socialcard.core.errors import AppError, Unauthenticated
from socialcard.core.http import expected_problem
from socialcard.core.logging import get_logger
from socialcard.web.render import render
from socialcard.web.security import is_page

log = get_logger(__name__)
Handler = Callable[[Request, Any], Awaitable[Response]]


class SignInRequired(Unauthenticated):
    """A page needs a signed-in session of a kind (staff, citizen or merchant)."""

    code = "sign_in_required"

    def __init__(self, message: str, *, login: str) -> None:
        super().__init__(message)
        self.login = login


_MESSAGE_KEYS = {
    400: "error.bad_request",
    401: "error.unauthenticated",
    403: "error.forbidden",
    404: "error.not_found",
    405: "error.not_found",
    409: "error.conflict",
    413: "error.bad_request",
    422: "error.invalid",
    429: "error.busy",
    500: "error.internal",
    503: "error.busy",
}


def error_page(request: Request, status: int, code: str, detail: str | None = None) -> Response:
    """The error page: a translated title and message, the stable code, and the request id."""
    return render(
        request,
        "error.html",
        status_code=status,
        status=status,
        code=code,
        message_key=_MESSAGE_KEYS.get(status, "error.bad_request"),
        code_key=f"code.{code}",
        detail=detail,
        request_id=getattr(request.state, "request_id", None),
    )


def install(app: FastAPI) -> None:
    """Route page errors to HTML; keep the API's handlers for everything else."""
    previous: dict[Any, Handler] = dict(app.exception_handlers)

    def dispatch(kind: Any, page: Handler) -> None:
        api = previous[kind]

        async def handler(request: Request, exc: Any) -> Response:
            if is_page(request.url.path):
                return await page(request, exc)
            return await api(request, exc)

        app.add_exception_handler(kind, handler)

    async def app_error(request: Request, exc: AppError) -> Response:
        if isinstance(exc, SignInRequired):
            target = f"{exc.login}?next={quote(request.url.path)}"
            return RedirectResponse(target, status_code=303)
        return error_page(request, exc.status_code, exc.code, exc.message)

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors())
        return error_page(request, 422, "invalid_input", fields)

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        page = error_page(request, exc.status_code, code)
        # What the answer must carry (Allow of a 405, Retry-After) stays on the page.
        page.headers.update(exc.headers or {})
        return page

    async def unexpected(request: Request, exc: Exception) -> Response:
        expected = expected_problem(exc)
        if expected is not None:
            return error_page(request, expected.status_code, expected.code, expected.message)
        log.exception(
            "unexpected_error",
            path=request.url.path,
            request_id=getattr(request.state, "request_id", None),
        )
        return error_page(request, 500, "internal")

    dispatch(AppError, app_error)
    dispatch(RequestValidationError, validation_error)
    dispatch(StarletteHTTPException, http_error)
    dispatch(Exception, unexpected)
