"""Wallet dependencies: a session committed before the answer is sent, terminal and citizen auth."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from socialcard.core import ratelimit
from socialcard.core.db import session_scope
from socialcard.core.deps import DbSession, get_session
from socialcard.core.errors import AppError
from socialcard.security.deps import BearerToken, require_roles
from socialcard.security.enums import Role
from socialcard.security.schemas import Actor
from socialcard.wallet.errors import MissingTerminalKey
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.merchants.service import TerminalContext
from socialcard.wallet.vouchers import service as voucher_service

# The shared request session commits before the response is sent (core/deps.py), so a terminal
# is never told "approved" for a redemption that a crash at that moment leaves uncommitted.
WalletSession = DbSession

# Ids in paths are bounded: a number past BIGINT would overflow the store (a 5xx otherwise).
IdPath = Annotated[int, Path(ge=1, le=2**62)]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="A client-chosen id, unique per request: a retry with it replays the answer.",
    ),
]


async def current_citizen(
    actor: Annotated[Actor, Depends(require_roles(Role.CITIZEN))],
) -> Actor:
    """The citizen, whose key is bound to the one person whose wallet it may read."""
    voucher_service.citizen_person(actor)
    return actor


Citizen = Annotated[Actor, Depends(current_citizen)]
Operator = Annotated[Actor, Depends(require_roles(Role.OPERATOR))]
Overseer = Annotated[Actor, Depends(require_roles(Role.OPERATOR, Role.AUDITOR))]
# Who may revoke a terminal's key: the operators who onboard merchants, and admins.
KeyKeeper = Annotated[Actor, Depends(require_roles(Role.OPERATOR, Role.ADMIN))]
MerchantKey = Annotated[Actor, Depends(require_roles(Role.MERCHANT))]


async def wallet_transaction(request: Request) -> Callable[[], AbstractContextManager[Session]]:
    """A per-request transaction the endpoint opens and commits itself, in its own thread.

    The business routes use this instead of WalletSession: the session is opened, used and
    committed in the one worker thread that runs the endpoint (a sync dependency would cost a
    thread hop to open and another to commit), and the commit happens before the answer is
    sent. The app's override of get_session (the tests' rolled-back session) is honoured.
    """
    override = request.app.dependency_overrides.get(get_session)
    if override is None:
        return session_scope
    return contextmanager(override)


Transaction = Annotated[Callable[[], AbstractContextManager[Session]], Depends(wallet_transaction)]


terminal_key_header = APIKeyHeader(
    name="X-Terminal-Key",
    scheme_name="TerminalKey",
    auto_error=False,
    description="A merchant terminal's key (or send it as a bearer token).",
)


def raw_terminal_key(headers: Any) -> str | None:
    """The key of `X-Terminal-Key`, else of `Authorization: Bearer` (raw ASGI headers)."""
    key = auth = None
    for name, value in headers:
        if name == b"x-terminal-key":
            key = value.decode("latin-1")
        elif name == b"authorization":
            auth = value.decode("latin-1")
    if key is None and auth and auth[:7].lower() == "bearer ":
        key = auth[7:].strip()
    return key or None


def _authenticate(app: Any, raw: str) -> TerminalContext:
    # Its own session, ended in this thread (the tests' override honoured): the connection is
    # back in the pool before the request goes on.
    override = getattr(app, "dependency_overrides", {}).get(get_session)
    opened = session_scope() if override is None else contextmanager(override)()
    with opened as session:
        return merchant_service.authenticate_terminal(session, raw_key=raw)


async def terminal(app: Any, raw: str) -> TerminalContext:
    """The terminal behind a raw key (cached, else looked up in a worker thread)."""
    found = merchant_service.cached_terminal(raw)
    if found is None:
        found = await run_in_threadpool(_authenticate, app, raw)
    return found


def limit_terminal(found: TerminalContext) -> None:
    """429 past the terminal's rate limit (`limits.terminal_*`)."""
    ratelimit.enforce("terminal", str(found.terminal_id), what="terminal")


async def preauthenticate(scope: Scope) -> AppError | None:
    """For RequestGuard: the terminal key checked before the body is read (None when good)."""
    raw = raw_terminal_key(scope["headers"])
    if not raw:
        return MissingTerminalKey("send the terminal key in the X-Terminal-Key header")
    try:
        await terminal(scope.get("app"), raw)
    except AppError as exc:
        return exc
    return None


async def terminal_key(
    request: Request,
    x_terminal_key: Annotated[str | None, Depends(terminal_key_header)] = None,
    authorization: BearerToken = None,
) -> str:
    """The raw terminal key (`X-Terminal-Key` or `Authorization: Bearer`), authenticated and
    within its rate limit; the route reads the terminal from the cache."""
    raw = x_terminal_key or (authorization.credentials if authorization else None)
    if not raw:
        raise MissingTerminalKey("send the terminal key in the X-Terminal-Key header")
    limit_terminal(await terminal(request.app, raw))
    return raw


TerminalKey = Annotated[str, Depends(terminal_key)]
