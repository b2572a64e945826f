"""Authentication dependencies: `X-API-Key` or `Authorization: Bearer`, checked against roles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from socialcard.core import ratelimit
from socialcard.core.db import session_scope
from socialcard.core.deps import get_session
from socialcard.core.errors import AppError
from socialcard.security import service
from socialcard.security.enums import Role
from socialcard.security.errors import MissingApiKey
from socialcard.security.schemas import Actor

# Declared as security schemes, so the OpenAPI document has them (and /docs an Authorize
# button); either one carries the key.
api_key_header = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKey", auto_error=False, description="An API key."
)
bearer = HTTPBearer(
    scheme_name="Bearer", auto_error=False, description="An API key as a bearer token."
)
ApiKeyHeader = Annotated[str | None, Depends(api_key_header)]
BearerToken = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def raw_api_key(headers: Any) -> str | None:
    """The key of `X-API-Key`, else of `Authorization: Bearer` (raw ASGI headers or a map)."""
    pairs = headers.items() if hasattr(headers, "items") else headers
    key = auth = None
    for name, value in pairs:
        lowered = name.lower() if isinstance(name, str) else name.decode("latin-1").lower()
        text = value if isinstance(value, str) else value.decode("latin-1")
        if lowered == "x-api-key":
            key = text
        elif lowered == "authorization":
            auth = text
    if key is None and auth and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    return key or None


def _own_session(app: Any) -> Callable[[], AbstractContextManager[Session]]:
    # The tests' rolled-back session (an override of get_session) is honoured.
    override = getattr(app, "dependency_overrides", {}).get(get_session)
    return session_scope if override is None else contextmanager(override)


def _authenticate(app: Any, raw: str, request_id: str | None, client_id: str | None) -> Actor:
    # A session of its own, ended in this thread: the connection is back in the pool before
    # the answer (a refused key never holds one while the request waits for another thread).
    with _own_session(app)() as session:
        return service.authenticate(
            session, raw_key=raw, request_id=request_id, client_request_id=client_id
        )


async def _actor(app: Any, raw: str, request_id: str | None, client_id: str | None = None) -> Actor:
    actor = service.cached_actor(raw_key=raw, request_id=request_id, client_request_id=client_id)
    if actor is None:
        actor = await run_in_threadpool(_authenticate, app, raw, request_id, client_id)
    return actor


async def preauthenticate(scope: Scope) -> AppError | None:
    """For RequestGuard: the key checked before the body is read (None when it is good)."""
    raw = raw_api_key(scope["headers"])
    if not raw:
        return MissingApiKey("send an API key in the X-API-Key header")
    try:
        await _actor(scope.get("app"), raw, None)
    except AppError as exc:
        return exc
    return None


async def current_actor(
    request: Request, x_api_key: ApiKeyHeader = None, authorization: BearerToken = None
) -> Actor:
    """The caller, from its API key; 429 past the key's rate limit (`limits.api_key_*`).

    Async so that a key verified in the last seconds costs no thread-pool hop; only a key
    missing from the cache is looked up in the store, in the thread pool.
    """
    raw = x_api_key or (authorization.credentials if authorization else None)
    if not raw:
        raise MissingApiKey("send an API key in the X-API-Key header")
    request_id = getattr(request.state, "request_id", None)
    client_id = getattr(request.state, "client_request_id", None)
    actor = await _actor(request.app, raw, request_id, client_id)
    ratelimit.enforce("api_key", str(actor.key_id or actor.name), what="API key")
    return actor


def require_roles(*roles: Role) -> Callable[..., Awaitable[Actor]]:
    """A dependency that admits only the given roles (no role is implied, admin included)."""

    async def dependency(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        service.ensure_role(actor, roles)
        return actor

    # Kept for the test that lists every route's roles against the declared matrix.
    dependency.roles = frozenset(roles)  # type: ignore[attr-defined]
    return dependency
