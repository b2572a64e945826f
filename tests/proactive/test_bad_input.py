"""Nothing answers 5xx: odd periods, ids, tokens, bodies and replies."""

from __future__ import annotations

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from socialcard.proactive import jobs
from tests.proactive.conftest import LARGE, PERIOD, add_large_family, api_key, signed


class TestNoServerErrors:
    def test_odd_requests_get_4xx(self, live_client: TestClient) -> None:
        headers = api_key()
        payer = api_key("payment_provider")
        requests = [
            ("post", f"/api/v1/proactive/campaigns/{LARGE}/run", {"period": "2019-01"}, headers),
            ("post", f"/api/v1/proactive/campaigns/{LARGE}/run", {"period": "2026-00"}, headers),
            ("post", f"/api/v1/proactive/campaigns/{LARGE}/run", {}, headers),
            (
                "post",
                "/api/v1/proactive/offers/999/override",
                {"action": "agree", "reason": "x" * 12},
                headers,
            ),
            ("post", "/api/v1/proactive/offers/abc/override", {"action": "agree"}, headers),
            ("get", "/api/v1/proactive/offers/999?purpose=case_review", None, headers),
            ("get", "/api/v1/proactive/offers?purpose=nope", None, headers),
            ("get", "/api/v1/proactive/campaigns/999", None, headers),
            ("post", "/api/v1/proactive/jobs/accrue?period=13-2026", None, headers),
            ("post", "/api/v1/proactive/payment-orders/999/paid", {"reference": "x"}, payer),
            ("get", "/api/v1/proactive/payment-orders", None, headers),
            ("get", "/api/v1/proactive/funnel", None, {}),
            ("get", "/consent/" + "9" * 300, None, {}),
            ("post", "/consent/1.2.3", None, {}),
        ]
        for method, url, body, hdrs in requests:
            response = live_client.request(method, url, json=body, headers=hdrs)
            assert 400 <= response.status_code < 500, (url, response.status_code, response.text)

    def test_accrual_for_a_month_before_the_rules_is_a_no_op(self, live_client: TestClient) -> None:
        add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        response = live_client.post(
            "/api/v1/proactive/jobs/accrue?period=2019-01", headers=api_key()
        )
        assert response.status_code == 200
        assert response.json()["counts"]["ordered"] == 0

    def test_a_nul_in_a_reply_is_recorded_and_a_nul_in_its_id_is_named(
        self, live_client: TestClient
    ) -> None:
        # PostgreSQL text cannot hold NUL: the text is kept with the NUL replaced, the id refused.
        body, headers = signed({"id": "nul-1", "from": "+77010000001", "text": "да\x00"})
        response = live_client.post("/api/v1/proactive/sms/inbound", content=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == "no_offer"
        body, headers = signed({"id": "nul\x00", "from": "+77010000001", "text": "да"})
        response = live_client.post("/api/v1/proactive/sms/inbound", content=body, headers=headers)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["id"], response.text

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=st.text(max_size=40), sender=st.from_regex(r"\+?[0-9 ()-]{5,19}", fullmatch=True))
    def test_any_reply_is_recorded_never_an_error(
        self, live_client: TestClient, text: str, sender: str
    ) -> None:
        body, headers = signed({"id": f"fz-{hash((text, sender))}", "from": sender, "text": text})
        response = live_client.post("/api/v1/proactive/sms/inbound", content=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] in {"no_offer", "help", "decided"}
