"""API keys are stored keyed-hashed; roles are enforced; the audit log is readable by auditors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from socialcard.security import service
from socialcard.security.enums import Role
from socialcard.security.errors import InvalidApiKey, RoleNotAllowed, UnknownRole
from socialcard.security.models import ApiKey
from socialcard.security.schemas import Actor


class TestCreateApiKey:
    def test_stores_only_a_keyed_hash(self, session: Session) -> None:
        created = service.create_api_key(session, name="akimat", role="operator")
        stored = session.scalars(select(ApiKey).where(ApiKey.id == created.id)).one()
        assert created.key not in (stored.key_hash, stored.key_prefix)
        assert stored.key_hash == service.hash_key(created.key)
        assert len(stored.key_hash) == 64

    def test_rejects_unknown_role(self, session: Session) -> None:
        with pytest.raises(UnknownRole, match="unknown role"):
            service.create_api_key(session, name="x", role="superuser")


class TestAuthenticate:
    def test_returns_the_actor(self, session: Session) -> None:
        created = service.create_api_key(session, name="enbek", role="agency")
        actor = service.authenticate(session, raw_key=created.key, request_id="r1")
        assert (actor.name, actor.role, actor.request_id) == ("enbek", "agency", "r1")

    def test_rejects_unknown_and_revoked_keys(self, session: Session) -> None:
        with pytest.raises(InvalidApiKey):
            service.authenticate(session, raw_key="sc_nope")
        created = service.create_api_key(session, name="old", role="agency")
        key = session.get(ApiKey, created.id)
        assert key is not None
        from socialcard.core.clock import utcnow

        key.revoked_at = utcnow()
        session.flush()
        service.clear_auth_cache()
        with pytest.raises(InvalidApiKey):
            service.authenticate(session, raw_key=created.key)


class TestEnsureRole:
    def test_admin_is_always_allowed(self) -> None:
        service.ensure_role(Actor(1, "root", "admin"), [Role.OPERATOR])

    def test_other_roles_are_refused(self) -> None:
        with pytest.raises(RoleNotAllowed):
            service.ensure_role(Actor(1, "shop", "merchant"), [Role.OPERATOR])


class TestAuditApi:
    def test_auditor_reads_who_saw_whom(
        self,
        client: TestClient,
        session: Session,
        operator_headers: dict[str, str],
        auditor_headers: dict[str, str],
    ) -> None:
        from tests.factories import make_person

        person = make_person(session)
        client.get(f"/api/v1/persons/{person.id}?purpose=case_review", headers=operator_headers)
        page = client.get(
            "/api/v1/audit/events",
            params={"subject_type": "person", "subject_id": person.id},
            headers=auditor_headers,
        ).json()
        assert page["total"] == 1
        event = page["items"][0]
        assert (event["action"], event["purpose"], event["actor_role"]) == (
            "person.read",
            "case_review",
            "operator",
        )

    def test_operator_cannot_read_the_audit_log(
        self, client: TestClient, operator_headers: dict[str, str]
    ) -> None:
        assert client.get("/api/v1/audit/events", headers=operator_headers).status_code == 403

    def test_admin_issues_keys_over_the_api(
        self, client: TestClient, admin_headers: dict[str, str]
    ) -> None:
        response = client.post(
            "/api/v1/api-keys", json={"name": "msek", "role": "agency"}, headers=admin_headers
        )
        assert response.status_code == 201
        key = response.json()["key"]
        assert client.get("/api/v1/audit/events", headers={"X-API-Key": key}).status_code == 403
        bad = client.post(
            "/api/v1/api-keys", json={"name": "x", "role": "king"}, headers=admin_headers
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "role"
