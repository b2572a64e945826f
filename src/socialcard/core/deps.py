"""FastAPI dependencies shared by every router: the per-request session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from socialcard.core.db import new_session, run_before_commit


def get_session() -> Iterator[Session]:
    """One session per request: commit on success, roll back on any exception."""
    session = new_session()
    try:
        yield session
        run_before_commit(session)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_session)]
