"""Life events, monthly accrual, endings, operators (funnel, search, override), payment orders."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from socialcard.core.db import new_session, session_scope
from socialcard.jobs import worker as jobs_worker
from socialcard.proactive import jobs, service
from socialcard.proactive.enums import Channel, ConsentDecision
from socialcard.proactive.models import Assignment, Message, Offer, PaymentOrder
from socialcard.registry import events as registry_events
from socialcard.registry.enums import EventKind
from socialcard.registry.models import FamilyMember, Person
from socialcard.rules import service as rules_service
from socialcard.security.models import AuditEvent
from tests.factories import make_person
from tests.proactive.conftest import LARGE, PERIOD, Household, add_large_family, api_key


def _agree_all() -> None:
    with session_scope() as session:
        for offer in session.scalars(select(Offer).where(Offer.status == "pending")):
            service.decide(
                session,
                offer_id=offer.id,
                decision=ConsentDecision.AGREE,
                channel=Channel.SMS,
                actor="test",
            )


def _assignment(household: Household) -> Assignment:
    with session_scope() as session:
        found = session.scalars(
            select(Assignment).where(Assignment.entity_id == household.family_id)
        ).one()
        session.expunge(found)
        return found


def _add_child(household: Household, born: date) -> int:
    with session_scope() as session:
        child = make_person(session, birth_on=born, phone=None)
        session.add(
            FamilyMember(
                family_id=household.family_id, person_id=child.id, role="child", from_on=born
            )
        )
        registry_events.record_events(
            session,
            [registry_events.NewEvent(EventKind.BIRTH, child.id, household.family_id, born, {})],
        )
        return child.id


def _death(household: Household, person_id: int, on: date) -> None:
    with session_scope() as session:
        person = session.get(Person, person_id)
        assert person is not None
        person.death_on = on
        for member in session.scalars(
            select(FamilyMember).where(FamilyMember.person_id == person_id)
        ):
            member.until_on = on
        registry_events.record_events(
            session,
            [
                registry_events.NewEvent(EventKind.DEATH, person_id, None, on, {}),
                registry_events.NewEvent(
                    EventKind.FAMILY_CHANGED, person_id, household.family_id, on, {}
                ),
            ],
        )


class TestLifeEvents:
    def test_a_birth_offers_the_large_family_allowance_within_seconds(
        self, proactive_env: Path
    ) -> None:
        household = add_large_family(3)
        started = time.perf_counter()
        baby = _add_child(household, date(2026, 3, 10))
        counts = jobs.process_events_once()
        elapsed = time.perf_counter() - started
        with session_scope() as session:
            offers = {o.program_id: o for o in session.scalars(select(Offer))}
            queued = session.scalars(select(Message)).all()
        assert counts["events"] == 1
        assert set(offers) >= {"kz.large_family", "kz.birth_allowance"}
        assert offers["kz.large_family"].entity_id == household.family_id
        assert offers["kz.birth_allowance"].entity_id == baby
        assert offers["kz.birth_allowance"].person_id == household.head_id
        assert offers["kz.large_family"].source == "event"
        assert len(queued) == len(offers)
        assert elapsed < 2.0

    def test_events_are_processed_once(self, proactive_env: Path) -> None:
        household = add_large_family(3)
        _add_child(household, date(2026, 3, 10))
        first = jobs.process_events_once()
        again = jobs.process_events_once()
        assert first["offered"] >= 2
        assert again["events"] == 0
        with session_scope() as session:
            assert len(session.scalars(select(Offer)).all()) == first["offered"]

    def test_death_of_a_child_ends_the_assignment_from_the_next_month_with_a_notice(
        self, proactive_env: Path
    ) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        _agree_all()
        _death(household, household.child_ids[0], date(2026, 3, 20))
        jobs.process_events_once()
        # The child was alive on 1 March: the family still had four children in March.
        assert _assignment(household).status == "active"
        april = jobs.accrue(period="2026-04")
        assignment = _assignment(household)
        assert april["ended"] == 1
        assert (assignment.status, assignment.end_reason) == ("ended", "not_eligible")
        with session_scope() as session:
            notice = session.scalars(select(Message).where(Message.kind == "ended")).one()
        assert "прекращена" in notice.body

    def test_death_of_the_recipient_ends_the_assignment(self, proactive_env: Path) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        _agree_all()
        _death(household, household.head_id, date(2026, 3, 20))
        jobs.process_events_once()
        assert _assignment(household).end_reason == "death"


class TestAccrue:
    def test_orders_each_month_once_and_ends_when_a_child_turns_18(
        self, proactive_env: Path
    ) -> None:
        births = [date(2008, 4, 15), date(2013, 1, 1), date(2015, 1, 1), date(2017, 1, 1)]
        household = add_large_family(4, child_births=births)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        _agree_all()
        april = jobs.accrue(period="2026-04")
        april_again = jobs.accrue(period="2026-04")
        may = jobs.accrue(period="2026-05")
        with session_scope() as session:
            periods = sorted(o.period for o in session.scalars(select(PaymentOrder)))
        assert april == {"ordered": 1, "ended": 0, "kept": 0}
        assert april_again == {"ordered": 0, "ended": 0, "kept": 1}
        assert may["ended"] == 1
        assert periods == ["2026-03", "2026-04"]
        assert _assignment(household).status == "ended"

    def test_one_off_benefits_do_not_accrue(self, proactive_env: Path) -> None:
        household = add_large_family(3)
        _add_child(household, date(2026, 3, 10))
        jobs.process_events_once()
        _agree_all()
        jobs.accrue(period="2026-04")
        with session_scope() as session:
            birth = session.scalars(
                select(PaymentOrder).where(PaymentOrder.program_id == "kz.birth_allowance")
            ).all()
        assert [o.period for o in birth] == ["2026-03"]


class TestAccrueFromTheStoredRun:
    def _accrue(self, *, online: bool) -> tuple[dict[str, int], list[tuple[int, int]], list[int]]:
        """Accrue May in a transaction that is rolled back: counts, orders and endings."""
        with new_session() as session:
            counts = service.accrue(session, period="2026-05", online=online)
            orders = sorted(
                (o.assignment_id, o.amount_minor)
                for o in session.scalars(
                    select(PaymentOrder).where(PaymentOrder.period == "2026-05")
                )
            )
            ended = sorted(
                a.id
                for a in session.scalars(select(Assignment).where(Assignment.status == "ended"))
            )
            session.rollback()
        return counts, orders, ended

    def test_the_stored_run_and_online_evaluation_accrue_the_same(
        self, proactive_env: Path
    ) -> None:
        turning_18 = [date(2008, 4, 15), date(2013, 1, 1), date(2015, 1, 1), date(2017, 1, 1)]
        add_large_family(4, child_births=turning_18)
        add_large_family(5)
        shrinking = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        _agree_all()
        online = self._accrue(online=True)
        with session_scope() as session:
            rules_service.run_rules(
                session,
                period="2026-05",
                snapshot=rules_service.session_snapshot(session, period="2026-05"),
            )
        stored = self._accrue(online=False)
        assert stored == online
        assert online[0] == {"ordered": 2, "ended": 1, "kept": 0}
        # The stored run is what is read: after a child leaves a family, online evaluation ends
        # its assignment while the run (made before) still pays it.
        with session_scope() as session:
            member = session.scalars(
                select(FamilyMember).where(FamilyMember.person_id == shrinking.child_ids[0])
            ).one()
            member.until_on = date(2026, 4, 1)
        assert self._accrue(online=True)[0] == {"ordered": 1, "ended": 2, "kept": 0}
        assert self._accrue(online=False)[0] == {"ordered": 2, "ended": 1, "kept": 0}


class TestOperators:
    def test_funnel_counts_each_stage(self, live_client: TestClient) -> None:
        for _ in range(3):
            add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        jobs.dispatch()  # an offer SMS goes out while its offer is pending, never after
        with session_scope() as session:
            offers = session.scalars(select(Offer).order_by(Offer.id)).all()
            service.decide(
                session,
                offer_id=offers[0].id,
                decision=ConsentDecision.AGREE,
                channel=Channel.SMS,
                actor="t",
            )
            service.decide(
                session,
                offer_id=offers[1].id,
                decision=ConsentDecision.REFUSE,
                channel=Channel.SMS,
                actor="t",
            )
        jobs.dispatch()  # the confirmation and the refusal notice
        with session_scope() as session:
            provider_id = session.scalars(
                select(Message.provider_message_id).where(Message.offer_id == offers[0].id)
            ).first()
            assert provider_id is not None
            service.record_receipt(
                session, provider_id=provider_id, status="delivered", now=offers[0].created_at
            )
            order = service.pending_payment_orders(session, limit=10)[0]
            service.mark_payment_order_paid(session, order_id=order.id, reference="W-1")
        response = live_client.get("/api/v1/proactive/funnel", headers=api_key())
        assert response.status_code == 200
        [row] = response.json()
        assert {
            k: row[k]
            for k in (
                "eligible",
                "offered",
                "delivered",
                "agreed",
                "refused",
                "pending",
                "assigned",
                "paid",
            )
        } == {
            "eligible": 3,
            "offered": 3,
            "delivered": 3,
            "agreed": 1,
            "refused": 1,
            "pending": 1,
            "assigned": 1,
            "paid": 1,
        }

    def test_override_needs_a_reason_and_is_audited(self, live_client: TestClient) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        headers = api_key()
        offer_id = live_client.get(
            "/api/v1/proactive/offers",
            params={"purpose": "case_review", "person_id": household.head_id},
            headers=headers,
        ).json()["items"][0]["id"]
        short = live_client.post(
            f"/api/v1/proactive/offers/{offer_id}/override",
            json={"action": "agree", "reason": "ok"},
            headers=headers,
        )
        assert short.status_code == 422
        done = live_client.post(
            f"/api/v1/proactive/offers/{offer_id}/override",
            json={"action": "agree", "reason": "citizen agreed by phone call"},
            headers=headers,
        )
        assert done.status_code == 200, done.text
        detail = done.json()
        assert detail["status"] == "agreed"
        assert detail["consent"]["channel"] == "operator"
        assert detail["overrides"][0]["reason"] == "citizen agreed by phone call"
        assert detail["payment_orders"][0]["status"] == "pending"
        again = live_client.post(
            f"/api/v1/proactive/offers/{offer_id}/override",
            json={"action": "refuse", "reason": "changed their mind later"},
            headers=headers,
        )
        assert again.status_code == 409
        with session_scope() as session:
            actions = set(session.scalars(select(AuditEvent.action)))
        assert {"proactive.offer.search", "proactive.offer.override.agree"} <= actions

    def test_campaign_runs_through_the_api(self, live_client: TestClient) -> None:
        add_large_family(4)
        headers = api_key()
        response = live_client.post(
            f"/api/v1/proactive/campaigns/{LARGE}/run", json={"period": PERIOD}, headers=headers
        )
        assert response.status_code == 202, response.text  # a job now: wait for it
        job = jobs_worker.wait(response.json()["id"])
        assert job.result is not None
        assert job.result["offered"] == 1
        missing = live_client.post(
            "/api/v1/proactive/campaigns/kz.none/run", json={"period": PERIOD}, headers=headers
        )
        assert missing.status_code == 404
        bad = live_client.post(
            f"/api/v1/proactive/campaigns/{LARGE}/run", json={"period": "March"}, headers=headers
        )
        assert bad.status_code == 422


class TestPaymentOrders:
    def test_pending_orders_and_marking_paid_is_idempotent(self, proactive_env: Path) -> None:
        add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        _agree_all()
        with session_scope() as session:
            [order] = service.pending_payment_orders(session, limit=10)
            paid = service.mark_payment_order_paid(session, order_id=order.id, reference="R1")
            same = service.mark_payment_order_paid(session, order_id=order.id, reference="R1")
            assert service.pending_payment_orders(session, limit=10) == []
        assert paid.status == "paid"
        assert same.paid_at == paid.paid_at
        from socialcard.proactive.errors import PaymentOrderConflict, PaymentOrderNotFound

        with session_scope() as session, pytest.raises(PaymentOrderConflict):
            service.mark_payment_order_paid(session, order_id=order.id, reference="R2")
        with session_scope() as session, pytest.raises(PaymentOrderNotFound):
            service.mark_payment_order_paid(session, order_id=order.id + 99, reference="R2")


class TestWatch:
    def test_the_loop_turns_an_event_into_a_sent_offer(self, proactive_env: Path) -> None:
        household = add_large_family(3)
        _add_child(household, date(2026, 3, 10))
        loops = iter(range(3))
        jobs.watch(interval=0.01, stop=lambda: next(loops, None) is None)
        with session_scope() as session:
            statuses = {m.status for m in session.scalars(select(Message))}
            offers = session.scalars(select(Offer)).all()
        assert offers
        assert statuses == {"delivered"}
        assert len(proactive_env.read_text(encoding="utf-8").splitlines()) == len(offers)
