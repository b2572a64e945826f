"""API keys: stored keyed-hashed, bound to what they may touch, expiring and revocable (from
the API and the command line, effective within the cache time); roles imply nothing; every
credential event is audited with the acting key."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from socialcard.core import clock
from socialcard.core.db import session_scope
from socialcard.security import service
from socialcard.security.enums import Role
from socialcard.security.errors import (
    InvalidApiKey,
    InvalidKeyRequest,
    RoleNotAllowed,
    UnknownRole,
)
from socialcard.security.models import ApiKey, AuditEvent
from socialcard.security.schemas import Actor
from tests.factories import make_person
from tests.fixtures.api import citizen_headers_for
from tests.wallet.server import free_port, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]


def _events(session: Session, action: str) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        )
    )


class TestCreateApiKey:
    def test_stores_only_a_keyed_hash(self, session: Session) -> None:
        created = service.create_api_key(session, name="akimat", role="operator")
        stored = session.scalars(select(ApiKey).where(ApiKey.id == created.id)).one()
        assert created.key not in (stored.key_hash, stored.key_prefix)
        assert stored.key_hash == service.hash_key(created.key)
        assert stored.hash_key_id == service.hash_key_id()
        assert len(stored.key_hash) == 64

    def test_rejects_unknown_role(self, session: Session) -> None:
        with pytest.raises(UnknownRole, match="unknown role"):
            service.create_api_key(session, name="x", role="superuser")

    def test_citizen_keys_are_not_minted_here(self, session: Session) -> None:
        with pytest.raises(InvalidKeyRequest) as caught:
            service.create_api_key(session, name="c", role="citizen")
        assert caught.value.details[0]["field"] == "role"

    @pytest.mark.parametrize(
        ("binding", "field"),
        [
            ({}, "agency"),
            ({"agency": "msek"}, "sources"),
            ({"agency": "msek", "sources": ["horoscopes"]}, "sources"),
        ],
    )
    def test_an_agency_key_names_its_agency_and_sources(
        self, session: Session, binding: dict[str, object], field: str
    ) -> None:
        with pytest.raises(InvalidKeyRequest) as caught:
            service.create_api_key(session, name="msek", role="agency", **binding)  # type: ignore[arg-type]
        assert caught.value.details[0]["field"] == field

    def test_only_agency_keys_carry_an_agency(self, session: Session) -> None:
        with pytest.raises(InvalidKeyRequest):
            service.create_api_key(session, name="x", role="operator", agency="msek")
        with pytest.raises(InvalidKeyRequest):
            service.create_api_key(session, name="shop", role="merchant")

    def test_creation_is_audited_with_the_acting_key(self, session: Session) -> None:
        admin = service.create_api_key(session, name="root", role="admin")
        actor = service.authenticate(session, raw_key=admin.key)
        created = service.create_api_key(
            session,
            name="msek",
            role="agency",
            actor=actor,
            agency="msek",
            sources=["disability"],
        )
        service.flush_audit(session)
        event = _events(session, "security.api_key.create")[-1]
        assert (event.subject_type, event.subject_id, event.actor_key_id) == (
            "api_key",
            created.id,
            admin.id,
        )
        assert event.detail == "role agency, agency msek: disability"


class TestAuthenticate:
    def test_returns_the_actor_with_its_binding(self, session: Session) -> None:
        created = service.create_api_key(
            session, name="enbek", role="agency", agency="enbek", sources=["unemployment"]
        )
        actor = service.authenticate(
            session, raw_key=created.key, request_id="r1", client_request_id="c1"
        )
        assert (actor.name, actor.role, actor.request_id, actor.client_request_id) == (
            "enbek",
            "agency",
            "r1",
            "c1",
        )
        assert (actor.agency, actor.sources) == ("enbek", frozenset({"unemployment"}))

    def test_rejects_unknown_and_revoked_keys(self, session: Session) -> None:
        with pytest.raises(InvalidApiKey):
            service.authenticate(session, raw_key="sc_nope")
        created = service.create_api_key(session, name="old", role="operator")
        service.authenticate(session, raw_key=created.key)  # now cached
        service.revoke_api_key(session, key_id=created.id, actor=service.system_actor())
        with pytest.raises(InvalidApiKey):
            service.authenticate(session, raw_key=created.key)

    def test_an_expired_key_is_refused_even_from_the_cache(self, session: Session) -> None:
        created = service.create_api_key(session, name="temp", role="operator", expires_in_days=1)
        assert service.authenticate(session, raw_key=created.key).role == "operator"
        with clock.travel_to(clock.utcnow() + timedelta(days=1, seconds=1)):
            assert service.cached_actor(raw_key=created.key) is None
            with pytest.raises(InvalidApiKey, match="expired"):
                service.authenticate(session, raw_key=created.key)


class TestEnsureRole:
    def test_no_role_is_implied_not_even_admin(self) -> None:
        service.ensure_role(Actor(1, "op", "operator"), [Role.OPERATOR])
        with pytest.raises(RoleNotAllowed):
            service.ensure_role(Actor(1, "root", "admin"), [Role.OPERATOR])
        with pytest.raises(RoleNotAllowed):
            service.ensure_role(Actor(1, "shop", "merchant"), [Role.OPERATOR])


class TestKeysOverTheApi:
    def test_admin_issues_lists_and_revokes_keys(
        self, client: TestClient, admin_headers: dict[str, str]
    ) -> None:
        response = client.post(
            "/api/v1/api-keys",
            json={"name": "msek", "role": "agency", "agency": "msek", "sources": ["disability"]},
            headers=admin_headers,
        )
        assert response.status_code == 201, response.text
        created = response.json()
        agency = {"X-API-Key": created["key"]}
        assert client.get("/api/v1/sources", headers=agency).status_code == 200
        listed = client.get("/api/v1/api-keys?role=agency", headers=admin_headers).json()
        assert [k["id"] for k in listed["items"]] == [created["id"]]
        assert "key" not in listed["items"][0]
        assert "key_hash" not in listed["items"][0]
        revoked = client.post(f"/api/v1/api-keys/{created['id']}/revoke", headers=admin_headers)
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        # This process forgets the key at once, whatever its cache.
        refused = client.get("/api/v1/sources", headers=agency)
        assert (refused.status_code, refused.json()["code"]) == (401, "api_key_invalid")

    def test_bad_requests_name_the_field(
        self, client: TestClient, admin_headers: dict[str, str]
    ) -> None:
        for body, field in (
            ({"name": "x", "role": "king"}, "role"),
            ({"name": "c", "role": "citizen"}, "role"),
            ({"name": "a", "role": "agency", "agency": "a"}, "sources"),
            ({"name": "x", "role": "operator", "expires_in_days": 0}, "expires_in_days"),
        ):
            bad = client.post("/api/v1/api-keys", json=body, headers=admin_headers)
            assert bad.status_code == 422, body
            assert bad.json()["errors"][0]["field"] == field

    def test_only_an_admin_manages_keys(
        self, client: TestClient, operator_headers: dict[str, str]
    ) -> None:
        body = {"name": "x", "role": "admin"}
        assert (
            client.post("/api/v1/api-keys", json=body, headers=operator_headers).status_code == 403
        )
        assert client.get("/api/v1/api-keys", headers=operator_headers).status_code == 403
        assert client.post("/api/v1/api-keys/1/revoke", headers=operator_headers).status_code == 403


@pytest.mark.slow
class TestRevocationAcrossProcesses:
    """A key revoked from the command line (another process) is refused by a running server
    within the cache time: the server is real, the CLI is the installed command."""

    def _cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "socialcard.cli.main", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )

    def test_api_and_terminal_keys_revoked_by_the_cli_stop_within_the_cache_time(
        self, committed_engine: Engine, database_url: str
    ) -> None:
        from tests.wallet.factories import food_items, make_merchant

        with session_scope() as session:
            operator = service.create_api_key(session, name="op", role="operator")
            _, terminal, terminal_key = make_merchant(session)
        port = free_port()
        cache = 1.0
        server = start_server(
            database_url, port, env={"SOCIALCARD_SECURITY__AUTH_CACHE_SECONDS": str(cache)}
        )
        base = f"http://127.0.0.1:{port}"
        try:
            headers = {"X-API-Key": operator.key}
            assert httpx.get(f"{base}/api/v1/wallet/merchants", headers=headers).status_code == 200
            till = {"X-Terminal-Key": terminal_key, "Idempotency-Key": "k1"}
            purchase = {"token": "no-such-voucher", "items": food_items(100_00)}
            url = f"{base}/api/v1/business/authorizations"
            assert httpx.post(url, json=purchase, headers=till).status_code == 200  # declined
            assert self._cli("apikey", "revoke", str(operator.id)).returncode == 0
            done = self._cli("wallet", "terminal-revoke", str(terminal.terminal_id))
            assert done.returncode == 0, done.stderr
            time.sleep(cache + 0.5)
            after = httpx.get(f"{base}/api/v1/wallet/merchants", headers=headers)
            assert (after.status_code, after.json()["code"]) == (401, "api_key_invalid")
            refused = httpx.post(url, json=purchase, headers={**till, "Idempotency-Key": "k2"})
            assert (refused.status_code, refused.json()["code"]) == (401, "terminal_key_invalid")
        finally:
            stop_server(server)
        with session_scope() as session:
            actions = {e.action for e in session.scalars(select(AuditEvent))}
        assert {"security.api_key.revoke", "wallet.terminal.revoke"} <= actions


class TestAuditApi:
    def test_auditor_sees_the_acting_key_and_both_request_ids(
        self,
        client: TestClient,
        session: Session,
        operator_headers: dict[str, str],
        auditor_headers: dict[str, str],
    ) -> None:
        person = make_person(session)
        read = client.get(
            f"/api/v1/persons/{person.id}?purpose=case_review",
            headers={**operator_headers, "X-Request-ID": "till-42"},
        )
        page = client.get(
            "/api/v1/audit/events",
            params={"subject_type": "person", "subject_id": person.id},
            headers=auditor_headers,
        ).json()
        assert page["total"] == 1
        event = page["items"][0]
        operator_key = service.authenticate(session, raw_key=operator_headers["X-API-Key"])
        assert (event["action"], event["purpose"], event["actor_role"]) == (
            "person.read",
            "case_review",
            "operator",
        )
        assert event["actor_key_id"] == operator_key.key_id
        assert event["request_id"] == read.headers["x-request-id"] != "till-42"
        assert event["client_request_id"] == "till-42"

    def test_operator_cannot_read_the_audit_log(
        self, client: TestClient, operator_headers: dict[str, str]
    ) -> None:
        assert client.get("/api/v1/audit/events", headers=operator_headers).status_code == 403

    def test_a_citizen_reads_who_read_their_data(
        self, client: TestClient, session: Session, operator_headers: dict[str, str]
    ) -> None:
        person, other = make_person(session), make_person(session)
        client.get(f"/api/v1/persons/{person.id}?purpose=citizen_inquiry", headers=operator_headers)
        client.get(f"/api/v1/persons/{other.id}?purpose=case_review", headers=operator_headers)
        mine = client.get("/api/v1/me/access-log", headers=citizen_headers_for(session, person.id))
        assert mine.status_code == 200
        rows = mine.json()["items"]
        reads = [r for r in rows if r["action"] == "person.read"]
        assert [(r["actor_role"], r["purpose"]) for r in reads] == [("operator", "citizen_inquiry")]
        assert {"at", "actor_name", "actor_role", "action", "purpose"} == set(rows[0])
        assert client.get("/api/v1/me/access-log", headers=operator_headers).status_code == 403

    def test_every_use_of_a_citizen_key_shows_in_the_access_log(
        self, client: TestClient, session: Session
    ) -> None:
        person = make_person(session)
        citizen = citizen_headers_for(session, person.id)
        assert client.get("/api/v1/wallet/me", headers=citizen).status_code == 200
        assert client.get("/api/v1/wallet/me/history", headers=citizen).status_code == 200
        rows = client.get("/api/v1/me/access-log", headers=citizen).json()["items"]
        reads = {(r["action"], r["actor_role"], r["purpose"]) for r in rows}
        assert ("wallet.wallet.read", "citizen", "self_service") in reads
        assert ("wallet.history.read", "citizen", "self_service") in reads
        assert ("security.citizen_key.create", "system", "administration") in reads
