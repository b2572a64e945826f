"""HTTP plumbing: request ids, problem+json error rendering."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socialcard.core.errors import AppError, InvalidInput, field_error
from socialcard.core.logging import get_logger

log = get_logger(__name__)
PROBLEM_JSON = "application/problem+json"


class RequestIdMiddleware:
    """Gives every request an id (or keeps the caller's X-Request-ID) and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:40]
                break
        request_id = request_id or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        await self.app(scope, receive, send_with_id)


def problem_response(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as RFC 9457 problem+json; unexpected ones as a generic 500."""

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> JSONResponse:
        return problem_response(exc.status_code, exc.to_problem(request.url.path))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problem = invalid_input(exc.errors()).to_problem(request.url.path)
        return problem_response(422, problem)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem_response(
            exc.status_code,
            {
                "type": f"https://socialcard.example/problems/{code}",
                "title": str(exc.detail),
                "status": exc.status_code,
                "detail": str(exc.detail),
                "code": code,
                "instance": request.url.path,
            },
        )

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        if (invalid := nul_in_text(exc)) is not None:
            return problem_response(422, invalid.to_problem(request.url.path))
        request_id = getattr(request.state, "request_id", None)
        log.exception("unexpected_error", path=request.url.path, request_id=request_id)
        return problem_response(500, internal_problem(request_id))


def invalid_input(errors: Sequence[Any]) -> InvalidInput:
    """A 422 naming each field of pydantic's `errors` (a request body that failed its model)."""
    named = [
        field_error(_location(err.get("loc", ())), err.get("msg", "invalid")) for err in errors
    ]
    return InvalidInput("; ".join(f"{e['field']}: {e['reason']}" for e in named[:5]), details=named)


# What the drivers say when a text value holds U+0000, which PostgreSQL text cannot store
# (psycopg refuses to send it; asyncpg's statement fails on the server). SQLite stores it.
_NUL_MESSAGES = ("cannot contain NUL (0x00)", 'for encoding "UTF8": 0x00')


def nul_in_text(exc: BaseException) -> InvalidInput | None:
    """The 422 for a request whose text carried a NUL character into PostgreSQL, else None.

    Checked where a request fails, for every route at once, rather than field by field: any
    string of any body, query or path can carry one.
    """
    message = str(getattr(exc, "orig", None) or exc)
    if not any(text in message for text in _NUL_MESSAGES):
        return None
    reason = "text must not contain the NUL character (U+0000)"
    return InvalidInput(reason, details=[field_error("body", reason)])


def internal_problem(request_id: str | None) -> dict[str, Any]:
    """The generic 500 body: nothing internal, only the request id to quote."""
    return {
        "type": "https://socialcard.example/problems/internal",
        "title": "Internal error",
        "status": 500,
        "detail": f"An unexpected error happened; quote request id {request_id}.",
        "code": "internal",
    }


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key", "content": {PROBLEM_JSON: {}}},
    403: {"description": "Role not allowed", "content": {PROBLEM_JSON: {}}},
    404: {"description": "Not found", "content": {PROBLEM_JSON: {}}},
    422: {"description": "Invalid input, each field named", "content": {PROBLEM_JSON: {}}},
}
