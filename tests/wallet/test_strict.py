"""Money fields are strict (issue 11, finding 10): an amount, quantity or flag takes only its
exact JSON type on the hot path and the routed path alike; an answer that cannot be sent is
never committed; a statement only for a business day that has ended."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, timedelta
from typing import get_args

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.db import run_before_commit
from socialcard.core.errors import InvalidInput
from socialcard.security import service as security_service
from socialcard.wallet import service as wallet_service
from socialcard.wallet.business_day import business_day, day_bounds
from socialcard.wallet.funding import schemas as funding_schemas
from socialcard.wallet.ledger import repository as ledger_repository
from socialcard.wallet.ledger import service as ledger_service
from socialcard.wallet.merchants import schemas as merchant_schemas
from socialcard.wallet.redemption import fast
from socialcard.wallet.redemption import schemas as redemption_schemas
from socialcard.wallet.redemption import service as redemption_service
from socialcard.wallet.redemption.schemas import AuthorizeRequest
from socialcard.wallet.vouchers import schemas as voucher_schemas
from socialcard.wallet.vouchers import service as voucher_service
from tests.wallet.factories import activate, food_items, fund, make_merchant, token_of
from tests.wallet.server import free_port, start_server, stop_server

PURCHASE = "/api/v1/business/authorizations"
# What used to be charged (finding 10): each is the wrong JSON type for its field.
LOOSE = ['"100000"', '" 100000 "', '"100_000"', "100000.0", "true"]


def _item(amount: str = "2500", quantity: str = "1") -> str:
    return (
        '{"sku": "bread", "category": "food.socially_significant", '
        f'"quantity": {quantity}, "amount_minor": {amount}}}'
    )


def _purchase(
    token: str, *, amount: str = "2500", quantity: str = "1", capture: str = "true"
) -> bytes:
    return (
        f'{{"token": "{token}", "items": [{_item(amount, quantity)}], "capture": {capture}}}'
    ).encode()


def _refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "invalid_input"
    assert [e["field"] for e in problem["errors"]] == [field]


def _voucher(session: Session, amount: int = 200_000) -> str:
    funded = fund(session, amount_minor=amount, period=f"{business_day(utcnow()):%Y-%m}")
    activate(session, funded.voucher_id, now=utcnow())
    return token_of(session, funded.voucher_id)


def _balance(session: Session, token: str) -> int:
    voucher = voucher_service.voucher_by_token(session, token)
    assert voucher is not None
    return int(voucher.balance_minor)


class TestModels:
    @pytest.mark.parametrize(
        "model",
        [
            redemption_schemas.ItemIn,
            redemption_schemas.AuthorizeRequest,
            redemption_schemas.CaptureRequest,
            redemption_schemas.RefundRequest,
            redemption_schemas.InquiryRequest,
            funding_schemas.BudgetAllocation,
            funding_schemas.DecisionRef,
            funding_schemas.FundingRequest,
            voucher_schemas.PrescriptionLine,
            merchant_schemas.MerchantCreate,
        ],
    )
    def test_every_amount_quantity_id_and_flag_is_strict(self, model: type[BaseModel]) -> None:
        for name, info in model.model_fields.items():
            kinds = {info.annotation, *get_args(info.annotation)} - {type(None)}
            if kinds & {int, bool}:
                assert any(getattr(m, "strict", False) for m in info.metadata), (model, name)


class TestHotPath:
    @pytest.mark.parametrize("amount", LOOSE)
    def test_a_loose_amount_is_refused_and_nothing_charged(
        self, client: TestClient, session: Session, amount: str
    ) -> None:
        _, _, key = make_merchant(session)
        token = _voucher(session)
        headers = {"X-Terminal-Key": key, "Idempotency-Key": f"loose-{amount}"}
        response = client.post(PURCHASE, content=_purchase(token, amount=amount), headers=headers)
        _refused(response, "items.0.amount_minor")
        assert _balance(session, token) == 200_000

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"quantity": '"3"'}, "items.0.quantity"),
            ({"quantity": "3.0"}, "items.0.quantity"),
            ({"capture": '"yes"'}, "capture"),
            ({"capture": "1"}, "capture"),
        ],
    )
    def test_a_loose_quantity_or_flag_is_refused(
        self, client: TestClient, session: Session, body: dict[str, str], field: str
    ) -> None:
        _, _, key = make_merchant(session)
        token = _voucher(session)
        headers = {"X-Terminal-Key": key, "Idempotency-Key": "q"}
        response = client.post(PURCHASE, content=_purchase(token, **body), headers=headers)
        _refused(response, field)
        assert _balance(session, token) == 200_000

    def test_the_exact_types_still_buy(self, client: TestClient, session: Session) -> None:
        _, _, key = make_merchant(session)
        token = _voucher(session)
        headers = {"X-Terminal-Key": key, "Idempotency-Key": "ok"}
        response = client.post(PURCHASE, content=_purchase(token), headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["captured_minor"] == 2_500


class TestRoutedPath:
    def _sale(self, client: TestClient, key: str, token: str, capture: bool) -> int:
        body = {"token": token, "items": food_items(5_000), "capture": capture}
        sale = client.post(
            PURCHASE, json=body, headers={"X-Terminal-Key": key, "Idempotency-Key": f"{capture}"}
        )
        assert sale.status_code == 200, sale.text
        return int(sale.json()["authorization_id"])

    @pytest.mark.parametrize("amount", ['"1"', "1.0", "true", '" 1 "'])
    def test_capture_and_refund_take_only_integers(
        self, client: TestClient, session: Session, amount: str
    ) -> None:
        _, _, key = make_merchant(session)
        token = _voucher(session)
        hold = self._sale(client, key, token, capture=False)
        sale = self._sale(client, key, token, capture=True)
        headers = {
            "X-Terminal-Key": key,
            "Idempotency-Key": "c",
            "content-type": "application/json",
        }
        body = f'{{"amount_minor": {amount}}}'
        capture = client.post(f"{PURCHASE}/{hold}/capture", content=body, headers=headers)
        _refused(capture, "amount_minor")
        refund = client.post(f"{PURCHASE}/{sale}/refunds", content=body, headers=headers)
        _refused(refund, "amount_minor")
        assert _balance(session, token) == 195_000  # only the one-step sale

    def test_the_inquiry_takes_only_integers(self, client: TestClient, session: Session) -> None:
        _, _, key = make_merchant(session)
        token = _voucher(session)
        body = f'{{"token": "{token}", "items": [{_item(amount="true")}]}}'
        response = client.post(
            "/api/v1/business/balance-inquiry",
            content=body,
            headers={"X-Terminal-Key": key, "content-type": "application/json"},
        )
        _refused(response, "items.0.amount_minor")

    @pytest.mark.parametrize(
        ("path", "body", "field"),
        [
            (
                "/api/v1/wallet/budgets",
                '{"program_id": "kz.asp", "region_kato": "750000000", "amount_minor": "100"}',
                "amount_minor",
            ),
            (
                "/api/v1/wallet/budgets",
                '{"program_id": "kz.asp", "region_kato": "750000000", "amount_minor": 1e3}',
                "amount_minor",
            ),
            ("/api/v1/wallet/citizen-keys", '{"person_id": "5"}', "person_id"),
            (
                "/api/v1/wallet/merchants",
                '{"bin": "050340099997", "name": "x", "category": "pharmacy", "licensed": "yes"}',
                "licensed",
            ),
        ],
    )
    def test_operator_money_routes_take_only_exact_types(
        self, client: TestClient, session: Session, path: str, body: str, field: str
    ) -> None:
        key = security_service.create_api_key(session, name="op", role="operator").key
        headers = {"X-API-Key": key, "Idempotency-Key": "x", "content-type": "application/json"}
        _refused(client.post(path, content=body, headers=headers), field)


class TestEncodableAnswers:
    def test_the_request_model_refuses_a_lone_surrogate(self) -> None:
        items = [{**food_items(2_500)[0], "sku": "\ud800"}]
        with pytest.raises(ValidationError) as refused:
            AuthorizeRequest.model_validate({"token": "tok12345", "items": items})
        assert [e["loc"] for e in refused.value.errors()] == [("items", 0, "sku")]

    def test_an_answer_that_cannot_be_sent_is_never_stored(self, session: Session) -> None:
        # On PostgreSQL a lone surrogate in a sku used to commit the purchase, then answer 500
        # on every retry: the till never learned the citizen was charged. The answer is now
        # encoded before the commit, so such a request rolls back as a 422.
        def answer() -> dict[str, object]:
            return {"lines": [{"sku": "\ud800"}]}

        for _ in range(2):  # a retry is refused the same way, never replayed
            attempt = session.begin_nested()
            with pytest.raises(InvalidInput) as refused:
                ledger_service.idempotent(
                    session, scope="t", key="k", operation="o", payload={}, handler=answer
                )
            attempt.rollback()
            assert refused.value.details[0]["field"] == "body"
        replayed = ledger_service.idempotent(
            session, scope="t", key="k", operation="o", payload={}, handler=lambda: {"ok": 1}
        )
        assert replayed == {"ok": 1}


@pytest.fixture
def served(committed_engine: Engine, database_url: str) -> Iterator[tuple[str, str, str]]:
    """A real server on committed data: (base URL, terminal key, a funded food token)."""
    with Session(committed_engine, expire_on_commit=False) as session:
        _, _, key = make_merchant(session)
        token = _voucher(session)
        run_before_commit(session)
        session.commit()
    port = free_port()
    server = start_server(database_url, port)
    try:
        yield f"http://127.0.0.1:{port}", key, token
    finally:
        stop_server(server)


@pytest.mark.slow
class TestServed:
    def test_loose_money_surrogates_and_replays_over_http(
        self, served: tuple[str, str, str], committed_engine: Engine
    ) -> None:
        base, key, token = served
        with httpx.Client(base_url=base, timeout=10) as http:

            def post(body: bytes, idem: str) -> httpx.Response:
                headers = {
                    "X-Terminal-Key": key,
                    "Idempotency-Key": idem,
                    "content-type": "application/json",
                }
                return http.post(PURCHASE, content=body, headers=headers)

            for n, amount in enumerate(LOOSE):
                _refused(post(_purchase(token, amount=amount), f"l{n}"), "items.0.amount_minor")
            _refused(post(_purchase(token, capture='"yes"'), "flag"), "capture")
            surrogate = _purchase(token).replace(b'"bread"', b'"\\ud800"')
            for _ in range(2):
                refused = post(surrogate, "sur")
                assert refused.status_code == 422, refused.text
                assert refused.json()["errors"][0]["field"] == "body"
            sale = post(_purchase(token), "sale")
            assert sale.status_code == 200, sale.text
            replay = post(_purchase(token), "sale")
            assert replay.content == sale.content  # byte for byte
        with Session(committed_engine) as session:
            assert ledger_repository.counts(session)["holds"] == 1
            assert _balance(session, token) == 197_500
            assert wallet_service.check(session).ok

    def test_the_asyncpg_path_encodes_before_it_commits(
        self, served: tuple[str, str, str], committed_engine: Engine, postgres_only: None
    ) -> None:
        _, key, token = served
        with Session(committed_engine) as session:
            from socialcard.wallet.merchants import service as merchant_service

            terminal = merchant_service.authenticate_terminal(session, raw_key=key)
        items = [{**food_items(2_500)[0], "sku": "\ud800", "atc": None}]
        payload = {"token": token, "items": items, "capture": True, "allow_partial": True}

        async def attempt() -> bytes:
            return await fast._authorize_postgres(terminal, "direct", payload, utcnow())

        with pytest.raises(InvalidInput):
            asyncio.run(attempt())
        with Session(committed_engine) as session:
            assert ledger_repository.counts(session)["holds"] == 0
            assert _balance(session, token) == 200_000


class TestSettlementDays:
    @pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "0", "2026-02-30"])
    def test_days_without_bounds_are_a_4xx(
        self, client: TestClient, session: Session, day: str
    ) -> None:
        _, _, key = make_merchant(session)
        response = client.get(
            f"/api/v1/business/settlements/{day}.csv", headers={"X-Terminal-Key": key}
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "day_on"

    def test_a_statement_only_once_the_day_has_ended(
        self, client: TestClient, session: Session
    ) -> None:
        _, _, key = make_merchant(session)
        headers = {"X-Terminal-Key": key}
        today, future = business_day(utcnow()), business_day(utcnow()) + timedelta(days=30)
        for day in (today, future):
            response = client.get(f"/api/v1/business/settlements/{day}.csv", headers=headers)
            assert response.status_code == 409, response.text
            assert response.json()["code"] == "business_day_not_ended"
        yesterday = today - timedelta(days=1)
        done = client.get(f"/api/v1/business/settlements/{yesterday}.csv", headers=headers)
        assert done.status_code == 200, done.text
        assert done.headers["content-type"].startswith("text/csv")

    def test_a_frozen_statement_stays_equal_to_the_ledger(self, session: Session) -> None:
        # Issued after the day (and its grace) ended: a purchase now lands on a later day.
        merchant_id, terminal, _ = make_merchant(session)
        funded = fund(session, amount_minor=10_000)  # March 2026, active from the 11th
        activate(session, funded.voucher_id)
        token = token_of(session, funded.voucher_id)
        day = date(2026, 3, 12)
        _, end = day_bounds(day)
        sale = AuthorizeRequest.model_validate(
            {"token": token, "items": food_items(1_000), "capture": True}
        )
        redemption_service.authorize(
            session, terminal=terminal, idempotency_key="d1", request=sale,
            now=end - timedelta(seconds=1),
        )  # fmt: skip
        with pytest.raises(Exception, match="has not ended"):
            redemption_service.issue_settlement(
                session, merchant_id=merchant_id, day_on=day, now=end + timedelta(minutes=1)
            )
        totals, _ = redemption_service.issue_settlement(
            session, merchant_id=merchant_id, day_on=day, now=end + timedelta(minutes=10)
        )
        assert totals.net_minor == 1_000
        later = AuthorizeRequest.model_validate(
            {"token": token, "items": food_items(500), "capture": True}
        )
        redemption_service.authorize(
            session, terminal=terminal, idempotency_key="d2", request=later,
            now=end + timedelta(minutes=11),
        )  # fmt: skip
        assert wallet_service.check(session).ok
