"""Card API: the merchants' verification answer and its bad inputs, keys and lists, bank
checks, kiosk sessions and their rate limits (status codes and problem codes exact)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from socialcard.card import service
from socialcard.core.config import get_settings
from socialcard.security import service as security_service
from tests.card.conftest import make_card
from tests.wallet.factories import make_merchant


def _headers(session: Session, role: str) -> dict[str, str]:
    # A merchant's key is bound to its merchant (the business that verifies).
    binding = {"merchant_id": make_merchant(session)[0]} if role == "merchant" else {}
    created = security_service.create_api_key(session, name=f"t-{role}", role=role, **binding)
    return {"X-API-Key": created.key}


def _presentation(session: Session, tariff: str = "transit_reduced") -> str:
    card = make_card(session)
    keys, public = service.holder_keys_generated(1)
    batch = service.issue_passes(session, card_id=card.id, holder_keys=public)
    service.publish_lists(session)
    service.online_verifier().refresh(session)
    return service.present_for_demo(batch.passes[0], keys[0], tariff=tariff)


class TestVerify:
    def test_a_merchant_learns_result_and_valid_until_only(
        self, client: TestClient, session: Session
    ) -> None:
        headers = _headers(session, "merchant")
        presentation = _presentation(session)
        answer = client.post(
            "/api/v1/card/verify",
            json={"presentation": presentation, "tariff": "transit_reduced"},
            headers=headers,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"result", "valid_until"}
        assert body["result"] == "valid"
        assert body["valid_until"]
        replay = client.post(
            "/api/v1/card/verify",
            json={"presentation": presentation, "tariff": "transit_reduced"},
            headers=headers,
        )
        assert replay.json() == {"result": "invalid", "valid_until": None}

    def test_the_hot_path_and_the_route_answer_alike(
        self, client: TestClient, session: Session
    ) -> None:
        card = make_card(session)
        keys, public = service.holder_keys_generated(2)
        batch = service.issue_passes(session, card_id=card.id, holder_keys=public)
        service.online_verifier().refresh(session)
        headers = _headers(session, "merchant")
        security_service.clear_auth_cache()  # the first request goes through the route
        answers = []
        for sd, key in zip(batch.passes, keys, strict=True):
            body = {
                "presentation": service.present_for_demo(sd, key, tariff="transit_reduced"),
                "tariff": "transit_reduced",
            }
            answer = client.post("/api/v1/card/verify", json=body, headers=headers)
            assert answer.status_code == 200
            answers.append(answer.json())
        assert answers[0] == answers[1]
        assert answers[0]["result"] == "valid"

    def test_only_merchants_verify(self, client: TestClient, session: Session) -> None:
        body = {"presentation": "a.b.c~", "tariff": "transit_reduced"}
        assert client.post("/api/v1/card/verify", json=body).status_code == 401
        kiosk = _headers(session, "kiosk")
        assert client.post("/api/v1/card/verify", json=body, headers=kiosk).status_code == 403

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"presentation": "x" * 20_000, "tariff": "transit_reduced"}, "presentation"),
            ({"presentation": "a", "tariff": "Transit Reduced"}, "tariff"),
            ({"presentation": 12, "tariff": "transit_reduced"}, "presentation"),
            ({"presentation": "a"}, "tariff"),
            ({"presentation": "a", "tariff": "transit_reduced", "extra": 1}, "extra"),
        ],
    )
    def test_bad_bodies_are_422_naming_the_field(
        self, client: TestClient, session: Session, body: dict[str, object], field: str
    ) -> None:
        answer = client.post(
            "/api/v1/card/verify", json=body, headers=_headers(session, "merchant")
        )
        assert answer.status_code == 422
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert any(field in e["field"] for e in answer.json()["errors"])

    def test_garbage_presentations_answer_invalid_never_5xx(
        self, client: TestClient, session: Session
    ) -> None:
        headers = _headers(session, "merchant")
        for garbage in ("~", "a.b.c~", "\\ud800~", "é" * 50, "a" * 16_000, "..~..~"):
            # Raw JSON text: an escaped lone surrogate reaches the server as such.
            raw = '{"presentation": "' + garbage + '", "tariff": "transit_reduced"}'
            answer = client.post(
                "/api/v1/card/verify",
                content=raw.encode(),
                headers={**headers, "Content-Type": "application/json"},
            )
            assert answer.status_code in (200, 422), garbage
            if answer.status_code == 200:
                assert answer.json()["result"] == "invalid"


class TestPublic:
    def test_jwks_metadata_and_status_lists_are_published(
        self, client: TestClient, session: Session
    ) -> None:
        _presentation(session)
        keys = client.get("/.well-known/jwks.json").json()["keys"]
        assert keys
        assert all("d" not in k and k["alg"] == "ES256" for k in keys)
        meta = client.get("/.well-known/jwt-vc-issuer").json()
        assert meta["issuer"] == get_settings().card.issuer
        uris = client.get("/status").json()
        assert uris
        listed = client.get(uris[0].replace(get_settings().card.issuer, ""))
        assert listed.status_code == 200
        assert listed.headers["content-type"].startswith("application/statuslist+jwt")
        assert client.get("/status/999999").status_code == 404
        assert client.get(f"/status/{2**63}").status_code == 422


class TestPasses:
    def test_an_operator_issues_passes_audited_and_bad_keys_are_422(
        self, client: TestClient, session: Session
    ) -> None:
        card = make_card(session)
        operator = _headers(session, "operator")
        _keys, public = service.holder_keys_generated(2)
        issued = client.post(
            f"/api/v1/card/cards/{card.id}/passes", json={"holder_keys": public}, headers=operator
        )
        assert issued.status_code == 201, issued.text
        assert len(issued.json()["passes"]) == 2
        bad = client.post(
            f"/api/v1/card/cards/{card.id}/passes",
            json={"holder_keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]},
            headers=operator,
        )
        assert bad.status_code == 422
        assert bad.json()["code"] == "invalid_holder_key"
        audit = client.get("/api/v1/audit/events", headers=_headers(session, "auditor")).json()
        assert any(e["action"] == "card.passes_issue" for e in audit["items"])

    def test_sync_with_a_bad_period_is_422(self, client: TestClient, session: Session) -> None:
        answer = client.post(
            "/api/v1/card/sync?period=2026-13", headers=_headers(session, "operator")
        )
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == "period"


class TestBankCheck:
    def test_an_acquirer_gets_yes_or_no(self, client: TestClient, session: Session) -> None:
        card = make_card(session)
        operator = _headers(session, "operator")
        link = client.post(
            f"/api/v1/card/cards/{card.id}/bank-links",
            json={
                "pan": "4111111111111111",
                "consent": {
                    "notice_version": get_settings().card.consent_notice_version,
                    "channel": "app",
                },
            },
            headers=operator,
        )
        assert link.status_code == 201, link.text
        assert "4111" not in link.text
        acquirer = _headers(session, "payment_provider")
        ask = {"pan": "4111111111111111", "tariff": "transit_reduced"}
        assert client.post("/api/v1/card/bank-check", json=ask, headers=acquirer).json() == {
            "result": "yes"
        }
        gone = client.delete(f"/api/v1/card/bank-links/{link.json()['id']}", headers=operator)
        assert gone.status_code == 200
        assert client.post("/api/v1/card/bank-check", json=ask, headers=acquirer).json() == {
            "result": "no"
        }

    def test_linking_without_consent_is_422(self, client: TestClient, session: Session) -> None:
        card = make_card(session)
        answer = client.post(
            f"/api/v1/card/cards/{card.id}/bank-links",
            json={"pan": "4111111111111111"},
            headers=_headers(session, "operator"),
        )
        assert answer.status_code == 422
        assert answer.json()["code"] == "consent_missing"


class TestKiosk:
    def test_card_and_pin_open_a_session_and_limits_answer_429(
        self, client: TestClient, session: Session
    ) -> None:
        card = make_card(session)
        operator = _headers(session, "operator")
        chip = client.post(f"/api/v1/card/cards/{card.id}/chip", headers=operator).json()
        assert (
            client.put(
                f"/api/v1/card/cards/{card.id}/pin", json={"pin": "2468"}, headers=operator
            ).status_code
            == 204
        )
        kiosk = _headers(session, "kiosk")
        start = {"chip_id": chip["chip_id"], "chip_key": chip["chip_key"], "pin": "2468"}
        opened = client.post("/api/v1/card/kiosk/sessions", json=start, headers=kiosk)
        assert opened.status_code == 201, opened.text
        token = {"X-Kiosk-Session": opened.json()["token"], **kiosk}
        view = client.get("/api/v1/card/kiosk/session?lang=en", headers=token)
        assert view.status_code == 200
        assert view.json()["statuses"][0]["title"] == "Pensioner"
        assert client.delete("/api/v1/card/kiosk/session", headers=token).status_code == 204
        assert client.get("/api/v1/card/kiosk/session", headers=token).status_code == 404
        wrong = {**start, "pin": "0000"}
        codes = [
            client.post("/api/v1/card/kiosk/sessions", json=wrong, headers=kiosk).status_code
            for _ in range(get_settings().card.rate_per_card + 1)
        ]
        assert codes[:2] == [401, 401]
        assert codes[2] == 403  # two wrong tries, then blocked
        assert codes[-1] == 429
