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

    The commit runs when the request is done, after the response has been sent, so that a
    streamed response can still read through the session and record its audit rows (FastAPI's
    default "request" scope). Creating the session does no I/O, so it happens on the event
    loop; the commit takes one thread-pool hop (a sync generator took two).
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


DbSession = Annotated[Session, Depends(get_session)]
