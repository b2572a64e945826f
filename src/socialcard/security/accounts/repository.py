"""Queries over staff accounts, browser sessions and sign-in codes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from socialcard.security.accounts.models import SignInCode, StaffAccount, WebSession


def staff_by_username(session: Session, username: str) -> StaffAccount | None:
    return session.scalars(select(StaffAccount).where(StaffAccount.username == username)).first()


def staff_by_id(session: Session, staff_id: int) -> StaffAccount | None:
    return session.get(StaffAccount, staff_id)


def list_staff(session: Session) -> Sequence[StaffAccount]:
    return session.scalars(select(StaffAccount).order_by(StaffAccount.username)).all()


def session_by_hash(session: Session, token_hash: str) -> WebSession | None:
    return session.scalars(select(WebSession).where(WebSession.token_hash == token_hash)).first()


def touch_session(session: Session, session_id: int, at: datetime) -> None:
    session.execute(update(WebSession).where(WebSession.id == session_id).values(last_seen_at=at))


def latest_code(session: Session, person_id: int) -> SignInCode | None:
    return session.scalars(
        select(SignInCode)
        .where(SignInCode.person_id == person_id, SignInCode.used_at.is_(None))
        .order_by(SignInCode.id.desc())
        .limit(1)
    ).first()


def codes_since(session: Session, person_id: int, since: datetime) -> int:
    return len(
        session.scalars(
            select(SignInCode.id).where(
                SignInCode.person_id == person_id, SignInCode.created_at >= since
            )
        ).all()
    )
