"""Authentication dependencies: `X-API-Key` or `Authorization: Bearer`, checked against roles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from socialcard.core.deps import DbSession
from socialcard.security import service
from socialcard.security.enums import Role
from socialcard.security.errors import MissingApiKey
from socialcard.security.schemas import Actor


def current_actor(
    request: Request,
    session: DbSession,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Actor:
    """The caller, from its API key."""
    raw = x_api_key
    if raw is None and authorization and authorization.lower().startswith("bearer "):
        raw = authorization[7:].strip()
    if not raw:
        raise MissingApiKey("send an API key in the X-API-Key header")
    return service.authenticate(
        session, raw_key=raw, request_id=getattr(request.state, "request_id", None)
    )


def require_roles(*roles: Role) -> Callable[..., Actor]:
    """A dependency that admits only the given roles (and admin)."""

    def dependency(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        service.ensure_role(actor, roles)
        return actor

    return dependency
