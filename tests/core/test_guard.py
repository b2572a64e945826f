"""A service that holds under abuse (issue 11, findings 6, 7 and 9): bounded bodies and JSON,
credentials before the body, rate limits per key and per address, a pool that fails fast,
ids within range, security headers on pages."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from socialcard.app import create_app
from socialcard.core.db import get_engine, reset_engine_cache, session_scope
from socialcard.core.errors import InvalidInput
from socialcard.core.http import expected_problem, parse_json
from socialcard.security import service as security_service
from tests.fixtures.api import overridden_app, settings_env
from tests.wallet.factories import make_merchant
from tests.wallet.server import free_port, start_server, stop_server

MERCHANTS = "/api/v1/wallet/merchants"
PURCHASE = "/api/v1/business/authorizations"
BIG_ID = 2**63  # one past BIGINT


def _key(session: Session, role: str) -> dict[str, str]:
    # An agency key is bound to its agency and the sources it may push.
    binding: dict[str, Any] = (
        {"agency": "civil_registry", "sources": ["persons"]} if role == "agency" else {}
    )
    created = security_service.create_api_key(session, name=role, role=role, **binding)
    return {"X-API-Key": created.key}


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body["code"] == code, body
    return body


class TestBodies:
    def test_a_body_past_the_limit_is_413_before_authentication(self, client: TestClient) -> None:
        response = client.post(MERCHANTS, content=b" " * (1024 * 1024 + 1))
        problem = _problem(response, 413, "body_too_large")
        assert problem["errors"] == [
            {"field": "body", "reason": "the body is larger than 1,048,576 bytes"}
        ]

    def test_the_purchase_hot_path_has_the_same_limit(self, client: TestClient) -> None:
        response = client.post(PURCHASE, content=b"[" * (2 * 1024 * 1024))
        _problem(response, 413, "body_too_large")

    def test_a_route_may_declare_a_larger_limit(self, client: TestClient, session: Session) -> None:
        rows = [{"national_id": f"{n:012d}", "address": "x" * 200} for n in range(6_000)]
        response = client.post(
            "/api/v1/sources/persons/batches",
            json={"rows": rows, "batch_key": "big"},
            headers=_key(session, "agency"),
        )
        assert len(response.request.content) > 1024 * 1024
        assert response.status_code == 201, response.text
        assert response.json()["rows_rejected"] == 6_000  # each quarantined, none refused

    def test_without_credentials_a_body_is_refused_before_it_is_parsed(
        self, client: TestClient
    ) -> None:
        # Before: the body was parsed first, so broken JSON without a key answered 422.
        response = client.post(
            MERCHANTS, content=b"{broken", headers={"content-type": "application/json"}
        )
        _problem(response, 401, "api_key_missing")
        response = client.post(PURCHASE, content=b"{broken", headers={"X-Terminal-Key": "sct_x"})
        _problem(response, 401, "terminal_key_invalid")


class TestStrictJson:
    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (b"[" * 100_000 + b"]" * 100_000, "JSON nested deeper than 32 levels"),
            (b'{"a": ' * 40 + b"1" + b"}" * 40, "JSON nested deeper than 32 levels"),
            (b'{"licensed": NaN}', "not valid JSON"),
            (b'{"licensed": Infinity}', "not valid JSON"),
            (b'{"licensed": -Infinity}', "not valid JSON"),
            (b'{"licensed": 1e999}', "not valid JSON"),
            (b'{"name": "\\ud800"}', "not valid JSON"),
        ],
    )
    def test_is_a_422_naming_the_body_on_every_route(
        self, client: TestClient, session: Session, body: bytes, reason: str
    ) -> None:
        headers = {"content-type": "application/json"}
        _, _, terminal = make_merchant(session)
        for path, credentials in (
            (MERCHANTS, _key(session, "operator")),
            (PURCHASE, {"X-Terminal-Key": terminal, "Idempotency-Key": "k"}),
            ("/api/v1/business/balance-inquiry", {"X-Terminal-Key": terminal}),
            ("/api/v1/rules/simulations", _key(session, "policy_owner")),
        ):
            response = client.post(path, content=body, headers={**headers, **credentials})
            problem = _problem(response, 422, "invalid_input")
            errors = problem["errors"]
            assert isinstance(errors, list)
            assert errors[0]["field"] == "body"
            assert str(errors[0]["reason"]).startswith(reason), (path, errors)

    def test_the_parser_reads_what_is_allowed(self) -> None:
        assert parse_json(b'{"a": [1, 2.5, "\\u00e9", 18446744073709551615]}') == {
            "a": [1, 2.5, "é", 18446744073709551615]
        }
        nested = b"[" * 32 + b"]" * 32
        assert parse_json(nested, max_depth=32) == json.loads(nested)
        with pytest.raises(InvalidInput):
            parse_json(b"[" + nested + b"]", max_depth=32)


class TestIds:
    @pytest.mark.parametrize(
        ("method", "path", "role", "parameter"),
        [
            ("get", f"/api/v1/persons/{BIG_ID}?purpose=case_review", "operator", "person_id"),
            (
                "get",
                f"/api/v1/persons/{BIG_ID}/facts?purpose=case_review",
                "operator",
                "person_id",
            ),
            ("get", f"/api/v1/families/{BIG_ID}?purpose=case_review", "operator", "family_id"),
            ("get", f"/api/v1/audit/events?subject_id={BIG_ID}", "auditor", "subject_id"),
            ("get", f"/api/v1/proactive/campaigns/{BIG_ID}", "operator", "campaign_id"),
            ("get", f"/api/v1/proactive/funnel?campaign_id={BIG_ID}", "operator", "campaign_id"),
            (
                "get",
                f"/api/v1/proactive/offers?purpose=case_review&offer_id={BIG_ID}",
                "operator",
                "offer_id",
            ),
            (
                "get",
                f"/api/v1/proactive/offers?purpose=case_review&person_id={BIG_ID}",
                "operator",
                "person_id",
            ),
            (
                "get",
                f"/api/v1/proactive/offers?purpose=case_review&campaign_id={BIG_ID}",
                "operator",
                "campaign_id",
            ),
            (
                "get",
                f"/api/v1/proactive/offers/{BIG_ID}?purpose=case_review",
                "operator",
                "offer_id",
            ),
            ("post", f"/api/v1/proactive/offers/{BIG_ID}/override", "operator", "offer_id"),
            (
                "post",
                f"/api/v1/proactive/payment-orders/{BIG_ID}/paid",
                "payment_provider",
                "order_id",
            ),
        ],
    )
    def test_an_id_past_bigint_is_a_422_naming_it(
        self,
        client: TestClient,
        session: Session,
        method: str,
        path: str,
        role: str,
        parameter: str,
    ) -> None:
        body = {"action": "agree", "reason": "x" * 12} if "override" in path else None
        if "paid" in path:
            body = {"reference": "ref-1"}
        response = client.request(method, path, json=body, headers=_key(session, role))
        problem = _problem(response, 422, "invalid_input")
        assert problem["errors"][0]["field"] == parameter  # type: ignore[index]

    def test_a_number_the_store_cannot_hold_is_a_422_wherever_it_fails(self) -> None:
        class DataError(Exception):
            orig = "bigint out of range"

        known = expected_problem(DataError())
        assert known is not None
        assert (known.status_code, known.code) == (422, "out_of_range")
        sqlite = expected_problem(
            OverflowError("Python int too large to convert to SQLite INTEGER")
        )
        assert sqlite is not None
        assert sqlite.status_code == 422
        assert expected_problem(ValueError("something else")) is None


class TestRateLimits:
    def test_failed_keys_from_one_address_get_429_with_retry_after(self, session: Session) -> None:
        good = _key(session, "operator")
        with (
            settings_env(
                SOCIALCARD_LIMITS__ADDRESS_RATE="0.01", SOCIALCARD_LIMITS__ADDRESS_BURST="5"
            ),
            TestClient(overridden_app(session), raise_server_exceptions=False) as client,
        ):
            assert client.get("/api/v1/wallet/merchants", headers=good).status_code == 200
            for _ in range(5):
                bad = {"X-API-Key": "sc_" + secrets.token_urlsafe(32)}
                _problem(
                    client.get("/api/v1/wallet/merchants", headers=bad), 401, "api_key_invalid"
                )
            refused = client.get("/api/v1/wallet/merchants", headers=good)
            _problem(refused, 429, "rate_limited")
            assert int(refused.headers["retry-after"]) >= 1
            # Liveness is never limited.
            assert client.get("/health").status_code == 200

    def test_each_key_has_its_limit(self, session: Session) -> None:
        operator, other = _key(session, "operator"), _key(session, "operator")
        with (
            settings_env(
                SOCIALCARD_LIMITS__API_KEY_RATE="0.01", SOCIALCARD_LIMITS__API_KEY_BURST="3"
            ),
            TestClient(overridden_app(session), raise_server_exceptions=False) as client,
        ):
            for _ in range(3):
                assert client.get(MERCHANTS, headers=operator).status_code == 200
            refused = client.get(MERCHANTS, headers=operator)
            _problem(refused, 429, "rate_limited")
            assert refused.headers["retry-after"] == "100"
            assert client.get(MERCHANTS, headers=other).status_code == 200

    def test_each_terminal_has_its_limit_on_the_hot_path_too(self, session: Session) -> None:
        _, _, terminal = make_merchant(session)
        headers = {"X-Terminal-Key": terminal}
        body = {"token": "no-such-token", "items": [{"sku": "a", "category": "b", "quantity": 1,
                                                      "amount_minor": 1}]}  # fmt: skip
        with (
            settings_env(
                SOCIALCARD_LIMITS__TERMINAL_RATE="0.01", SOCIALCARD_LIMITS__TERMINAL_BURST="2"
            ),
            TestClient(overridden_app(session), raise_server_exceptions=False) as client,
        ):
            for n in range(2):
                answer = client.post(
                    PURCHASE, json=body, headers={**headers, "Idempotency-Key": f"{n}"}
                )
                assert answer.status_code == 200, answer.text
            refused = client.post(PURCHASE, json=body, headers={**headers, "Idempotency-Key": "x"})
            _problem(refused, 429, "rate_limited")
            inquiry = client.post("/api/v1/business/balance-inquiry", json=body, headers=headers)
            _problem(inquiry, 429, "rate_limited")


class TestSecurityHeaders:
    def test_an_html_page_cannot_be_framed_cached_or_leak_its_link(
        self, client: TestClient
    ) -> None:
        page = client.get("/consent/not-a-token")
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "default-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"

    def test_the_api_is_never_cached_and_the_docs_run_offline(self, client: TestClient) -> None:
        api = client.get("/api/v1/wallet/merchants")
        assert (api.headers["cache-control"], api.headers["x-content-type-options"]) == (
            "no-store",
            "nosniff",
        )
        for path in ("/docs", "/redoc"):
            docs = client.get(path)
            assert docs.status_code == 200
            assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
            assert "cdn." not in docs.text


@pytest.fixture
def tiny_pool(committed_engine: Engine) -> Iterator[None]:
    """The app's own engine with one connection and a short wait (no test session override)."""
    with settings_env(
        SOCIALCARD_DB__POOL_SIZE="1",
        SOCIALCARD_DB__MAX_OVERFLOW="0",
        SOCIALCARD_DB__POOL_TIMEOUT="0.3",
    ):
        reset_engine_cache()
        try:
            yield
        finally:
            reset_engine_cache()


