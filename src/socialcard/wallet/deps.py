"""Wallet dependencies: a session committed before the answer is sent, terminal and citizen auth."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from sqlalchemy.orm import Session

from socialcard.core.db import session_scope
from socialcard.core.deps import DbSession, get_session
from socialcard.security.deps import require_roles
from socialcard.security.enums import Role
from socialcard.security.schemas import Actor
from socialcard.wallet.errors import MissingTerminalKey
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


def current_citizen(
    session: WalletSession,
    actor: Annotated[Actor, Depends(require_roles(Role.CITIZEN))],
) -> int:
    """The person whose wallet a citizen key is bound to."""
    return voucher_service.person_for_citizen_key(session, api_key_id=actor.key_id)


CitizenId = Annotated[int, Depends(current_citizen)]
Operator = Annotated[Actor, Depends(require_roles(Role.OPERATOR))]
Overseer = Annotated[Actor, Depends(require_roles(Role.OPERATOR, Role.AUDITOR))]


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


async def terminal_key(
    x_terminal_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The raw terminal key (`X-Terminal-Key` or `Authorization: Bearer`), checked later."""
    raw = x_terminal_key
    if raw is None and authorization and authorization.lower().startswith("bearer "):
        raw = authorization[7:].strip()
    if not raw:
        raise MissingTerminalKey("send the terminal key in the X-Terminal-Key header")
    return raw


TerminalKey = Annotated[str, Depends(terminal_key)]
