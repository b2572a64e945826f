"""FastAPI dependencies shared by every router: the per-request session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from socialcard.core.db import new_session, run_before_commit


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
        await run_in_threadpool(_discard, session)
        raise
    if session.in_transaction() or session.info.get("before_commit"):
        await run_in_threadpool(_commit, session)
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
