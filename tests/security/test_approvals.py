"""Finding 2: one operator key can no longer mint and spend money. Budget top-ups, manual
fundings, merchant onboarding and citizen keys are requests that a second person of another
role approves; every step is audited with the key that took it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from socialcard.core import clock
from socialcard.security import service
from socialcard.security.models import AuditEvent
from socialcard.wallet.funding import service as funding_service
from socialcard.wallet.merchants.service import make_bin
from tests.factories import make_person
from tests.wallet.factories import PERIOD, PROGRAM, REGION

API = "/api/v1/wallet"


def _key_id(session: Session, headers: dict[str, str]) -> int | None:
    return service.authenticate(session, raw_key=headers["X-API-Key"]).key_id


def _decide(client: TestClient, approval_id: int, headers: dict[str, str]) -> Any:
    return client.post(f"/api/v1/approvals/{approval_id}/approve", headers=headers)


def _balance(session: Session) -> int:
    return funding_service.budget_balance(
        session, program_id=PROGRAM, region_kato=REGION
    ).balance_minor


class TestBudgetTopUp:
    def test_takes_effect_only_when_a_policy_owner_approves(
        self,
        client: TestClient,
        session: Session,
        operator_headers: dict[str, str],
        policy_owner_headers: dict[str, str],
        admin_headers: dict[str, str],
        auditor_headers: dict[str, str],
    ) -> None:
        body = {"program_id": PROGRAM, "region_kato": REGION, "amount_minor": 10**15}
        filed = client.post(f"{API}/budgets", json=body, headers=operator_headers)
        assert filed.status_code == 202, filed.text
        request = filed.json()
        assert (request["kind"], request["status"]) == ("budget_allocation", "pending")
        assert _balance(session) == 0
        own = _decide(client, request["id"], operator_headers)
        assert (own.status_code, own.json()["code"]) == (403, "approver_not_independent")
        other_operator = {
            "X-API-Key": service.create_api_key(session, name="op2", role="operator").key
        }
        same_role = _decide(client, request["id"], other_operator)
        assert (same_role.status_code, same_role.json()["code"]) == (
            403,
            "approver_not_independent",
        )
        admin = _decide(client, request["id"], admin_headers)
        assert (admin.status_code, admin.json()["code"]) == (403, "approval_not_allowed")
        assert _balance(session) == 0
        approved = _decide(client, request["id"], policy_owner_headers)
        assert approved.status_code == 200, approved.text
        assert approved.json()["result"]["balance_minor"] == 10**15
        assert _balance(session) == 10**15
        again = _decide(client, request["id"], policy_owner_headers)
        assert (again.status_code, again.json()["code"]) == (409, "approval_closed")
        assert _balance(session) == 10**15
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        trail = [
            (e.action, e.actor_key_id)
            for e in events
            if e.action.startswith(("approval.", "wallet."))
        ]
        maker, checker = _key_id(session, operator_headers), _key_id(session, policy_owner_headers)
        assert trail == [
            ("approval.request.budget_allocation", maker),
            ("wallet.budget.allocate", checker),
            ("approval.approve.budget_allocation", checker),
        ]
        listed = client.get("/api/v1/approvals?status=approved", headers=auditor_headers).json()
        assert [a["id"] for a in listed["items"]] == [request["id"]]

    def test_a_rejected_or_expired_request_never_takes_effect(
        self,
        client: TestClient,
        session: Session,
        operator_headers: dict[str, str],
        policy_owner_headers: dict[str, str],
    ) -> None:
        body = {"program_id": PROGRAM, "region_kato": REGION, "amount_minor": 500}
        first = client.post(f"{API}/budgets", json=body, headers=operator_headers).json()
        rejected = client.post(
            f"/api/v1/approvals/{first['id']}/reject",
            json={"reason": "not in the appropriation"},
            headers=policy_owner_headers,
        )
        assert rejected.json()["status"] == "rejected"
        assert _decide(client, first["id"], policy_owner_headers).status_code == 409
        second = client.post(f"{API}/budgets", json=body, headers=operator_headers).json()
        with clock.travel_to(clock.utcnow() + timedelta(hours=73)):
            late = _decide(client, second["id"], policy_owner_headers)
            assert (late.status_code, late.json()["code"]) == (409, "approval_closed")
            shown = client.get(f"/api/v1/approvals/{second['id']}", headers=operator_headers)
            assert shown.json()["status"] == "expired"
            for status, ids in (("pending", []), ("expired", [second["id"]])):
                listed = client.get(f"/api/v1/approvals?status={status}", headers=operator_headers)
                assert [a["id"] for a in listed.json()["items"]] == ids
        assert _balance(session) == 0


class TestManualFunding:
    def test_a_payment_into_a_wallet_needs_a_second_person(
        self,
        client: TestClient,
        session: Session,
        operator_headers: dict[str, str],
        policy_owner_headers: dict[str, str],
    ) -> None:
        funding_service.allocate_budget(
            session,
            idempotency_key="seed",
            allocation=funding_service.BudgetAllocation(
                program_id=PROGRAM, region_kato=REGION, amount_minor=100_000
            ),
        )
        person = make_person(session)
        order = {
            "person_id": person.id,
            "program_id": PROGRAM,
            "region_kato": REGION,
            "amount_minor": 40_000,
            "benefit_type": "food",
            "period": PERIOD,
        }
        missing_key = client.post(f"{API}/fundings", json=order, headers=operator_headers)
        assert missing_key.status_code == 422
        filed = client.post(
            f"{API}/fundings", json=order, headers={**operator_headers, "Idempotency-Key": "f1"}
        )
        assert filed.status_code == 202
        assert _balance(session) == 100_000
        approved = _decide(client, filed.json()["id"], policy_owner_headers)
        assert approved.status_code == 200, approved.text
        [funded] = approved.json()["result"]["funded"]
        assert funded["amount_minor"] == 40_000
        assert _balance(session) == 60_000
        paid = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "wallet.funding")
        ).one()
        assert (paid.subject_type, paid.subject_id, paid.actor_role) == (
            "person",
            person.id,
            "policy_owner",
        )


class TestMerchantsAndCitizenKeys:
    def test_a_merchant_is_registered_only_on_approval(
        self,
        client: TestClient,
        operator_headers: dict[str, str],
        admin_headers: dict[str, str],
    ) -> None:
        body = {"bin": make_bin("11044007777"), "name": "Shop", "category": "grocery"}
        filed = client.post(f"{API}/merchants", json=body, headers=operator_headers)
        assert filed.status_code == 202
        assert client.get(f"{API}/merchants", headers=operator_headers).json() == []
        approved = _decide(client, filed.json()["id"], admin_headers)
        assert approved.status_code == 200, approved.text
        merchant = approved.json()["result"]
        listed = client.get(f"{API}/merchants", headers=operator_headers).json()
        assert [m["id"] for m in listed] == [merchant["id"]]

    def test_a_citizen_key_is_minted_only_with_an_admins_approval_and_shown_once(
        self,
        client: TestClient,
        session: Session,
        operator_headers: dict[str, str],
        policy_owner_headers: dict[str, str],
        admin_headers: dict[str, str],
        auditor_headers: dict[str, str],
    ) -> None:
        person = make_person(session)
        filed = client.post(
            f"{API}/citizen-keys", json={"person_id": person.id}, headers=operator_headers
        )
        assert filed.status_code == 202
        assert "key" not in (filed.json()["result"] or {})
        wrong = _decide(client, filed.json()["id"], policy_owner_headers)
        assert (wrong.status_code, wrong.json()["code"]) == (403, "approval_not_allowed")
        approved = _decide(client, filed.json()["id"], admin_headers)
        assert approved.status_code == 200
        key = approved.json()["result"]["key"]
        wallet = client.get(f"{API}/me", headers={"X-API-Key": key})
        assert wallet.status_code == 200
        shown = client.get(f"/api/v1/approvals/{filed.json()['id']}", headers=auditor_headers)
        assert "key" not in shown.json()["result"]
        minted = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "security.citizen_key.create")
        ).one()
        assert (minted.subject_id, minted.actor_key_id) == (
            person.id,
            _key_id(session, admin_headers),
        )
