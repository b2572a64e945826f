"""The redemption hot path (wallet/redemption/fast.py): same request rules, same answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.db import run_before_commit
from socialcard.core.errors import InvalidInput
from socialcard.wallet import service as wallet_service
from socialcard.wallet.business_day import business_day
from socialcard.wallet.ledger import repository as ledger_repository
from socialcard.wallet.redemption import fast
from socialcard.wallet.redemption.schemas import AuthorizationRead, AuthorizeRequest
from tests.wallet.factories import activate, food_items, fund, make_merchant, token_of
from tests.wallet.server import free_port, start_server, stop_server

PATH = "/api/v1/business/authorizations"

_edge_ints = st.one_of(
    st.sampled_from([-1, 0, 1, 2, 10_000, 10_001, 10**10, 10**10 + 1, 2**70]),
    st.booleans(),
    st.floats(allow_nan=False, max_value=1e12, min_value=-1e12),
    st.sampled_from(["5", "x", None]),
)
_edge_text = st.one_of(st.text(max_size=45), st.integers(), st.none())
_item = st.fixed_dictionaries(
    {},
    optional={
        "sku": _edge_text,
        "category": _edge_text,
        "quantity": _edge_ints,
        "amount_minor": _edge_ints,
        "atc": _edge_text,
        "extra": st.integers(),
    },
)
_body = st.fixed_dictionaries(
    {},
    optional={
        "token": _edge_text,
        "items": st.one_of(st.lists(_item, max_size=3), st.text(max_size=3)),
        "capture": st.one_of(st.booleans(), st.sampled_from([0, 1, "true", None])),
        "allow_partial": st.one_of(st.booleans(), st.sampled_from([0, "no", None])),
    },
)


class TestParse:
    @settings(max_examples=400, deadline=None)
    @given(body=_body)
    def test_agrees_with_the_model(self, body: dict[str, Any]) -> None:
        try:
            expected: dict[str, Any] | None = AuthorizeRequest.model_validate(body).model_dump(
                mode="json"
            )
        except ValidationError:
            expected = None
        exact = fast._exact(body)
        # The exact-type check accepts only what the model accepts, and reads it identically.
        if exact is not None:
            assert exact == expected
        encoded = json.dumps(body).encode()
        if expected is None:
            with pytest.raises(InvalidInput) as caught:
                fast.parse_authorize(encoded)
            assert caught.value.details, "a 422 names its fields"
        else:
            assert fast.parse_authorize(encoded) == expected

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            (b"{not json", "body"),
            (b'{"items": []}', "token"),
            (b'{"token": "tok12345", "items": []}', "items"),
            (
                b'{"token": "tok12345", "items": [{"sku": "a", "category": "b", '
                b'"quantity": 0, "amount_minor": 1}]}',
                "items.0.quantity",
            ),
            (
                b'{"token": "tok12345", "items": [{"sku": "a", "category": "b", '
                b'"quantity": 1, "amount_minor": 100000000000000000000000000000}]}',
                "items.0.amount_minor",
            ),
            (
                b'{"token": "tok12345", "capture": "maybe", "items": [{"sku": "a", '
                b'"category": "b", "quantity": 1, "amount_minor": 1}]}',
                "capture",
            ),
        ],
    )
    def test_bad_input_names_the_field(self, body: bytes, field: str) -> None:
        with pytest.raises(InvalidInput) as caught:
            fast.parse_authorize(body)
        assert caught.value.status_code == 422
        assert caught.value.details[0]["field"] == field


class TestRoute:
    def test_documented_with_its_body_and_answer(self, client: TestClient) -> None:
        operation = client.get("/openapi.json").json()["paths"][PATH]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert set(schema["required"]) == {"token", "items"}
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer["$ref"].endswith("/AuthorizationRead")

    @pytest.mark.parametrize(
        ("body", "field"),
        [(b"[1, 2", "body"), (b'{"token": 5, "items": "x"}', "token")],
    )
    def test_bad_body_is_a_422_problem_naming_the_field(
        self, client: TestClient, session: Session, body: bytes, field: str
    ) -> None:
        _, _, raw = make_merchant(session)
        response = client.post(
            PATH,
            content=body,
            headers={"X-Terminal-Key": raw, "Idempotency-Key": "k"},
        )
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["field"] == field
        assert response.headers["x-request-id"]


@pytest.fixture
def served(committed_engine: Engine, database_url: str) -> Iterator[tuple[str, str, list[str]]]:
    """A real server on committed data: (base URL, terminal key, three funded food tokens)."""
    with Session(committed_engine, expire_on_commit=False) as session:
        _, _, key = make_merchant(session)
        tokens = []
        for amount in (10_000, 10_000, 3_000):
            funded = fund(session, amount_minor=amount, period=f"{business_day(utcnow()):%Y-%m}")
            activate(session, funded.voucher_id, now=utcnow())
            tokens.append(token_of(session, funded.voucher_id))
        run_before_commit(session)
        session.commit()
    port = free_port()
    server = start_server(database_url, port)
    try:
        yield f"http://127.0.0.1:{port}", key, tokens
    finally:
        stop_server(server)


@pytest.mark.slow
class TestServed:
    def test_answers_replays_conflicts_and_declines_like_the_service(
        self, served: tuple[str, str, list[str]], committed_engine: Engine
    ) -> None:
        base, key, (token, _, short) = served
        with httpx.Client(base_url=base, timeout=10) as http:

            def post(body: dict[str, Any], idem: str | None) -> httpx.Response:
                headers = {"X-Terminal-Key": key, **({"Idempotency-Key": idem} if idem else {})}
                return http.post(PATH, json=body, headers=headers)

            body = {"token": token, "items": food_items(2_500), "capture": True}
            sale = post(body, "a1")
            assert sale.status_code == 200, sale.text
            answer = AuthorizationRead.model_validate(sale.json())
            assert (answer.decision, answer.captured_minor, answer.status) == (
                "approved", 2_500, "captured",
            )  # fmt: skip
            assert post(body, "a1").json() == sale.json()
            conflict = post({**body, "items": food_items(2_600)}, "a1")
            assert (conflict.status_code, conflict.json()["code"]) == (
                409, "idempotency_key_reused",
            )  # fmt: skip
            missing = post(body, None)
            assert missing.status_code == 422
            assert missing.json()["errors"][0]["field"] == "Idempotency-Key"
            unknown = post({**body, "token": "no-such-token"}, "a2")
            assert (unknown.json()["decision"], unknown.json()["reason"]) == (
                "declined", "voucher_not_found",
            )  # fmt: skip
            hold = post({"token": token, "items": food_items(1_000)}, "a3").json()
            assert (hold["status"], hold["captured_minor"]) == ("authorized", 0)
            two_lines = [*food_items(2_000), *food_items(2_000)]
            partial = post({"token": short, "items": two_lines, "capture": True}, "a4").json()
            assert (partial["decision"], partial["approved_minor"]) == ("partly_approved", 3_000)
            assert [line["approved_minor"] for line in partial["lines"]] == [1_500, 1_500]
            bad = post({"token": token, "items": [{"sku": "x"}]}, "a5")
            assert bad.status_code == 422
            assert {e["field"] for e in bad.json()["errors"]} >= {"items.0.category"}
        with Session(committed_engine) as session:
            assert wallet_service.check(session).ok
            held = ledger_repository.hold_by_id(session, hold["authorization_id"])
            assert held is not None
            assert held.status == "authorized"
            assert ledger_repository.counts(session)["holds"] == 3

    def test_a_nul_in_a_token_is_bad_input_on_every_store(
        self, served: tuple[str, str, list[str]], database_url: str
    ) -> None:
        # PostgreSQL text cannot hold U+0000: a 422 naming the body there, never a 500; SQLite
        # stores it, so the token is simply unknown.
        base, key, _ = served
        token = "abcdefgh\x00ij"
        items = food_items(100)
        with httpx.Client(base_url=base, timeout=10) as http:
            purchase = http.post(
                PATH,
                json={"token": token, "items": items, "capture": True},
                headers={"X-Terminal-Key": key, "Idempotency-Key": "nul-1"},
            )
            inquiry = http.post(
                "/api/v1/business/balance-inquiry",
                json={"token": token, "items": items},
                headers={"X-Terminal-Key": key},
            )
        if database_url.startswith("postgresql"):
            for response in (purchase, inquiry):
                assert response.status_code == 422, response.text
                assert response.headers["content-type"].startswith("application/problem+json")
                assert [e["field"] for e in response.json()["errors"]] == ["body"]
        else:
            assert purchase.json()["reason"] == "voucher_not_found"
            assert inquiry.json()["can_pay"] is False
