"""Authentication dependencies: `X-API-Key` or `Authorization: Bearer`, checked against roles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from socialcard.core.deps import DbSession
from socialcard.security import service
from socialcard.security.enums import Role
from socialcard.security.errors import MissingApiKey
from socialcard.security.schemas import Actor


async def current_actor(
    request: Request,
    session: DbSession,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Actor:
    """The caller, from its API key.

    Async so that a key verified in the last seconds costs no thread-pool hop; only a key
    missing from the cache is looked up in the store, in the thread pool.
    """
    raw = x_api_key
    if raw is None and authorization and authorization.lower().startswith("bearer "):
        raw = authorization[7:].strip()
    if not raw:
        raise MissingApiKey("send an API key in the X-API-Key header")
    request_id = getattr(request.state, "request_id", None)
    actor = service.cached_actor(raw_key=raw, request_id=request_id)
    if actor is None:
        actor = await run_in_threadpool(
            service.authenticate, session, raw_key=raw, request_id=request_id
        )
    return actor


def require_roles(*roles: Role) -> Callable[..., Awaitable[Actor]]:
    """A dependency that admits only the given roles (and admin)."""

    async def dependency(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        service.ensure_role(actor, roles)
        return actor

    return dependency
