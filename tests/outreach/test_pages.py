"""The outreach console pages: segments with funnels, a campaign started, cases updated."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from socialcard.core.clock import today
from socialcard.outreach import service
from socialcard.outreach.schemas import SegmentCreate
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor
from tests.outreach.helpers import METHODOLOGY, household, stored_run
from tests.web.test_pages import sign_in, web  # noqa: F401


def test_an_operator_invites_a_segment_and_records_a_contact(
    web: TestClient,  # noqa: F811
    session: Session,
) -> None:
    family = household(session, language="ru")
    stored_run(session, "2026-03", {family.family_id: ("E", {"no_working_adult"})})
    service.create_segment(
        session,
        payload=SegmentCreate(
            code="e_no_work",
            title="E, no work",
            methodology_id=METHODOLOGY,
            levels=["E"],
            indicators=["no_working_adult"],
        ),
        actor=Actor(key_id=None, name="t", role="operator"),
    )
    csrf = sign_in(web, session)
    page = web.get("/outreach?lang=en")
    assert page.status_code == 200, page.text
    assert "Segments and family outreach" in page.text
    assert "e_no_work" in page.text
    missing = web.post("/outreach/e_no_work/campaigns", data={"csrf": csrf})
    assert missing.status_code == 422
    started = web.post(
        "/outreach/e_no_work/campaigns", data={"csrf": csrf, "purpose": "case_review"}
    )
    assert started.status_code == 303, started.text
    asked = web.get("/outreach/cases?segment=e_no_work")
    assert "purpose" in asked.text
    cases = web.get("/outreach/cases?segment=e_no_work&purpose=case_review&lang=ru")
    assert cases.status_code == 200
    assert "ждёт ответа" in cases.text
    case_id = (
        service.list_cases(
            session,
            actor=Actor(key_id=None, name="t", role="operator"),
            purpose=Purpose.CASE_REVIEW,
        )
        .items[0]
        .id
    )
    review = (today() + timedelta(days=7)).isoformat()
    saved = web.post(
        f"/outreach/cases/{case_id}",
        data={
            "csrf": csrf,
            "purpose": "case_review",
            "assigned_worker": "Айжан",
            "channel": "phone",
            "note": "called",
            "outcome": "reached",
            "next_review_on": review,
        },
    )
    assert saved.status_code == 303, saved.text
    shown = web.get(f"/outreach/cases/{case_id}?purpose=case_review&lang=kk")
    assert shown.status_code == 200
    assert "Айжан" in shown.text
    assert "байланыс болды" in shown.text
    bad = web.post(
        f"/outreach/cases/{case_id}",
        data={"csrf": csrf, "purpose": "case_review", "next_review_on": "tomorrow"},
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("text/html")


def test_an_operator_defines_a_segment_on_the_page(
    web: TestClient,  # noqa: F811
    session: Session,
) -> None:
    csrf = sign_in(web, session)
    created = web.post(
        "/outreach",
        data={
            "csrf": csrf,
            "code": "e_baby",
            "title": "E with a baby",
            "methodology_id": METHODOLOGY,
            "levels": "E",
            "indicators": "",
            "condition": "count(member) filter (where member.age < 3) > 0",
        },
    )
    assert created.status_code == 303, created.text
    assert service.get_segment(session, code="e_baby").levels == ["E"]
    bad = web.post(
        "/outreach?lang=en",
        data={"csrf": csrf, "code": "e_bad", "title": "bad", "levels": "Q"},
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("text/html")
    bad_code = web.post("/outreach", data={"csrf": csrf, "code": "Bad Code", "title": "x"})
    assert bad_code.status_code == 422
