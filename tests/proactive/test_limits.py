"""Operator templates and provider callbacks cannot be made to cost without bound (issue 11,
finding 7: `{program:>200000000}` rendered 200 MB per SMS; a nested body answered 500)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from socialcard.proactive import service
from socialcard.proactive.errors import InvalidTemplate
from socialcard.proactive.templates import check_template, render
from socialcard.security import service as security_service

TEMPLATE = "/api/v1/proactive/templates/offer/kk"


class TestTemplates:
    @pytest.mark.parametrize(
        "body",
        [
            "{program:>200000000}",
            "«{program:{amount}}»",
            "{amount!r}",
            "{amount!s:^99999}",
            "{deadline:%Y}",
        ],
    )
    def test_a_format_specification_or_conversion_is_refused(self, body: str) -> None:
        with pytest.raises(InvalidTemplate) as refused:
            check_template(body)
        assert refused.value.code == "invalid_template"
        assert "no format or conversion" in refused.value.details[0]["reason"]

    def test_through_the_api_too(self, client: TestClient, session: Session) -> None:
        key = security_service.create_api_key(session, name="op", role="operator").key
        response = client.put(
            TEMPLATE, json={"body": "{program:>200000000}"}, headers={"X-API-Key": key}
        )
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_template"
        assert response.json()["errors"][0]["field"] == "body"
        fine = client.put(
            TEMPLATE, json={"body": "{program}: {amount}"}, headers={"X-API-Key": key}
        )
        assert fine.status_code == 200, fine.text

    def test_a_stored_specification_is_never_executed(self) -> None:
        # Written before they were refused: rendering substitutes, it does not format.
        text = render("«{program:>200000000}» {amount!r}", {"program": "АСП", "amount": "5 ₸"})
        assert text == "«АСП» 5 ₸"


class TestConsentForm:
    def test_more_fields_than_a_consent_form_has_is_a_422(self, client: TestClient) -> None:
        # Found by schemathesis: parse_qs's field limit raised, and answered 500.
        form = "&".join(f"f{n}=x" for n in range(20)) + "&decision=agree"
        response = client.post(
            "/consent/some-token",
            content=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [{"field": "body", "reason": "too many fields"}]


class TestCallbacks:
    def test_a_deeply_nested_signed_body_is_a_422(self, client: TestClient) -> None:
        for payload in (b"[" * 100_000 + b"]" * 100_000, b'{"id": ' * 50 + b"1" + b"}" * 50):
            headers = {"X-Signature": service.webhook_signature(payload)}
            for path in ("/api/v1/proactive/sms/inbound", "/api/v1/proactive/sms/receipts"):
                # Without a JSON content type too: the callback parses what it is sent.
                for content_type in ("application/json", "text/plain"):
                    response = client.post(
                        path,
                        content=payload,
                        headers={**headers, "Content-Type": content_type},
                    )
                    assert response.status_code == 422, (path, response.text)
                    problem = response.json()
                    assert problem["code"] == "invalid_input"
                    assert problem["errors"][0]["field"] == "body"
