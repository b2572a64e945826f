"""The hot path of `POST /api/v1/business/authorizations`: a terminal's purchase, lean.

A redemption is the wallet's busiest call (issue 5: 1,000/s on two cores), so it skips what a
FastAPI route costs per request (route matching over every route, dependency solving, pydantic
in and out, a thread hop for the session) and on PostgreSQL speaks to the database over asyncpg
on the event loop. It changes nothing of substance:

- the request is the same `AuthorizeRequest`: an exactly typed body is read by a check of the
  model's own bounds, anything else is handed to the model itself, so a bad field answers the
  same 422 problem naming it;
- the decision is `service.plan_authorization`, the one implementation every caller uses;
- the SQL is `redemption/repository.py`'s (the service runs the same text on a session);
- the commit precedes the answer, and errors render as the app's problem+json.

SQLite (single writer, in-process) runs the service on one writer thread per process; the
tests' overridden session runs it in the thread pool. `router.authorize` declares the route
for OpenAPI and calls `authorize` too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.db import session_scope
from socialcard.core.deps import get_session
from socialcard.core.errors import AppError, ServiceUnavailable
from socialcard.core.http import (
    PARSED_JSON,
    PROBLEM_JSON,
    expected_problem,
    internal_problem,
    invalid_input,
    parse_json,
    send_problem,
)
from socialcard.core.logging import get_logger
from socialcard.wallet import deps as wallet_deps
from socialcard.wallet.errors import MissingTerminalKey
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.merchants.service import TerminalContext
from socialcard.wallet.redemption import repository, service
from socialcard.wallet.redemption.schemas import AuthorizeRequest

log = get_logger(__name__)
PATH = "/api/v1/business/authorizations"
_CLAIM_AND_LOCK, _CLAIM_NAMES = repository.numbered(repository.CLAIM_AND_LOCK)
_WRITE, _WRITE_NAMES = repository.numbered(repository.WRITE_AUTHORIZATION)
_STORE_ANSWER, _STORE_NAMES = repository.numbered(repository.STORE_ANSWER)


# --- the request -------------------------------------------------------------------------------


def _text(value: Any, low: int, high: int) -> bool:
    return type(value) is str and low <= len(value) <= high


def _whole(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _exact_item(raw: Any) -> dict[str, Any] | None:
    if type(raw) is not dict:
        return None
    atc = raw.get("atc")
    if not (
        _text(raw.get("sku"), 1, 40)
        and _text(raw.get("category"), 1, 40)
        and _whole(raw.get("quantity"), 1, 10_000)
        and _whole(raw.get("amount_minor"), 0, 10**10)
        and (atc is None or _text(atc, 3, 10))
    ):
        return None
    return {
        "sku": raw["sku"],
        "category": raw["category"],
        "quantity": raw["quantity"],
        "amount_minor": raw["amount_minor"],
        "atc": atc,
    }


def _exact(raw: Any) -> dict[str, Any] | None:
    """The payload when every field has exactly the model's type and bounds, else None."""
    if type(raw) is not dict or not _text(raw.get("token"), 8, 40):
        return None
    raw_items, capture = raw.get("items"), raw.get("capture", False)
    partial = raw.get("allow_partial", True)
    if type(raw_items) is not list or not 1 <= len(raw_items) <= 100:
        return None
    if type(capture) is not bool or type(partial) is not bool:
        return None
    items = []
    for raw_item in raw_items:
        item = _exact_item(raw_item)
        if item is None:
            return None
        items.append(item)
    return {"token": raw["token"], "items": items, "capture": capture, "allow_partial": partial}


def parse_authorize(body: bytes, parsed: Any = None) -> dict[str, Any]:
    """The body as `service.authorize_payload` would give it; InvalidInput naming the field.

    `parsed` is the body as RequestGuard already read it (core.http.parse_json), when it did.
    Bounds below mirror `AuthorizeRequest`, whose money fields are strict as here (a test
    checks both agree on random payloads).
    """
    raw = parse_json(body) if parsed is None else parsed
    exact = _exact(raw)
    if exact is not None:
        return exact
    try:
        return service.authorize_payload(AuthorizeRequest.model_validate(raw))
    except ValidationError as exc:
        raise invalid_input(exc.errors()) from None


