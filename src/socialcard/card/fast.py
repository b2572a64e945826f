"""The hot path of `POST /api/v1/card/verify`: a merchant's check, lean.

Verification is two ES256 checks and a look-up in memory; what a FastAPI route adds per request
(route matching over every route, dependency solving, pydantic in and out) would cost more than
the work. This ASGI middleware answers an exactly typed request from a merchant whose key is in
the authentication cache by the same `service.verify_online`; anything else (a bad body, an
unknown key, another role) goes on to the router, which answers it the usual way (422 naming
the field, 401, 403). The route stays declared for OpenAPI.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socialcard.card import service
from socialcard.security import service as security_service
from socialcard.security.enums import Role

PATH = "/api/v1/card/verify"
_TARIFF = re.compile(r"[a-z][a-z0-9_]{2,39}")
_MAX_BODY = 20_000


def _key(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            return str(value.decode("latin-1"))
    return None


def _exact(body: bytes) -> tuple[str, str] | None:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict or set(data) != {"presentation", "tariff"}:
        return None
    presentation, tariff = data["presentation"], data["tariff"]
    if type(presentation) is not str or not 1 <= len(presentation) <= 16_384:
        return None
    if type(tariff) is not str or not _TARIFF.fullmatch(tariff):
        return None
    return presentation, tariff


class VerifyFastPath:
    """ASGI middleware serving the merchants' verification ahead of the router."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST"):
            await self.app(scope, receive, send)
            return
        raw = _key(scope)
        actor = security_service.cached_actor(raw_key=raw) if raw else None
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        exact = _exact(body) if size <= _MAX_BODY else None
        if actor is None or actor.role not in (Role.MERCHANT, Role.ADMIN) or exact is None:
            await self.app(scope, _replay(body), send)
            return
        result, until = service.verify_online(*exact)
        valid_until = (
            datetime.fromtimestamp(until, UTC).isoformat().replace("+00:00", "Z")
            if until is not None
            else None
        )
        answer = orjson.dumps({"result": result, "valid_until": valid_until})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def _replay(body: bytes) -> Receive:
    """A receive callable that hands the already-read body to the router."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive
