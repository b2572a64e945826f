"""The wallet over HTTP: operators, merchant terminals and citizens; problem+json, never 5xx."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from socialcard.core import clock
from socialcard.core.clock import utcnow
from socialcard.wallet.business_day import business_day, day_bounds
from socialcard.wallet.merchants.service import make_bin
from tests.factories import make_person
from tests.wallet.factories import PROGRAM, REGION, food_items

API = "/api/v1/wallet"
_VALID = make_bin("11044001234")
_WRONG_CHECK_DIGIT = _VALID[:11] + str((int(_VALID[11]) + 1) % 10)


@dataclass
class Staff:
    """An operator who files requests, a policy owner and an admin who approve them."""

    operator: dict[str, str]
    checker: dict[str, str]
    admin: dict[str, str]


@pytest.fixture
def staff(
    operator_headers: dict[str, str],
    policy_owner_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> Staff:
    return Staff(operator_headers, policy_owner_headers, admin_headers)


def _approved(client: TestClient, requested: Any, checker: dict[str, str]) -> Any:
    """Approve a maker's request (202) as the checker; the effect's result."""
    assert requested.status_code == 202, requested.text
    done = client.post(f"/api/v1/approvals/{requested.json()['id']}/approve", headers=checker)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "approved"
    return done.json()["result"]


def _merchant(client: TestClient, staff: Staff, category: str = "grocery") -> dict[str, Any]:
    bin_ = make_bin(f"1104400{abs(hash(category)) % 10_000:04d}")
    requested = client.post(
        f"{API}/merchants",
        json={"bin": bin_, "name": "Magnum", "category": category},
        headers=staff.operator,
    )
    merchant = _approved(client, requested, staff.checker)
    terminal = client.post(
        f"{API}/merchants/{merchant['id']}/terminals", json={"code": "T1"}, headers=staff.operator
    )
    assert terminal.status_code == 201
    return {**merchant, "headers": {"X-Terminal-Key": terminal.json()["key"]}}


def _funded_voucher(
    client: TestClient, session: Session, staff: Staff, amount: int
) -> dict[str, Any]:
    person = make_person(session, language="kk")
    budget = client.post(
        f"{API}/budgets",
        json={"program_id": PROGRAM, "region_kato": REGION, "amount_minor": amount},
        headers={**staff.operator, "Idempotency-Key": f"alloc-{person.id}"},
    )
    _approved(client, budget, staff.checker)
    funded = client.post(
        f"{API}/fundings",
        json={
            "person_id": person.id,
            "program_id": PROGRAM,
            "region_kato": REGION,
            "amount_minor": amount,
            "benefit_type": "food",
            # The month the clock stands in: activation is refused outside the voucher's period.
            "period": f"{business_day(utcnow()):%Y-%m}",
        },
        headers={**staff.operator, "Idempotency-Key": f"fund-{person.id}"},
    )
    [body] = _approved(client, funded, staff.checker)["funded"]
    requested = client.post(
        f"{API}/citizen-keys", json={"person_id": person.id}, headers=staff.operator
    )
    citizen = {"X-API-Key": _approved(client, requested, staff.admin)["key"]}
    activated = client.post(
        f"{API}/me/vouchers/{body['voucher_id']}/activate", json={}, headers=citizen
    )
    assert activated.status_code == 200, activated.text
    return {**body, "token": activated.json()["token"], "citizen": citizen, "person_id": person.id}


class TestMerchants:
    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"bin": "123", "name": "x", "category": "grocery"}, "bin"),
            ({"bin": _WRONG_CHECK_DIGIT, "name": "x", "category": "grocery"}, "bin"),
            ({"bin": make_bin("11044001234"), "name": "x", "category": "casino"}, "category"),
        ],
    )
    def test_rejects_bad_merchants_naming_the_field(
        self,
        client: TestClient,
        operator_headers: dict[str, str],
        payload: dict[str, str],
        field: str,
    ) -> None:
        response = client.post(f"{API}/merchants", json=payload, headers=operator_headers)
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["field"] == field

    def test_duplicate_bin_is_a_conflict(self, client: TestClient, staff: Staff) -> None:
        payload = {"bin": make_bin("11044009999"), "name": "x", "category": "grocery"}
        requested = client.post(f"{API}/merchants", json=payload, headers=staff.operator)
        _approved(client, requested, staff.checker)
        again = client.post(f"{API}/merchants", json=payload, headers=staff.operator)
        assert again.status_code == 409

    def test_merchant_role_cannot_register_merchants(
        self, client: TestClient, session: Session, staff: Staff
    ) -> None:
        from socialcard.security import service as security_service

        shop = _merchant(client, staff)
        key = security_service.create_api_key(
            session, name="m", role="merchant", merchant_id=shop["id"]
        ).key
        payload = {"bin": make_bin("11044008888"), "name": "x", "category": "grocery"}
        response = client.post(f"{API}/merchants", json=payload, headers={"X-API-Key": key})
        assert response.status_code == 403


class TestBusinessApi:
    def test_purchase_flow_and_settlement_csv(
        self, client: TestClient, session: Session, staff: Staff
    ) -> None:
        shop = _merchant(client, staff)
        voucher = _funded_voucher(client, session, staff, 10_000)
        body = {"token": voucher["token"], "items": food_items(2_500), "capture": True}
        sale = client.post(
            "/api/v1/business/authorizations",
            json=body,
            headers={**shop["headers"], "Idempotency-Key": "s1"},
        )
        assert sale.status_code == 200, sale.text
        assert sale.json()["decision"] == "approved"
        replay = client.post(
            "/api/v1/business/authorizations",
            json=body,
            headers={**shop["headers"], "Idempotency-Key": "s1"},
        )
        assert replay.json() == sale.json()
        changed = client.post(
            "/api/v1/business/authorizations",
            json={**body, "items": food_items(2_600)},
            headers={**shop["headers"], "Idempotency-Key": "s1"},
        )
        assert changed.status_code == 409
        assert changed.json()["code"] == "idempotency_key_reused"
        refund = client.post(
            f"/api/v1/business/authorizations/{sale.json()['authorization_id']}/refunds",
            json={"amount_minor": 500},
            headers={**shop["headers"], "Idempotency-Key": "r1"},
        )
        assert refund.status_code == 200
        assert refund.json()["refunded_minor"] == 500
        check = client.get(f"{API}/check", headers=staff.operator).json()
        assert check["ok"], check
        day = business_day(utcnow())
        early = client.get(f"/api/v1/business/settlements/{day}.csv", headers=shop["headers"])
        assert (early.status_code, early.json()["code"]) == (409, "business_day_not_ended")
        with clock.travel_to(day_bounds(day)[1] + timedelta(minutes=10)):
            csv_text = client.get(
                f"/api/v1/business/settlements/{day}.csv", headers=shop["headers"]
            )
        assert csv_text.status_code == 200, csv_text.text
        assert csv_text.text.strip().splitlines()[-1] == "TOTAL,net,,,2000"
        wallet = client.get(f"{API}/me", headers=voucher["citizen"]).json()
        assert wallet["balances"][0]["balance_minor"] == 8_000
        assert wallet["vouchers"][0]["title"] == "Азық-түлік ваучері"  # the person speaks kk
        history = client.get(f"{API}/me/history", headers=voucher["citizen"]).json()
        assert [row["kind"] for row in history] == ["refund", "capture", "funding"]

    def test_two_step_capture_and_void(
        self, client: TestClient, session: Session, staff: Staff
    ) -> None:
        shop = _merchant(client, staff)
        voucher = _funded_voucher(client, session, staff, 10_000)
        auth = client.post(
            "/api/v1/business/authorizations",
            json={"token": voucher["token"], "items": food_items(3_000)},
            headers={**shop["headers"], "Idempotency-Key": "a1"},
        ).json()
        assert auth["status"] == "authorized"
        hold = auth["authorization_id"]
        captured = client.post(
            f"/api/v1/business/authorizations/{hold}/capture",
            json={"amount_minor": 2_000},
            headers={**shop["headers"], "Idempotency-Key": "c1"},
        )
        assert captured.json()["captured_minor"] == 2_000
        void = client.post(
            f"/api/v1/business/authorizations/{hold}/void",
            headers={**shop["headers"], "Idempotency-Key": "v1"},
        )
        assert void.status_code == 409
        assert void.json()["code"] == "hold_not_open"

    def test_balance_inquiry_shows_only_what_the_purchase_needs(
        self, client: TestClient, session: Session, staff: Staff
    ) -> None:
        shop = _merchant(client, staff)
        voucher = _funded_voucher(client, session, staff, 10_000)

        def ask(amount: int) -> dict[str, Any]:
            response = client.post(
                "/api/v1/business/balance-inquiry",
                json={"token": voucher["token"], "items": food_items(amount)},
                headers=shop["headers"],
            )
            assert response.status_code == 200
            return dict(response.json())

        assert ask(4_000) == {"can_pay": True, "allowed_minor": 4_000, "reason": None}
        # Past the balance the answer is "no", never the 10,000 left (a huge amount used to
        # read it back exactly).
        for amount in (25_000, 10**10):
            answer = ask(amount)
            assert answer == {
                "can_pay": False,
                "allowed_minor": amount,
                "reason": "insufficient_balance",
            }
            assert 10_000 not in answer.values()

    @pytest.mark.parametrize(
        ("headers", "status", "code"),
        [
            ({}, 401, "terminal_key_missing"),
            ({"X-Terminal-Key": "sct_nope"}, 401, "terminal_key_invalid"),
        ],
    )
    def test_terminal_key_required(
        self, client: TestClient, headers: dict[str, str], status: int, code: str
    ) -> None:
        response = client.post(
            "/api/v1/business/authorizations",
            json={"token": "x" * 10, "items": food_items(1)},
            headers={**headers, "Idempotency-Key": "k"},
        )
        assert (response.status_code, response.json()["code"]) == (status, code)

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"token": "short", "items": []},
            {
                "token": "x" * 20,
                "items": [{"sku": "a", "category": "b", "quantity": 0, "amount_minor": 1}],
            },
            {
                "token": "x" * 20,
                "items": [{"sku": "a", "category": "b", "quantity": 1, "amount_minor": -5}],
            },
            {"token": "x" * 20, "items": "bread"},
        ],
    )
    def test_bad_payloads_are_422_never_5xx(
        self, client: TestClient, staff: Staff, body: dict[str, Any]
    ) -> None:
        shop = _merchant(client, staff)
        response = client.post(
            "/api/v1/business/authorizations",
            json=body,
            headers={**shop["headers"], "Idempotency-Key": "k"},
        )
        assert response.status_code == 422

    def test_missing_idempotency_key_is_named(
        self, client: TestClient, session: Session, staff: Staff
    ) -> None:
        shop = _merchant(client, staff)
        response = client.post(
            "/api/v1/business/authorizations",
            json={"token": "x" * 20, "items": food_items(1)},
            headers=shop["headers"],
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "Idempotency-Key"


class TestCitizenApi:
    def test_only_a_citizen_key_reads_a_wallet(
        self, client: TestClient, operator_headers: dict[str, str]
    ) -> None:
        response = client.get(f"{API}/me", headers=operator_headers)
        assert (response.status_code, response.json()["code"]) == (403, "role_not_allowed")

    def test_citizen_cannot_activate_someone_elses_voucher(
        self, client: TestClient, session: Session, staff: Staff
    ) -> None:
        mine = _funded_voucher(client, session, staff, 1_000)
        theirs = _funded_voucher(client, session, staff, 1_000)
        response = client.post(
            f"{API}/me/vouchers/{theirs['voucher_id']}/activate", json={}, headers=mine["citizen"]
        )
        assert response.status_code == 404

    def test_statistics_for_auditors(
        self,
        client: TestClient,
        session: Session,
        staff: Staff,
        auditor_headers: dict[str, str],
    ) -> None:
        _funded_voucher(client, session, staff, 1_000)
        rows = client.get(f"{API}/statistics", headers=auditor_headers).json()
        assert rows == [
            {
                "type": "food",
                "status": "activated",
                "vouchers": 1,
                "nominal_minor": 1_000,
                "remaining_minor": 1_000,
            }
        ]
        by_region = client.get(
            f"{API}/statistics/by-region?region_digits=4", headers=auditor_headers
        ).json()
        assert by_region == [
            {
                "type": "food",
                "region_kato": REGION[:4] + "00000",
                "issued": 1,
                "activated": 1,
                "redeemed": 0,
                "expired": 0,
                "issued_minor": 1_000,
                "redeemed_minor": 0,
                "expired_minor": 0,
                "remaining_minor": 1_000,
            }
        ]
        bad = client.get(f"{API}/statistics/by-region?region_digits=0", headers=auditor_headers)
        assert bad.status_code == 422
        assert "region_digits" in bad.text


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_item = st.fixed_dictionaries(
    {
        "sku": st.text(max_size=45),
        "category": st.sampled_from(["food.socially_significant", "meal", "fare", "", "x" * 50]),
        "quantity": st.integers(-5, 2**64),
        "amount_minor": st.integers(-5, 2**64),
    },
    optional={"atc": st.text(max_size=12)},
)
_authorize_body = st.fixed_dictionaries(
    {"token": st.text(max_size=50), "items": st.lists(_item, max_size=3)},
    optional={"capture": _json, "allow_partial": st.booleans()},
)


class TestNeverFiveHundred:
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        body=_authorize_body | _json,
        path=st.sampled_from(
            [
                "/authorizations",
                "/authorizations/1/capture",
                "/authorizations/99999999999999999999/void",
                "/authorizations/1/refunds",
                "/balance-inquiry",
            ]
        ),
        key=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=120),
    )
    def test_any_business_payload_gets_a_4xx_or_an_answer(
        self, client: TestClient, staff: Staff, body: Any, path: str, key: str
    ) -> None:
        shop = self.__dict__.setdefault("shop", None) or _merchant(client, staff)
        self.__dict__["shop"] = shop
        try:
            headers = {
                **shop["headers"],
                "Idempotency-Key": key.encode("latin-1").decode("latin-1"),
            }
        except UnicodeEncodeError:
            headers = shop["headers"]
        response = client.post(f"/api/v1/business{path}", json=body, headers=headers)
        assert response.status_code < 500, response.text

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        body=st.fixed_dictionaries(
            {
                "person_id": st.integers(-1, 2**70),
                "program_id": st.text(max_size=90),
                "region_kato": st.text(max_size=10),
                "amount_minor": st.integers(-1, 2**70),
                "benefit_type": st.sampled_from(
                    ["food", "gas", "school_meal", "medicine", "transit", "x"]
                ),
                "period": st.sampled_from(["2026-03", "2026-13", "x"]),
            },
            optional={
                "bound_merchant_id": st.integers(-1, 2**70),
                "fare_category": st.text(max_size=5),
            },
        )
    )
    def test_any_funding_gets_a_4xx_or_an_answer(
        self, client: TestClient, operator_headers: dict[str, str], body: dict[str, Any]
    ) -> None:
        response = client.post(
            f"{API}/fundings", json=body, headers={**operator_headers, "Idempotency-Key": "fuzz"}
        )
        assert response.status_code < 500, response.text
