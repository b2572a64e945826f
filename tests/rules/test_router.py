"""The rules API end to end: runs, decisions, one family's eligibility, what-if."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from socialcard.app import create_app
from socialcard.core.db import new_session
from socialcard.registry.models import FamilyMember
from socialcard.rules import service
from socialcard.security import service as security_service
from socialcard.security.models import AuditEvent
from tests.rules.service_data import Families, build_families

PROBLEM = "application/problem+json"


@pytest.fixture
def families(session: Session) -> Families:
    return build_families(session)


@pytest.fixture
def policy_headers(session: Session) -> dict[str, str]:
    created = security_service.create_api_key(session, name="test-policy", role="policy_owner")
    return {"X-API-Key": created.key}


@pytest.fixture
def stored_run(session: Session, families: Families) -> int:
    run = service.run_rules(
        session, period="2026-03", snapshot=service.session_snapshot(session, period="2026-03")
    )
    return run.id


def _problem(response, status: int, field: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    if field is not None:
        assert field in [e["field"] for e in body.get("errors", [])] or field in body["detail"]
    return body


class TestFamilyEligibility:
    def test_every_program_with_explanations_and_an_audit_row_per_member(
        self,
        client: TestClient,
        session: Session,
        families: Families,
        operator_headers: dict[str, str],
    ):
        response = client.get(
            f"/api/v1/families/{families.large.id}/eligibility",
            params={"period": "2026-03", "purpose": "case_review", "lang": "kk"},
            headers=operator_headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["lang"] == "kk"
        large = next(d for d in body["decisions"] if d["program_id"] == "kz.large_family")
        assert large["eligible"] is True
        assert large["conditions"] == {"four_or_more_children": True}
        assert large["explanation"]["conditions"][0].endswith("орындалды")
        assert large["version"]
        assert large["citation"]
        audited = session.scalars(
            select(AuditEvent.subject_id).where(AuditEvent.action == "family.eligibility.read")
        ).all()
        assert sorted(audited) == sorted(families.large_members)

    def test_default_language_is_the_heads(
        self, client: TestClient, families: Families, operator_headers: dict[str, str]
    ):
        response = client.get(
            f"/api/v1/families/{families.small.id}/eligibility",
            params={"period": "2026-03", "purpose": "citizen_inquiry"},
            headers=operator_headers,
        )
        assert response.status_code == 200
        assert response.json()["lang"] == "en"

    def test_unknown_family_is_a_404_problem(
        self, client: TestClient, operator_headers: dict[str, str]
    ):
        response = client.get(
            "/api/v1/families/99999999/eligibility",
            params={"period": "2026-03", "purpose": "case_review"},
            headers=operator_headers,
        )
        _problem(response, 404)

    @pytest.mark.parametrize(
        ("params", "status", "field"),
        [
            ({"period": "2026-13", "purpose": "case_review"}, 422, "period"),
            ({"period": "1990-01", "purpose": "case_review"}, 422, "period"),
            ({"period": "x" * 50, "purpose": "case_review"}, 422, "period"),
            ({"period": "2026-03", "purpose": "curiosity"}, 422, "purpose"),
            ({"period": "2026-03"}, 422, "purpose"),
            ({"period": "2026-03", "purpose": "case_review", "lang": "de"}, 422, "lang"),
        ],
    )
    def test_bad_input_is_a_problem_naming_the_field(
        self,
        client: TestClient,
        families: Families,
        operator_headers: dict[str, str],
        params: dict[str, str],
        status: int,
        field: str,
    ):
        response = client.get(
            f"/api/v1/families/{families.large.id}/eligibility",
            params=params,
            headers=operator_headers,
        )
        _problem(response, status, field)

    def test_only_operators(
        self, client: TestClient, families: Families, auditor_headers: dict[str, str]
    ):
        response = client.get(
            f"/api/v1/families/{families.large.id}/eligibility",
            params={"period": "2026-03", "purpose": "case_review"},
            headers=auditor_headers,
        )
        _problem(response, 403)


AUDIT = {"purpose": "case_review"}


def _audited(session: Session, action: str) -> list[int]:
    return list(
        session.scalars(
            select(AuditEvent.subject_id).where(
                AuditEvent.action == action, AuditEvent.subject_type == "person"
            )
        )
    )


class TestStoredRuns:
    def test_run_summary_by_program_and_region(
        self, client: TestClient, stored_run: int, auditor_headers: dict[str, str]
    ):
        response = client.get(f"/api/v1/rules/runs/{stored_run}", headers=auditor_headers)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "succeeded"
        assert {p["program_id"] for p in body["by_program"]} >= {"kz.asp", "kz.large_family"}
        assert body["by_region"]
        listed = client.get("/api/v1/rules/runs", headers=auditor_headers).json()
        assert stored_run in [r["id"] for r in listed["items"]]

    def test_decisions_filtered_by_program_eligibility_and_region(
        self,
        client: TestClient,
        stored_run: int,
        families: Families,
        operator_headers: dict[str, str],
    ):
        response = client.get(
            f"/api/v1/rules/runs/{stored_run}/decisions",
            params={**AUDIT, "program": "kz.large_family", "eligible": "true", "region": "75"},
            headers=operator_headers,
        )
        assert response.status_code == 200
        body = response.json()
        assert body["total"] == 1
        assert [d["family_id"] for d in body["items"]] == [families.large.id]
        elsewhere = client.get(
            f"/api/v1/rules/runs/{stored_run}/decisions",
            params={**AUDIT, "program": "kz.large_family", "eligible": "true", "region": "71"},
            headers=operator_headers,
        ).json()
        assert elsewhere["total"] == 0
        not_eligible = client.get(
            f"/api/v1/rules/runs/{stored_run}/decisions",
            params={**AUDIT, "program": "kz.large_family", "eligible": "false"},
            headers=operator_headers,
        ).json()
        assert {d["family_id"] for d in not_eligible["items"]} == {
            families.small.id,
            families.retired.id,
        }

    @pytest.mark.parametrize("lang", ["kk", "ru", "en"])
    def test_one_decision_explained(
        self,
        client: TestClient,
        stored_run: int,
        families: Families,
        operator_headers: dict[str, str],
        lang: str,
    ):
        response = client.get(
            f"/api/v1/rules/runs/{stored_run}/families/{families.large.id}"
            "/decisions/kz.large_family",
            params={**AUDIT, "lang": lang},
            headers=operator_headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["explanation"]["lang"] == lang
        assert body["explanation"]["text"]
        assert body["variables"]["dependent_children"] == 4

    @pytest.mark.parametrize(
        ("path", "params", "status", "field"),
        [
            ("/decisions", {"program": "kz.nope"}, 422, "program"),
            ("/decisions", {"region": "abc"}, 422, "region"),
            ("/decisions", {"period": "2026-3x"}, 422, "period"),
            ("/decisions", {"page": "0"}, 422, "page"),
            ("/families/1/decisions/kz.base_pension", {}, 422, "person_id"),
            ("/families/123456789/decisions/kz.large_family", {}, 404, None),
            ("/families/1/decisions/kz.large_family", {"lang": "fr"}, 422, "lang"),
        ],
    )
    def test_bad_input_is_a_problem(
        self,
        client: TestClient,
        stored_run: int,
        operator_headers: dict[str, str],
        path: str,
        params: dict[str, str],
        status: int,
        field: str | None,
    ):
        response = client.get(
            f"/api/v1/rules/runs/{stored_run}{path}",
            params={**AUDIT, **params},
            headers=operator_headers,
        )
        _problem(response, status, field)

    def test_decisions_are_read_with_a_purpose_audited_per_member(
        self,
        client: TestClient,
        session: Session,
        stored_run: int,
        families: Families,
        auditor_headers: dict[str, str],
        policy_headers: dict[str, str],
    ):
        url = f"/api/v1/rules/runs/{stored_run}/decisions"
        explain = (
            f"/api/v1/rules/runs/{stored_run}/families/{families.large.id}"
            "/decisions/kz.large_family"
        )
        for path in (url, explain):
            _problem(client.get(path, headers=auditor_headers), 422, "purpose")
            # A policy owner works with counts and costs, not with persons' decisions.
            _problem(client.get(path, params=AUDIT, headers=policy_headers), 403)
        before = _audited(session, "rules.decisions.read")
        page = client.get(
            url, params={"purpose": "audit", "program": "kz.large_family"}, headers=auditor_headers
        )
        assert page.status_code == 200
        shown = {d["family_id"] for d in page.json()["items"]}
        members = set(
            session.scalars(select(FamilyMember.person_id).where(FamilyMember.family_id.in_(shown)))
        )
        assert set(_audited(session, "rules.decisions.read")) - set(before) == members
        assert client.get(explain, params=AUDIT, headers=auditor_headers).status_code == 200
        large = set(
            session.scalars(
                select(FamilyMember.person_id).where(FamilyMember.family_id == families.large.id)
            )
        )
        assert set(_audited(session, "rules.decision.read")) == large

    def test_unknown_run_is_a_404(self, client: TestClient, operator_headers: dict[str, str]):
        _problem(client.get("/api/v1/rules/runs/424242", headers=operator_headers), 404)

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"period": "2026-99"}, "period"),
            ({"period": "2026-03", "programs": ["kz.nope"]}, "programs"),
            ({"period": "2026-03", "months": 0}, "months"),
            ({"period": "2026-03", "colour": "red"}, "colour"),
        ],
    )
    def test_bad_run_request_is_a_422(
        self, client: TestClient, operator_headers: dict[str, str], body: dict, field: str
    ):
        response = client.post("/api/v1/rules/runs", json=body, headers=operator_headers)
        _problem(response, 422, field)


class TestSimulationInput:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"period": "2026-03", "overrides": {"kz.nope": 1}}, "overrides.kz.nope"),
            (
                {"period": "2026-03", "overrides": {"kz.asp.poverty_line_share": "much"}},
                "overrides.kz.asp.poverty_line_share",
            ),
            ({"period": "2026-03", "overrides": {}}, "overrides"),
            ({"period": "20x6", "overrides": {"kz.asp.poverty_line_share": 0.8}}, "period"),
        ],
    )
    def test_malformed_overrides_are_a_422_naming_the_field(
        self, client: TestClient, policy_headers: dict[str, str], body: dict, field: str
    ):
        response = client.post("/api/v1/rules/simulations", json=body, headers=policy_headers)
        _problem(response, 422, field)

    def test_only_policy_owners(self, client: TestClient, operator_headers: dict[str, str]):
        response = client.post(
            "/api/v1/rules/simulations",
            json={"period": "2026-03", "overrides": {"kz.asp.poverty_line_share": 0.8}},
            headers=operator_headers,
        )
        _problem(response, 403)


@dataclass
class Live:
    client: TestClient
    operator: dict[str, str]
    policy: dict[str, str]
    families: Families


@pytest.fixture
def live(committed_engine: Engine) -> Iterator[Live]:
    """The app on the committed store (background runs use their own sessions)."""
    with Session(committed_engine, expire_on_commit=False) as session:
        families = build_families(session)
        operator = security_service.create_api_key(session, name="live-op", role="operator")
        policy = security_service.create_api_key(session, name="live-po", role="policy_owner")
        session.commit()
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield Live(client, {"X-API-Key": operator.key}, {"X-API-Key": policy.key}, families)


class TestBackgroundRun:
    def test_post_returns_202_and_the_run_completes(self, live: Live):
        response = live.client.post(
            "/api/v1/rules/runs", json={"period": "2026-03"}, headers=live.operator
        )
        assert response.status_code == 202, response.text
        run_id = response.json()["id"]
        assert response.json()["status"] == "queued"
        deadline = time.monotonic() + 60
        while True:
            body = live.client.get(f"/api/v1/rules/runs/{run_id}", headers=live.operator).json()
            if body["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert body["status"] == "succeeded", body
        assert body["families"] == 3
        with new_session() as session:
            found = list(
                service.eligible_decisions(session, run_id=run_id, program_id="kz.large_family")
            )
        assert [d.family_id for d in found] == [live.families.large.id]


class TestSimulation:
    def test_reform_over_the_registry(self, live: Live):
        response = live.client.post(
            "/api/v1/rules/simulations",
            json={"period": "2026-03", "overrides": {"kz.large_family.coef.4": 100}},
            headers=live.policy,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        large = next(t for t in body["totals"] if t["program_id"] == "kz.large_family")
        assert large["baseline_count"] == large["reform_count"] == 1
        assert large["reform_minor"] != large["baseline_minor"]
        assert body["by_region"]

    def test_the_sample_of_gainers_and_losers_is_an_audited_read(self, live: Live):
        # A reform that raises the large family's allowance: it gains, and the sample shows it.
        response = live.client.post(
            "/api/v1/rules/simulations?purpose=policy_analysis",
            json={"period": "2026-03", "overrides": {"kz.large_family.coef.4": 100}},
            headers=live.policy,
        )
        assert response.status_code == 200, response.text
        gainers = response.json()["gainers"]
        assert gainers
        with new_session() as session:
            audited = set(
                session.scalars(
                    select(AuditEvent.subject_id).where(
                        AuditEvent.action == "rules.simulation.sample",
                        AuditEvent.subject_type == "person",
                        AuditEvent.purpose == "policy_analysis",
                    )
                )
            )
            families = {g["entity_id"] for g in gainers if g["program_id"] == "kz.large_family"}
            assert families == {live.families.large.id}
            members = set(
                session.scalars(
                    select(FamilyMember.person_id).where(FamilyMember.family_id.in_(families))
                )
            )
        assert members
        assert members <= audited
