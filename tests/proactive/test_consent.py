"""Consent by SMS webhook and by signed link; assignment, payment order, confirmation."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from socialcard.core.clock import utcnow
from socialcard.core.db import session_scope
from socialcard.proactive import jobs, links, service
from socialcard.proactive.enums import Channel, ConsentDecision
from socialcard.proactive.iban import make_kz_iban
from socialcard.proactive.models import (
    Assignment,
    Consent,
    InboundReply,
    Message,
    Offer,
    PaymentOrder,
)
from socialcard.security import service as security_service
from socialcard.security.models import AuditEvent
from tests.proactive.conftest import (
    LARGE,
    LARGE_AMOUNT_4,
    PERIOD,
    Household,
    add_large_family,
    api_key,
    signed,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _offer_of(household: Household) -> Offer:
    with session_scope() as session:
        offer = session.scalars(select(Offer).where(Offer.entity_id == household.family_id)).one()
        session.expunge(offer)
        return offer


def _count(model: type) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _reply(client: TestClient, msg_id: str, sender: str, text: str) -> dict[str, object]:
    body, headers = signed({"id": msg_id, "from": sender, "text": text})
    response = client.post("/api/v1/proactive/sms/inbound", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


class TestSmsReply:
    @pytest.mark.parametrize("text", ["1", " ДА ", "Иә", "yes", "YES", "да"])
    def test_agreement_assigns_and_orders_payment(self, live_client: TestClient, text: str) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        result = _reply(live_client, f"in-{text}", household.phone, text)
        assert result["outcome"] == "decided"
        offer = _offer_of(household)
        assert offer.status == "agreed"
        with session_scope() as session:
            consent = session.scalars(select(Consent)).one()
            assignment = session.scalars(select(Assignment)).one()
            order = session.scalars(select(PaymentOrder)).one()
            kinds = sorted(m.kind for m in session.scalars(select(Message)))
        assert (consent.channel, consent.decision, consent.reply) == ("sms", "agree", text)
        assert "69 330 ₸" in consent.text_shown
        assert assignment.amount_minor == LARGE_AMOUNT_4
        assert assignment.from_on.isoformat() == "2026-03-01"
        assert assignment.recurring
        assert assignment.until_on is None
        assert "art. 91" in assignment.legal_basis
        assert (order.amount_minor, order.period, order.destination_kind) == (
            LARGE_AMOUNT_4,
            PERIOD,
            "wallet",
        )
        assert kinds == ["confirmation", "offer"]

    @pytest.mark.parametrize("text", ["2", "нет", "ЖОҚ", " no "])
    def test_refusal_is_recorded_without_assignment(
        self, live_client: TestClient, text: str
    ) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        _reply(live_client, "r1", household.phone, text)
        assert _offer_of(household).status == "refused"
        assert _count(Assignment) == 0
        assert _count(PaymentOrder) == 0

    @pytest.mark.parametrize("text", ["maybe", "", "12", "да нет", "😀"])
    def test_unknown_reply_gets_help_and_no_decision(
        self, live_client: TestClient, text: str
    ) -> None:
        household = add_large_family(4, language="en")
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        result = _reply(live_client, "h1", household.phone, text)
        assert result["outcome"] == "help"
        assert _offer_of(household).status == "pending"
        with session_scope() as session:
            help_message = session.scalars(select(Message).where(Message.kind == "help")).one()
        assert "did not understand" in help_message.body

    def test_reply_from_unknown_number_is_recorded_and_ignored(
        self, live_client: TestClient
    ) -> None:
        add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        result = _reply(live_client, "x1", "+77000000000", "1")
        assert result["outcome"] == "no_offer"
        assert _count(InboundReply) == 1
        assert _count(Consent) == 0
        assert _count(Message) == 1

    def test_redelivered_reply_is_processed_once(self, live_client: TestClient) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        _reply(live_client, "same", household.phone, "1")
        _reply(live_client, "same", household.phone, "1")
        assert (_count(Consent), _count(Assignment), _count(PaymentOrder)) == (1, 1, 1)

    def test_unsigned_or_malformed_callbacks_are_4xx(self, live_client: TestClient) -> None:
        body, headers = signed({"id": "a", "from": "+77011234567", "text": "1"})
        bad = {**headers, "X-Signature": "0" * 64}
        assert (
            live_client.post("/api/v1/proactive/sms/inbound", content=body, headers=bad).status_code
            == 403
        )
        junk, junk_headers = b"{not json", {"X-Signature": service.webhook_signature(b"{not json")}
        response = live_client.post(
            "/api/v1/proactive/sms/inbound", content=junk, headers=junk_headers
        )
        assert response.status_code == 422
        body, headers = signed({"id": "a", "text": "1"})
        response = live_client.post("/api/v1/proactive/sms/inbound", content=body, headers=headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "from"


class TestSignedLink:
    def _token(self, household: Household) -> str:
        offer = _offer_of(household)
        return links.make_token(offer.id, expires_at=utcnow() + timedelta(days=1))

    def test_page_shows_offer_and_agreeing_pays_into_the_wallet(
        self, live_client: TestClient
    ) -> None:
        household = add_large_family(4, language="ru")
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        token = self._token(household)
        page = live_client.get(f"/consent/{token}")
        assert page.status_code == 200
        assert "Пособие многодетной семье" in page.text
        done = live_client.post(f"/consent/{token}", content="decision=agree", headers=FORM)
        assert done.status_code == 200, done.text
        assert "Согласие принято" in done.text
        with session_scope() as session:
            order = session.scalars(select(PaymentOrder)).one()
            consent = session.scalars(select(Consent)).one()
        assert (order.destination_kind, order.iban) == ("wallet", None)
        assert consent.channel == "link"

    def test_a_bank_account_is_taken_only_with_the_code_sent_to_the_registered_phone(
        self, live_client: TestClient, proactive_env: Path
    ) -> None:
        household = add_large_family(4, language="ru")
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        token = self._token(household)
        iban = make_kz_iban("125KZT5004100100")
        asked = live_client.post(
            f"/consent/{token}", content=f"decision=agree&iban={iban}", headers=FORM
        )
        assert asked.status_code == 200, asked.text
        assert 'name="code"' in asked.text
        assert _offer_of(household).status == "pending"
        assert _count(PaymentOrder) == 0
        with session_scope() as session:
            stored = session.scalars(select(Message).where(Message.kind == "code")).one()
        assert stored.phone == household.phone
        assert service.CODE_MARK in stored.body  # the code itself is in no row
        jobs.dispatch()
        sent = [json.loads(line) for line in proactive_env.read_text().splitlines()]
        text = next(m["text"] for m in sent if m["key"] == stored.idempotency_key)
        assert next(m["to"] for m in sent if m["key"] == stored.idempotency_key) == household.phone
        code = re.search(r"\b(\d{6})\b", text)
        assert code is not None
        wrong = "000000" if code.group(1) != "000000" else "111111"
        refused = live_client.post(f"/consent/{token}", content=f"code={wrong}", headers=FORM)
        assert refused.status_code == 422
        assert _offer_of(household).status == "pending"
        done = live_client.post(f"/consent/{token}", content=f"code={code.group(1)}", headers=FORM)
        assert done.status_code == 200, done.text
        assert "Согласие принято" in done.text
        with session_scope() as session:
            order = session.scalars(select(PaymentOrder)).one()
        assert (order.destination_kind, order.iban) == ("bank", iban)
        again = live_client.post(f"/consent/{token}", content=f"code={code.group(1)}", headers=FORM)
        assert again.status_code == 410  # used once

    def test_wrong_codes_are_limited(self, live_client: TestClient) -> None:
        household = add_large_family(4, language="en")
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        token = self._token(household)
        iban = make_kz_iban("125KZT5004100100")
        live_client.post(f"/consent/{token}", content=f"decision=agree&iban={iban}", headers=FORM)
        statuses = [
            live_client.post(f"/consent/{token}", content="code=99999x", headers=FORM).status_code
            for _ in range(6)
        ]
        assert statuses == [422, 422, 422, 422, 410, 410]
        assert _offer_of(household).status == "pending"

    def test_an_operator_never_sees_a_live_link(
        self, live_client: TestClient, proactive_env: Path
    ) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        offer = _offer_of(household)
        detail = live_client.get(
            f"/api/v1/proactive/offers/{offer.id}?purpose=case_review", headers=api_key()
        )
        assert detail.status_code == 200
        assert "/consent/" not in detail.text
        assert service.LINK_MARK in detail.json()["messages"][0]["body"]
        with session_scope() as session:
            bodies = list(session.scalars(select(Message.body)))
        assert not any("/consent/" in body for body in bodies)
        # The citizen's SMS carries the live link, made as it is handed to the gateway.
        jobs.dispatch()
        [sent] = [json.loads(line)["text"] for line in proactive_env.read_text().splitlines()]
        link = re.search(r"/consent/(\S+)$", sent)
        assert link is not None
        assert live_client.get(f"/consent/{link.group(1)}").status_code == 200

    def test_an_operator_cannot_send_the_money_to_an_account(self, live_client: TestClient) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        offer = _offer_of(household)
        response = live_client.post(
            f"/api/v1/proactive/offers/{offer.id}/override",
            json={
                "action": "agree",
                "reason": "the citizen asked at the office",
                "iban": make_kz_iban("125KZT5004100100"),
            },
            headers=api_key(),
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "iban"
        assert _offer_of(household).status == "pending"

    def test_invalid_iban_is_refused_and_nothing_decided(self, live_client: TestClient) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        token = self._token(household)
        done = live_client.post(
            f"/consent/{token}", content="decision=agree&iban=KZ00125KZT5004100100", headers=FORM
        )
        assert done.status_code == 422
        assert _offer_of(household).status == "pending"

    def test_tampered_link_is_refused_with_a_page(self, live_client: TestClient) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        token = self._token(household)
        offer_id, expiry, key_id, mac = token.split(".")
        forged = f"{int(offer_id) + 1}.{expiry}.{key_id}.{mac}"
        for bad in (forged, "garbage", f"{offer_id}.{expiry}.{key_id}.{mac[:-2]}xx"):
            page = live_client.get(f"/consent/{bad}")
            assert page.status_code == 403
            assert "text/html" in page.headers["content-type"]
            assert "Ссылка недействительна" in page.text

    def test_expired_link_is_refused_with_a_page(self, live_client: TestClient) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        token = links.make_token(
            _offer_of(household).id, expires_at=utcnow() - timedelta(seconds=1)
        )
        page = live_client.post(
            f"/consent/{token}",
            content="decision=agree",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert page.status_code == 410
        assert "истёк" in page.text
        assert _offer_of(household).status == "pending"


class TestDeadlines:
    def test_reminder_before_and_lapse_after_the_deadline(self, proactive_env: Path) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        offer = _offer_of(household)
        with session_scope() as session:
            early = service.process_deadlines(session, now=offer.created_at + timedelta(days=1))
            due = service.process_deadlines(
                session, now=offer.created_at + timedelta(days=5, hours=1)
            )
            again = service.process_deadlines(
                session, now=offer.created_at + timedelta(days=5, hours=2)
            )
            late = service.process_deadlines(session, now=offer.deadline_at + timedelta(seconds=1))
        assert early == {"reminded": 0, "lapsed": 0}
        assert due == {"reminded": 1, "lapsed": 0}
        assert again == {"reminded": 0, "lapsed": 0}
        assert late == {"reminded": 0, "lapsed": 1}
        assert _offer_of(household).status == "lapsed"
        with session_scope() as session:
            kinds = sorted(m.kind for m in session.scalars(select(Message)))
        assert kinds == ["lapsed", "offer", "reminder"]


class TestPayingBank:
    """Finding 4: the paying bank is its own role; it sees and marks only bank transfers, and
    each read and mark is audited."""

    def _orders(self, live_client: TestClient) -> tuple[int, int]:
        wallet, bank = add_large_family(4), add_large_family(5)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        with session_scope() as session:
            for household, iban in ((wallet, None), (bank, make_kz_iban("125KZT5004100100"))):
                offer = session.scalars(
                    select(Offer).where(Offer.entity_id == household.family_id)
                ).one()
                service.decide(
                    session,
                    offer_id=offer.id,
                    decision=ConsentDecision.AGREE,
                    channel=Channel.LINK,
                    actor=f"person:{offer.person_id}",
                    iban=iban,
                )
            orders = {o.destination_kind: o.id for o in session.scalars(select(PaymentOrder))}
        return orders["wallet"], orders["bank"]

    def test_an_agency_key_cannot_touch_payment_orders(self, live_client: TestClient) -> None:
        with session_scope() as session:
            agency = security_service.create_api_key(
                session, name="bank", role="agency", agency="bank", sources=["incomes"]
            )
        headers = {"X-API-Key": agency.key}
        assert (
            live_client.get("/api/v1/proactive/payment-orders", headers=headers).status_code == 403
        )
        paid = live_client.post(
            "/api/v1/proactive/payment-orders/1/paid", json={"reference": "x"}, headers=headers
        )
        assert paid.status_code == 403

    def test_the_bank_sees_and_marks_only_bank_transfers(self, live_client: TestClient) -> None:
        wallet_order, bank_order = self._orders(live_client)
        payer = api_key("payment_provider")
        listed = live_client.get("/api/v1/proactive/payment-orders", headers=payer)
        assert listed.status_code == 200
        assert [o["id"] for o in listed.json()] == [bank_order]
        refused = live_client.post(
            f"/api/v1/proactive/payment-orders/{wallet_order}/paid",
            json={"reference": "never-paid"},
            headers=payer,
        )
        assert refused.status_code == 404
        paid = live_client.post(
            f"/api/v1/proactive/payment-orders/{bank_order}/paid",
            json={"reference": "HB-1"},
            headers=payer,
        )
        assert paid.status_code == 200
        with session_scope() as session:
            statuses = {o.id: o.status for o in session.scalars(select(PaymentOrder))}
            events = {
                (e.action, e.purpose, e.actor_role)
                for e in session.scalars(select(AuditEvent))
                if e.action.startswith("proactive.payment_order")
            }
        assert statuses == {wallet_order: "pending", bank_order: "paid"}
        assert events == {
            ("proactive.payment_order.read", "payment", "payment_provider"),
            ("proactive.payment_order.paid", "payment", "payment_provider"),
        }
