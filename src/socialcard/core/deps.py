"""FastAPI dependencies shared by every router: the per-request session."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import Depends, Path, Query
from sqlalchemy.orm import Session

from socialcard.core.db import new_session, run_before_commit

# Ending a session (commit or rollback) gives its connection back, so it must never wait
# behind work that waits for a connection: with one shared thread pool, 40 threads blocked
# on an empty connection pool would keep the sessions holding every connection from getting
# a thread to end, and the pool would stay empty until its timeout. Endings run on their
# own threads, so a connection is always released promptly.
_ENDING_THREADS = 16
_ending_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _ending_limiter() -> CapacityLimiter:
    loop = asyncio.get_running_loop()
    found = _ending_limiters.get(loop)
    if found is None:
        found = _ending_limiters[loop] = CapacityLimiter(_ENDING_THREADS)
    return found


async def end_session(work: Callable[[Session], None], session: Session) -> None:
    """Run a session's commit or rollback on the threads reserved for releasing connections."""
    await anyio.to_thread.run_sync(work, session, limiter=_ending_limiter())


async def get_session() -> AsyncIterator[Session]:
    """One session per request: commit on success, roll back on any exception.

    `DbSession` commits before the response is sent; `StreamingDbSession` after the body is
    sent, for a streamed response that reads (and records its audit rows) while it streams.
    Creating the session does no I/O, so it happens on the event loop; the commit takes one
    thread-pool hop (a sync generator took two).
    """
    session = new_session()
    try:
        yield session
    except BaseException:
        await end_session(_discard, session)
        raise
    if session.in_transaction() or session.info.get("before_commit"):
        await end_session(_commit, session)
    else:
        session.close()  # nothing was read or written: no connection to give back


def _commit(session: Session) -> None:
    try:
        run_before_commit(session)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _discard(session: Session) -> None:
    try:
        session.rollback()
    finally:
        session.close()


# Function scope: the commit ends before the response is sent, so a client is never told
# "done" (a redemption approved, a consent recorded) for writes that a crash at that moment
# would lose, and a failed commit answers as an error.
DbSession = Annotated[Session, Depends(get_session, scope="function")]
# Request scope: commits after a streamed body has been sent (the body reads through it).
StreamingDbSession = Annotated[Session, Depends(get_session)]


# Ids as the API takes them: positive and within BIGINT, so a larger one is a 422 naming the
# parameter rather than an overflow in the store. tests/core/test_openapi.py checks that every
# integer the API accepts is bounded.
MAX_ID = 2**63 - 1
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