class TestPool:
    def test_an_exhausted_pool_answers_503_fast_and_health_still_answers(
        self, tiny_pool: None
    ) -> None:
        with session_scope() as session:
            headers = _key(session, "operator")
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            assert client.get(MERCHANTS, headers=headers).status_code == 200
            held = get_engine().connect()  # the only connection
            try:
                started = time.monotonic()
                busy = client.get(MERCHANTS, headers=headers)
                waited = time.monotonic() - started
                _problem(busy, 503, "service_unavailable")
                assert busy.headers["retry-after"] == "1"
                assert waited < 5, waited  # the pool's 0.3 s, not SQLAlchemy's 30 s
                started = time.monotonic()
                assert client.get("/health").status_code == 200
                assert time.monotonic() - started < 1
            finally:
                held.close()
            assert client.get(MERCHANTS, headers=headers).status_code == 200


@pytest.fixture
def served(committed_engine: Engine, database_url: str) -> Iterator[str]:
    port = free_port()
    process = start_server(database_url, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)


@pytest.mark.slow
class TestRealServer:
    def test_a_hundred_requests_with_random_keys_do_not_take_the_api_down(
        self, served: str
    ) -> None:
        # Before: the pool ran dry, 70-80 % answered 500 after 30 s and /health took 60 s.
        async def flood() -> tuple[list[int], float, int]:
            limits = httpx.Limits(max_connections=120)
            async with httpx.AsyncClient(base_url=served, timeout=20, limits=limits) as http:

                async def one() -> int:
                    key = {"X-API-Key": "sc_" + secrets.token_urlsafe(32)}
                    response = await http.get("/api/v1/families/1?purpose=case_review", headers=key)
                    return response.status_code

                async def health() -> tuple[float, int]:
                    await asyncio.sleep(0.2)
                    started = time.monotonic()
                    response = await http.get("/health")
                    return time.monotonic() - started, response.status_code

                results = await asyncio.gather(*(one() for _ in range(100)), health())
                statuses = [r for r in results[:-1] if isinstance(r, int)]
                took, health_status = results[-1]  # type: ignore[misc]
                return statuses, took, health_status

        started = time.monotonic()
        statuses, health_took, health_status = asyncio.run(flood())
        assert set(statuses) <= {401, 429}, statuses
        assert time.monotonic() - started < 15
        assert (health_status, health_took < 2) == (200, True), health_took

    def test_credentials_are_checked_before_the_body_is_read(self, served: str) -> None:
        # The headers announce a body that never comes: the answer must not wait for it.
        port = int(served.rsplit(":", 1)[1])
        for path, header in ((MERCHANTS, "X-API-Key"), (PURCHASE, "X-Terminal-Key")):
            for length, status in ((900_000, b"401"), (50_000_000, b"413")):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                    raw.sendall(
                        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        f"{header}: sc_bad\r\nContent-Length: {length}\r\n\r\n".encode()
                    )
                    answer = raw.recv(4096)
                assert answer.split(b" ", 2)[1] == status, (path, length, answer[:200])