def _headers(scope: Scope) -> tuple[str | None, str | None]:
    """(terminal key, idempotency key) from `X-Terminal-Key` or `Authorization: Bearer`."""
    terminal = bearer = idempotency = None
    for name, value in scope["headers"]:
        if name == b"x-terminal-key":
            terminal = value.decode("latin-1")
        elif name == b"idempotency-key":
            idempotency = value.decode("latin-1")
        elif name == b"authorization" and value[:7].lower() == b"bearer ":
            bearer = value[7:].decode("latin-1").strip()
    return terminal or bearer, idempotency


# --- PostgreSQL over asyncpg -------------------------------------------------------------------


class _Row(asyncpg.Record):  # type: ignore[misc]
    """Rows readable by attribute, as the policy reads the voucher."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _Pool:
    """A small LIFO pool of asyncpg connections for one event loop.

    asyncpg's own pool resets each connection on release (another round trip); these
    connections hold no session state to reset, and a broken one is simply dropped.
    """

    def __init__(self, dsn: str, size: int, timeout: float) -> None:
        self.dsn, self.idle = dsn, asyncio.LifoQueue[asyncpg.Connection]()
        self.slots, self.timeout = asyncio.Semaphore(size), timeout

    async def run(self, work: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        # Bounded and failing fast, as the main pool (db.pool_timeout): past the wait a till
        # is told 503 with Retry-After rather than queued.
        if not self.slots.locked():
            await self.slots.acquire()  # free now: no timer to set up
        else:
            try:
                await asyncio.wait_for(self.slots.acquire(), self.timeout)
            except TimeoutError:
                raise ServiceUnavailable(
                    "the service is busy; retry shortly",
                    retry_after=get_settings().db.retry_after_seconds,
                ) from None
        try:
            conn = self.idle.get_nowait() if not self.idle.empty() else None
            if conn is None:
                conn = await asyncpg.connect(self.dsn, record_class=_Row)
            try:
                result = await work(conn)
            except BaseException:
                if not conn.is_closed() and not conn.is_in_transaction():
                    self.idle.put_nowait(conn)
                else:
                    conn.terminate()
                raise
            self.idle.put_nowait(conn)
            return result
        finally:
            self.slots.release()


_pools: dict[asyncio.AbstractEventLoop, _Pool] = {}
_sqlite_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wallet-sqlite")


def _pool() -> _Pool:
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        url = make_url(get_settings().database_url).set(drivername="postgresql")
        settings = get_settings()
        pool = _pools[loop] = _Pool(
            url.render_as_string(hide_password=False),
            settings.wallet.redemption_connections,
            settings.db.pool_timeout,
        )
    return pool


def _args(names: tuple[str, ...], params: dict[str, Any]) -> list[Any]:
    return [params[name] for name in names]


async def _authorize_postgres(
    terminal: TerminalContext, key: str | None, payload: dict[str, Any], when: datetime
) -> bytes:
    """service.authorize_postgres on the event loop: same statements, same plan.

    The answer is the text the transaction stores with the key (encoded before the commit),
    and a replay sends that same text.
    """
    params = service.claim_params(terminal, key, payload, when)

    async def work(conn: asyncpg.Connection) -> str | None:
        async with conn.transaction():
            row = await conn.fetchrow(_CLAIM_AND_LOCK, *_args(_CLAIM_NAMES, params))
            if row is None:
                return None  # the key was claimed before: replayed below
            voucher = row if row.id is not None else None
            plan = service.plan_authorization(
                terminal=terminal, voucher=voucher, payload=payload, when=when
            )
            if not plan.amount_minor or voucher is None:
                answer = {"claim_id": row.claim_id, "response": service.answer_json(plan.answer)}
                await conn.execute(_STORE_ANSWER, *_args(_STORE_NAMES, answer))
                return str(answer["response"])
            plan.answer["authorization_id"] = row.hold_id
            write = service.write_params(
                plan,
                terminal=terminal,
                voucher=voucher,
                claim_id=row.claim_id,
                hold_id=row.hold_id,
                when=when,
            )
            await conn.execute(_WRITE, *_args(_WRITE_NAMES, write))
        service.log_authorized(plan, voucher, terminal)  # committed: the answer may leave
        return str(write["response"])

    answer: str | None = await _pool().run(work)
    if answer is None:
        answer = await run_in_threadpool(_replay, params)
    return answer.encode()


def _replay(params: dict[str, Any]) -> str:
    with session_scope() as session:
        return service.replayed_json(session, params)


# --- everything else: the service on a session, in a worker thread -----------------------------


def _transaction(app: Any) -> Callable[[], AbstractContextManager[Session]]:
    # The tests' rolled-back session (an override of get_session) is honoured, as by
    # wallet.deps.wallet_transaction for the other business routes.
    override = getattr(app, "dependency_overrides", {}).get(get_session)
    return session_scope if override is None else contextmanager(override)


def _authorize_in_thread(
    app: Any, raw_key: str, key: str | None, payload: dict[str, Any], when: datetime
) -> bytes:
    with _transaction(app)() as session:
        terminal = merchant_service.authenticate_terminal(session, raw_key=raw_key)
        request = AuthorizeRequest.model_validate(payload)
        answer = service.authorize(
            session, terminal=terminal, idempotency_key=key, request=request, now=when
        )
        # Encoded inside the transaction: what cannot be sent is not committed.
        return answer.model_dump_json().encode()


async def authorize(app: Any, scope: Scope, body: bytes) -> bytes:
    """Authorize a purchase from a raw request: the answer's JSON, or an AppError to render.

    The terminal is authenticated and held to its rate limit before the body is parsed.
    """
    raw_key, key = _headers(scope)
    if not raw_key:
        raise MissingTerminalKey("send the terminal key in the X-Terminal-Key header")
    terminal = await wallet_deps.terminal(app, raw_key)
    wallet_deps.limit_terminal(terminal)
    payload = parse_authorize(body, scope.get(PARSED_JSON))
    when = utcnow()
    if get_session in getattr(app, "dependency_overrides", {}):
        result: bytes = await run_in_threadpool(
            _authorize_in_thread, app, raw_key, key, payload, when
        )
        return result
    if get_settings().database_url.startswith("sqlite"):
        # SQLite has one writer: one thread per process runs the redemptions in turn, instead
        # of many threads that would queue on the write lock and fight over the GIL.
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            _sqlite_writer, _authorize_in_thread, app, raw_key, key, payload, when
        )
        return result
    return await _authorize_postgres(terminal, key, payload, when)


# --- ASGI --------------------------------------------------------------------------------------


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def handle(app: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one authorization request end to end (problem+json for every failure)."""
    try:
        answer = await authorize(app, scope, await _read_body(receive))
    except AppError as exc:
        await send_problem(send, exc, scope["path"])
        return
    except Exception as exc:
        if (known := expected_problem(exc)) is not None:
            await send_problem(send, known, scope["path"])
            return
        request_id = scope.get("state", {}).get("request_id")
        log.exception("unexpected_error", path=scope["path"], request_id=request_id)
        body = orjson.dumps(internal_problem(request_id))
        await _send(send, 500, body, PROBLEM_JSON.encode())
        return
    await _send(send, 200, answer, b"application/json")


async def _send(send: Send, status: int, body: bytes, media_type: bytes) -> None:
    headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class FastPath:
    """ASGI middleware that serves `POST PATH` itself, ahead of the router's matching."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST":
            await handle(scope.get("app"), scope, receive, send)
            return
        await self.app(scope, receive, send)
