"""The outreach API end to end: segments, a campaign, its funnel, cases; problems, never 5xx."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from socialcard.core.clock import today
from socialcard.proactive import links
from socialcard.proactive import repository as proactive_repository
from socialcard.proactive import service as proactive_service
from tests.outreach.helpers import METHODOLOGY, household, stored_run

BASE = "/api/v1/outreach"
SEGMENT = {
    "code": "level_e_single",
    "title": "Level E, single parent",
    "methodology_id": METHODOLOGY,
    "levels": ["E"],
    "indicators": ["single_parent"],
}


def _problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    return body


def test_a_segment_campaign_end_to_end(
    client: TestClient, operator_headers: dict[str, str], session: Session
) -> None:
    one, two = household(session, language="en"), household(session, language="ru")
    other = household(session)
    run_id = stored_run(
        session,
        "2026-03",
        {
            one.family_id: ("E", {"single_parent"}),
            two.family_id: ("E", {"single_parent", "no_working_adult"}),
            other.family_id: ("E", set()),
        },
    )
    created = client.post(f"{BASE}/segments", json=SEGMENT, headers=operator_headers)
    assert created.status_code == 201, created.text
    assert created.json()["levels"] == ["E"]
    listed = client.get(f"{BASE}/segments", headers=operator_headers).json()
    assert [s["code"] for s in listed] == ["worsened", "level_e_single"]

    started = client.post(
        f"{BASE}/segments/level_e_single/campaigns",
        params={"purpose": "case_review"},
        json={"run_id": run_id},
        headers=operator_headers,
    )
    assert started.status_code == 200, started.text
    body = started.json()
    assert (body["families"], body["invited"], body["cases_opened"]) == (2, 2, 2)

    proactive_service.receive_reply(session, provider_message_id="r-1", phone=one.phone, body="yes")
    funnel = client.get(f"{BASE}/segments/level_e_single/funnel", headers=operator_headers)
    assert funnel.status_code == 200
    assert funnel.json()["agreed"] == 1
    assert funnel.json()["pending"] == 1

    cases = client.get(
        f"{BASE}/cases",
        params={"purpose": "case_review", "segment": "level_e_single", "outcome": "open"},
        headers=operator_headers,
    )
    assert cases.status_code == 200
    items = cases.json()["items"]
    assert {c["family_id"] for c in items} == {one.family_id, two.family_id}
    case_id = next(c["id"] for c in items if c["family_id"] == one.family_id)
    review = (today() + timedelta(days=14)).isoformat()
    updated = client.patch(
        f"{BASE}/cases/{case_id}",
        params={"purpose": "case_review"},
        json={
            "assigned_worker": "Д. Серікова",
            "contact": {"channel": "visit", "note": "home visit, documents for ASP"},
            "outcome": "supported",
            "next_review_on": review,
        },
        headers=operator_headers,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["outcome"] == "supported"
    assert updated.json()["offer_status"] == "agreed"
    one_case = client.get(
        f"{BASE}/cases/{case_id}", params={"purpose": "case_review"}, headers=operator_headers
    )
    assert one_case.json()["contacts"][0]["channel"] == "visit"
    assert one_case.json()["next_review_on"] == review
    funnel = client.get(f"{BASE}/segments/level_e_single/funnel", headers=operator_headers)
    assert funnel.json()["outcomes"]["supported"] == 1


def test_bad_input_names_the_field(
    client: TestClient, operator_headers: dict[str, str], session: Session
) -> None:
    bad_level = client.post(
        f"{BASE}/segments", json={**SEGMENT, "levels": ["Q"]}, headers=operator_headers
    )
    assert _problem(bad_level, 422)["errors"][0]["field"] == "levels"  # type: ignore[index]
    bad_code = client.post(
        f"{BASE}/segments", json={**SEGMENT, "code": "Bad Code"}, headers=operator_headers
    )
    assert "code" in str(_problem(bad_code, 422)["errors"])
    bad_condition = client.post(
        f"{BASE}/segments",
        json={**SEGMENT, "condition": "count(member) filter (where member.age < 3) >"},
        headers=operator_headers,
    )
    assert _problem(bad_condition, 422)["errors"][0]["field"] == "condition"  # type: ignore[index]
    unknown_key = client.post(
        f"{BASE}/segments", json={**SEGMENT, "colour": "red"}, headers=operator_headers
    )
    _problem(unknown_key, 422)
    client.post(f"{BASE}/segments", json=SEGMENT, headers=operator_headers)
    taken = client.post(f"{BASE}/segments", json=SEGMENT, headers=operator_headers)
    assert _problem(taken, 409)["errors"][0]["field"] == "code"  # type: ignore[index]
    no_run = client.post(
        f"{BASE}/segments/level_e_single/campaigns",
        params={"purpose": "case_review"},
        json={},
        headers=operator_headers,
    )
    _problem(no_run, 404)
    no_purpose = client.post(
        f"{BASE}/segments/level_e_single/campaigns", json={}, headers=operator_headers
    )
    assert "purpose" in str(_problem(no_purpose, 422)["errors"])
    _problem(client.get(f"{BASE}/segments/nope", headers=operator_headers), 404)
    _problem(
        client.get(
            f"{BASE}/cases/99999", params={"purpose": "case_review"}, headers=operator_headers
        ),
        404,
    )
    bad_outcome = client.get(
        f"{BASE}/cases",
        params={"purpose": "case_review", "outcome": "won"},
        headers=operator_headers,
    )
    assert "outcome" in str(_problem(bad_outcome, 422)["errors"])


def test_other_roles_are_refused(
    client: TestClient, policy_owner_headers: dict[str, str], auditor_headers: dict[str, str]
) -> None:
    for headers in (policy_owner_headers, auditor_headers):
        _problem(client.get(f"{BASE}/segments", headers=headers), 403)
    _problem(client.get(f"{BASE}/segments"), 401)


def test_the_signed_link_page_invites_without_asking_for_an_account(
    client: TestClient, operator_headers: dict[str, str], session: Session
) -> None:
    family = household(session, language="ru")
    run_id = stored_run(session, "2026-03", {family.family_id: ("E", {"single_parent"})})
    client.post(f"{BASE}/segments", json=SEGMENT, headers=operator_headers)
    client.post(
        f"{BASE}/segments/level_e_single/campaigns",
        params={"purpose": "case_review"},
        json={"run_id": run_id},
        headers=operator_headers,
    )
    case = client.get(
        f"{BASE}/cases", params={"purpose": "case_review"}, headers=operator_headers
    ).json()["items"][0]
    message = proactive_repository.offer_message(session, case["offer_id"])
    assert message is not None
    assert message.secret_ref is not None
    _, offer_id, expiry = message.secret_ref.split(":")
    token = links.make_token(int(offer_id), expires_at=datetime.fromtimestamp(int(expiry), tz=UTC))
    page = client.get(f"/consent/{token}")
    assert page.status_code == 200
    assert "Центр поддержки семьи" in page.text
    assert 'name="iban"' not in page.text
    answered = client.post(
        f"/consent/{token}",
        content="decision=agree&iban=KZ000000000000000000",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answered.status_code == 200, answered.text
    assert "Социальный работник свяжется" in answered.text
    after = client.get(
        f"{BASE}/cases/{case['id']}", params={"purpose": "case_review"}, headers=operator_headers
    )
    assert after.json()["offer_status"] == "agreed"


def test_a_segment_program_is_not_a_benefit_campaign(
    client: TestClient, operator_headers: dict[str, str]
) -> None:
    answer = client.post(
        "/api/v1/proactive/campaigns/outreach.worsened/run",
        json={"period": "2026-03"},
        headers=operator_headers,
    )
    assert _problem(answer, 404)["errors"][0]["field"] == "program_id"  # type: ignore[index]
