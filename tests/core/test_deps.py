"""The request session commits what a request and its streamed response wrote, or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from socialcard.core.deps import DbSession, StreamingDbSession
from socialcard.core.errors import NotFound
from socialcard.core.http import install_error_handlers
from socialcard.security import service as security_service
from socialcard.security.deps import require_roles
from socialcard.security.enums import Purpose, Role
from socialcard.security.models import AuditEvent
from socialcard.security.schemas import Actor

Operator = Annotated[Actor, Depends(require_roles(Role.OPERATOR))]


def _audit(session: Session, actor: Actor, person_id: int) -> None:
    security_service.record_access(
        session,
        actor=actor,
        action="person.read",
        subject_type="person",
        subject_ids=[person_id],
        purpose=Purpose.CASE_REVIEW,
    )


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/read/{person_id}")
    def read(
        person_id: int, session: DbSession, actor: Operator, outcome: str = "ok"
    ) -> dict[str, int]:
        _audit(session, actor, person_id)
        if outcome == "endpoint_fails":
            raise NotFound("nothing here")
        return {"read": person_id}

    @app.get("/stream")
    def stream(
        session: StreamingDbSession, actor: Operator, first: int, count: int
    ) -> StreamingResponse:
        def lines() -> Iterator[str]:
            for person_id in range(first, first + count):
                _audit(session, actor, person_id)
                yield f"{person_id}\n"

        return StreamingResponse(lines(), media_type="text/plain")

    return app


@pytest.fixture
def real_client(committed_engine: Engine) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The real get_session (no test override): requests commit to the store."""
    with Session(committed_engine) as session:
        created = security_service.create_api_key(session, name="deps", role="operator")
        session.commit()
    with TestClient(_app(), raise_server_exceptions=False) as client:
        yield client, {"X-API-Key": created.key}


def _audited(engine: Engine, person_id: int) -> int:
    with Session(engine) as session:
        query = select(func.count()).where(AuditEvent.subject_id == person_id)
        return int(session.scalar(query.select_from(AuditEvent)) or 0)


class TestGetSession:
    def test_commits_what_the_request_wrote(
        self, real_client: tuple[TestClient, dict[str, str]], committed_engine: Engine
    ) -> None:
        client, headers = real_client
        assert client.get("/read/7", headers=headers).json() == {"read": 7}
        assert _audited(committed_engine, 7) == 1

    def test_an_endpoint_error_keeps_nothing(
        self, real_client: tuple[TestClient, dict[str, str]], committed_engine: Engine
    ) -> None:
        client, headers = real_client
        response = client.get("/read/8", params={"outcome": "endpoint_fails"}, headers=headers)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert _audited(committed_engine, 8) == 0

    def test_a_streamed_response_still_writes_through_the_session(
        self, real_client: tuple[TestClient, dict[str, str]], committed_engine: Engine
    ) -> None:
        # The commit waits for the response to be sent: an export audits as it streams.
        client, headers = real_client
        response = client.get("/stream", params={"first": 20, "count": 3}, headers=headers)
        assert response.text == "20\n21\n22\n"
        assert [_audited(committed_engine, i) for i in (20, 21, 22)] == [1, 1, 1]


class TestCachedActor:
    def test_known_only_after_a_verification_and_carries_the_request_id(
        self, session: Session
    ) -> None:
        created = security_service.create_api_key(session, name="cache", role="operator")
        assert security_service.cached_actor(raw_key=created.key) is None
        security_service.authenticate(session, raw_key=created.key, request_id="r1")
        actor = security_service.cached_actor(raw_key=created.key, request_id="r2")
        assert actor is not None
        assert (actor.name, actor.role, actor.request_id) == ("cache", "operator", "r2")

    def test_unknown_key_is_not_cached(self, session: Session) -> None:
        assert security_service.cached_actor(raw_key="sc_unknown") is None
