"""Life and death in campaigns: the dead are never contacted or paid, a person benefit ends with
its holder, and an answer after the deadline is refused as late (issue 12, item 8)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from socialcard.core import clock
from socialcard.core.db import session_scope
from socialcard.proactive import eligibility, jobs, links, service
from socialcard.proactive.enums import Channel, ConsentDecision
from socialcard.proactive.errors import OfferClosed, OfferLate, PaymentOrderConflict
from socialcard.proactive.iban import make_kz_iban
from socialcard.proactive.models import (
    Assignment,
    Consent,
    InboundReply,
    Message,
    Offer,
    PaymentOrder,
)
from socialcard.registry import events as registry_events
from socialcard.registry.enums import EventKind
from socialcard.registry.models import FamilyMember, Person
from tests.factories import make_fact, make_family, make_person
from tests.proactive.conftest import (
    LARGE,
    PERIOD,
    Household,
    add_large_family,
    api_key,
    signed,
)

DISABILITY = "kz.disability"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# When the tests' offers are made: inside PERIOD, so ages and deaths are dated against it.
OFFERED_AT = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _march(proactive_env: Path) -> object:
    """Every test runs on a clock that starts on OFFERED_AT (and runs on)."""
    with clock.travel_to(OFFERED_AT):
        yield None


def _record_death(person_id: int, on: date, *, close_membership: bool = True) -> None:
    """The registry records a death (date, membership, life event); the proactive consumer has
    not processed the event yet."""
    with session_scope() as session:
        person = session.get(Person, person_id)
        assert person is not None
        person.death_on = on
        family_id = None
        for member in session.scalars(
            select(FamilyMember).where(FamilyMember.person_id == person_id)
        ):
            family_id = member.family_id
            if close_membership:
                member.until_on = on
        registry_events.record_events(
            session,
            [
                registry_events.NewEvent(EventKind.DEATH, person_id, None, on, {}),
                registry_events.NewEvent(EventKind.FAMILY_CHANGED, person_id, family_id, on, {}),
            ],
        )


def _sent(outbox: Path) -> list[dict[str, str]]:
    if not outbox.exists():
        return []
    return [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]


def _messages(kind: str | None = None) -> list[Message]:
    with session_scope() as session:
        query = select(Message).order_by(Message.id)
        if kind is not None:
            query = query.where(Message.kind == kind)
        rows = list(session.scalars(query))
        session.expunge_all()
        return rows


def _offers(program_id: str | None = None) -> list[Offer]:
    with session_scope() as session:
        query = select(Offer).order_by(Offer.id)
        if program_id is not None:
            query = query.where(Offer.program_id == program_id)
        rows = list(session.scalars(query))
        session.expunge_all()
        return rows


def _count(model: type) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _disabled_couple(*, group: str = "group_2", language: str = "ru") -> tuple[int, int, int]:
    """A family of a head and a spouse with a disability of general illness (a person benefit):
    (family id, head id, spouse id)."""
    with session_scope() as session:
        head = make_person(session, birth_on=date(1970, 2, 1), sex="M", phone="+77015550001")
        spouse = make_person(
            session,
            birth_on=date(1972, 4, 1),
            sex="F",
            phone="+77015550002",
            language=language,
        )
        make_fact(
            session,
            spouse,
            kind="disability",
            detail=group,
            qualifier="general_illness",
            amount_minor=None,
            valid_from=date(2024, 1, 1),
            source="msek",
        )
        family = make_family(session, [(head, "head"), (spouse, "spouse")])
        return family.id, head.id, spouse.id


def _agree(offer_id: int) -> None:
    with session_scope() as session:
        service.decide(
            session,
            offer_id=offer_id,
            decision=ConsentDecision.AGREE,
            channel=Channel.SMS,
            actor="test",
        )


class TestTheDispatcherChecksAtSendingTime:
    def test_a_death_recorded_after_queueing_stops_the_offer_sms(self, proactive_env: Path) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        [queued] = _messages("offer")
        assert queued.status == "queued"
        _record_death(household.head_id, date(2026, 3, 9))  # the event is not processed yet
        assert jobs.dispatch() == {"sent": 0, "failed": 0}
        assert _sent(proactive_env) == []
        [held] = _messages("offer")
        assert held.status == "cancelled"
        assert held.last_error is not None
        assert "died on 2026-03-09" in held.last_error
        # Sending again does not pick it up; the event, once processed, cancels the offer.
        assert jobs.dispatch() == {"sent": 0, "failed": 0}
        jobs.process_events_once()
        assert [o.status for o in _offers(LARGE)] == ["cancelled"]
        assert _sent(proactive_env) == []

    def test_others_are_still_sent_when_a_batch_starts_with_the_dead(
        self, proactive_env: Path
    ) -> None:
        dead = [add_large_family(4) for _ in range(3)]
        alive = add_large_family(5)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        for household in dead:
            _record_death(household.head_id, date(2026, 3, 9))
        counts = jobs.dispatch(batch=2)
        assert counts["sent"] == 1
        assert [m["to"] for m in _sent(proactive_env)] == [alive.phone]

    def test_a_reminder_is_not_sent_to_someone_who_died_after_it_was_queued(
        self, proactive_env: Path
    ) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        jobs.dispatch()
        [offer] = _offers(LARGE)
        assert offer.remind_at is not None
        with session_scope() as session:
            assert service.process_deadlines(session, now=offer.remind_at)["reminded"] == 1
        _record_death(household.head_id, date(2026, 3, 14))
        with clock.travel_to(offer.remind_at + timedelta(minutes=5)):
            jobs.dispatch()
        assert [m["key"] for m in _sent(proactive_env)] == [f"offer:{offer.id}:offer"]
        assert [m.status for m in _messages("reminder")] == ["cancelled"]

    def test_a_lapse_notice_is_not_sent_to_someone_who_died_after_it_was_queued(
        self, proactive_env: Path
    ) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        jobs.dispatch()
        [offer] = _offers(LARGE)
        after = offer.deadline_at + timedelta(minutes=1)
        with session_scope() as session:
            assert service.process_deadlines(session, now=after)["lapsed"] == 1
        _record_death(household.head_id, date(2026, 3, 17))
        with clock.travel_to(after):
            jobs.dispatch()
        assert len(_sent(proactive_env)) == 1  # the offer only
        [notice] = _messages("lapsed")
        assert notice.status == "cancelled"

    def test_an_offer_cancelled_after_queueing_is_not_sent(self, live_client: TestClient) -> None:
        add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        [offer] = _offers(LARGE)
        done = live_client.post(
            f"/api/v1/proactive/offers/{offer.id}/override",
            json={"action": "cancel", "reason": "entered for the wrong family"},
            headers=api_key(),
        )
        assert done.status_code == 200, done.text
        jobs.dispatch()
        [held] = _messages("offer")
        assert (held.status, held.last_error) == ("cancelled", "not sent: the offer is cancelled")

    def test_an_offer_sms_is_not_sent_after_its_deadline(self, proactive_env: Path) -> None:
        add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        [offer] = _offers(LARGE)
        with clock.travel_to(offer.deadline_at + timedelta(seconds=1)):
            jobs.dispatch()
        assert _sent(proactive_env) == []
        assert _messages("offer")[0].last_error == "not sent: the offer's deadline has passed"

    def test_a_child_benefit_is_not_announced_once_the_child_died(
        self, proactive_env: Path
    ) -> None:
        household = add_large_family(2)
        with session_scope() as session:
            baby = make_person(session, birth_on=date(2026, 3, 2), phone=None)
            session.add(
                FamilyMember(
                    family_id=household.family_id,
                    person_id=baby.id,
                    role="child",
                    from_on=date(2026, 3, 2),
                )
            )
            baby_id = baby.id
        with session_scope() as session:
            service.offer_for_family(
                session,
                family_id=household.family_id,
                period=PERIOD,
                now=clock.utcnow(),
                programs=["kz.birth_allowance"],
            )
        [offer] = _offers("kz.birth_allowance")
        assert (offer.entity_id, offer.person_id) == (baby_id, household.head_id)
        _record_death(baby_id, date(2026, 3, 9))
        jobs.dispatch()
        assert _sent(proactive_env) == []
        assert "the person the offer is for died" in (_messages("offer")[0].last_error or "")


class TestADeathCancelsWhatIsPending:
    def _assigned_disability(self) -> tuple[int, int]:
        """A disability benefit agreed in March and accrued for April: (spouse id, head id)."""
        _, head_id, spouse_id = _disabled_couple()
        jobs.run_campaign(program_id=DISABILITY, period=PERIOD)
        [offer] = _offers(DISABILITY)
        assert offer.person_id == spouse_id
        _agree(offer.id)
        assert jobs.accrue(period="2026-04")["ordered"] == 1
        return spouse_id, head_id

    def test_the_death_event_cancels_offers_messages_and_unpaid_orders(
        self, proactive_env: Path
    ) -> None:
        spouse_id, _ = self._assigned_disability()
        other = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        with session_scope() as session:
            assert len(service.pending_payment_orders(session, limit=10)) == 2
        _record_death(spouse_id, date(2026, 4, 10))
        counts = jobs.process_events_once()
        assert counts["orders_cancelled"] == 2
        assert counts["ended"] >= 1
        with session_scope() as session:
            orders = {o.period: o.status for o in session.scalars(select(PaymentOrder))}
            assignment = session.scalars(select(Assignment)).one()
            assert service.pending_payment_orders(session, limit=10) == []
        assert orders == {"2026-03": "cancelled", "2026-04": "cancelled"}
        assert (assignment.status, assignment.end_reason) == ("ended", "death")
        assert assignment.until_on == date(2026, 4, 10)
        # Nothing was written to the dead: the confirmation queued at consent is cancelled, and
        # no end notice was queued for them.
        for message in _messages():
            assert message.person_id != spouse_id or message.status == "cancelled"
        assert _messages("ended") == []
        jobs.dispatch()
        assert all(m["to"] != "+77015550002" for m in _sent(proactive_env))
        # The large family's offer (someone else) stands.
        assert [o.status for o in _offers(LARGE)] == ["pending"]
        assert other.phone in {m["to"] for m in _sent(proactive_env)}

    def test_a_cancelled_order_cannot_be_marked_paid(self, proactive_env: Path) -> None:
        spouse_id, _ = self._assigned_disability()
        with session_scope() as session:
            order_id = session.scalars(select(PaymentOrder.id)).first()
        _record_death(spouse_id, date(2026, 4, 10))
        jobs.process_events_once()
        with session_scope() as session, pytest.raises(PaymentOrderConflict):
            service.mark_payment_order_paid(session, order_id=order_id or 0, reference="W-9")

    def test_before_the_event_is_processed_nothing_is_paid_or_accrued_for_the_dead(
        self, proactive_env: Path
    ) -> None:
        spouse_id, _ = self._assigned_disability()
        _record_death(spouse_id, date(2026, 4, 10))
        with session_scope() as session:
            assert service.pending_payment_orders(session, limit=10) == []
        counts = jobs.accrue(period="2026-05")
        assert counts == {"ordered": 0, "ended": 1, "kept": 0}
        with session_scope() as session:
            periods = sorted(o.period for o in session.scalars(select(PaymentOrder)))
            assignment = session.scalars(select(Assignment)).one()
        assert periods == ["2026-03", "2026-04"]
        assert (assignment.status, assignment.end_reason) == ("ended", "death")
        assert _messages("ended") == []

    def test_a_death_between_offer_and_answer_refuses_the_answer(
        self, live_client: TestClient
    ) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        jobs.dispatch()
        _record_death(household.head_id, date(2026, 3, 11))
        body, headers = signed({"id": "from-the-dead", "from": household.phone, "text": "1"})
        answer = live_client.post("/api/v1/proactive/sms/inbound", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "no_offer"
        assert (_count(Consent), _count(PaymentOrder)) == (0, 0)
        assert [m.kind for m in _messages()] == ["offer"]  # no reply to the dead's phone
        [offer] = _offers(LARGE)
        with session_scope() as session, pytest.raises(OfferClosed):
            service.decide(
                session,
                offer_id=offer.id,
                decision=ConsentDecision.AGREE,
                channel=Channel.OPERATOR,
                actor="operator:t",
            )


class TestAPersonBenefitEndsWithItsHolder:
    @pytest.mark.parametrize("close_membership", [True, False])
    def test_a_dead_holders_disability_is_offered_to_no_relative(
        self, proactive_env: Path, close_membership: bool
    ) -> None:
        _, _, spouse_id = _disabled_couple()
        _record_death(spouse_id, date(2026, 3, 5), close_membership=close_membership)
        jobs.process_events_once()
        campaign = jobs.run_campaign(program_id=DISABILITY, period=PERIOD, fresh_rules=True)
        offers = _offers(DISABILITY)
        assert [o.person_id for o in offers] == []
        assert campaign.offered == 0

    def test_a_stored_decision_of_a_dead_holder_has_no_recipient(self, proactive_env: Path) -> None:
        """The rules decided while the holder lived (or for a month they lived in); the
        death recorded since stops it from becoming anyone's offer."""
        _, _, spouse_id = _disabled_couple()
        with session_scope() as session:
            run_id = eligibility.rules_run_for(session, program_id=DISABILITY, period=PERIOD)
            before = list(
                eligibility.rules_candidates(
                    session, run_id=run_id, program_id=DISABILITY, period=PERIOD
                )
            )
        assert [(c.entity_id, c.person_id) for c in before] == [(spouse_id, spouse_id)]
        _record_death(spouse_id, date(2026, 3, 5), close_membership=False)
        with session_scope() as session:
            after = list(
                eligibility.rules_candidates(
                    session, run_id=run_id, program_id=DISABILITY, period=PERIOD
                )
            )
        assert after == []
        jobs.run_campaign(program_id=DISABILITY, period=PERIOD)
        assert _offers(DISABILITY) == []

    def test_candidates_of_a_dead_holder_are_skipped_as_deceased(self, proactive_env: Path) -> None:
        family_id, head_id, spouse_id = _disabled_couple()
        _record_death(spouse_id, date(2026, 3, 5), close_membership=False)
        candidate = eligibility.Candidate(
            program_id=DISABILITY,
            program_version="2024-01-01",
            entity_type="person",
            entity_id=spouse_id,
            family_id=family_id,
            person_id=head_id,
            region_kato="751110000",
            amount_minor=8_949_800,
            period=PERIOD,
            legal_basis="",
            explanation="{}",
        )
        result = jobs.run_campaign(program_id=DISABILITY, period=PERIOD, candidates=[candidate])
        assert (result.offered, result.skipped_deceased) == (0, 1)
        assert _count(Message) == 0

    def test_a_minors_person_benefit_still_goes_to_the_living_parent(
        self, proactive_env: Path
    ) -> None:
        household = add_large_family(2)
        _add_baby(household, date(2026, 3, 2))
        jobs.process_events_once()
        [offer] = _offers("kz.birth_allowance")
        assert offer.person_id == household.head_id


def _add_baby(household: Household, born: date) -> int:
    with session_scope() as session:
        baby = make_person(session, birth_on=born, phone=None)
        session.add(
            FamilyMember(
                family_id=household.family_id, person_id=baby.id, role="child", from_on=born
            )
        )
        registry_events.record_events(
            session,
            [registry_events.NewEvent(EventKind.BIRTH, baby.id, household.family_id, born, {})],
        )
        return baby.id


class TestALateAnswerIsRefused:
    def _offer(self, language: str = "ru") -> tuple[Household, Offer]:
        household = add_large_family(4, language=language)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        jobs.dispatch()
        [offer] = _offers(LARGE)
        return household, offer

    def _reply(self, client: TestClient, key: str, phone: str, text: str) -> dict[str, object]:
        body, headers = signed({"id": key, "from": phone, "text": text})
        response = client.post("/api/v1/proactive/sms/inbound", content=body, headers=headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    @pytest.mark.parametrize(
        ("language", "words"),
        [("ru", "ваш ответ не принят"), ("kk", "жауабыңыз қабылданбады"), ("en", "not accepted")],
    )
    @pytest.mark.parametrize("lapse_job_ran", [False, True])
    def test_a_yes_after_the_deadline_gets_a_late_reply_and_no_payment(
        self,
        live_client: TestClient,
        proactive_env: Path,
        language: str,
        words: str,
        lapse_job_ran: bool,
    ) -> None:
        household, offer = self._offer(language)
        after = offer.deadline_at + timedelta(seconds=1)
        if lapse_job_ran:
            with session_scope() as session:
                assert service.process_deadlines(session, now=after)["lapsed"] == 1
        with clock.travel_to(after):
            result = self._reply(live_client, f"late-{lapse_job_ran}", household.phone, "1")
            # The lapse job, run now or later, sends no second notice.
            with session_scope() as session:
                service.process_deadlines(session)
            jobs.dispatch()
        assert result["outcome"] == "late"
        assert result["offer_id"] == offer.id
        assert (_count(Consent), _count(Assignment), _count(PaymentOrder)) == (0, 0, 0)
        assert [o.status for o in _offers(LARGE)] == ["lapsed"]
        [late] = _messages("late")
        assert (late.phone, late.language) == (household.phone, language)
        assert late.status in ("sent", "delivered")
        assert words in late.body
        assert offer.deadline_at.strftime("%d.%m.%Y") in late.body
        kinds = sorted(m.kind for m in _messages())
        assert kinds == (["lapsed", "late", "offer"] if lapse_job_ran else ["late", "offer"])
        assert words in _sent(proactive_env)[-1]["text"]

    def test_a_no_after_the_deadline_is_not_recorded_either(self, live_client: TestClient) -> None:
        household, offer = self._offer()
        with clock.travel_to(offer.deadline_at):
            result = self._reply(live_client, "late-no", household.phone, "нет")
        assert result["outcome"] == "late"
        assert _count(Consent) == 0
        assert [o.status for o in _offers(LARGE)] == ["lapsed"]

    def test_a_yes_just_before_the_deadline_is_accepted(self, live_client: TestClient) -> None:
        household, offer = self._offer()
        with clock.travel_to(offer.deadline_at - timedelta(seconds=2)):
            result = self._reply(live_client, "in-time", household.phone, "1")
        assert result["outcome"] == "decided"
        assert (_count(Consent), _count(PaymentOrder)) == (1, 1)

    def test_an_unclear_reply_after_the_deadline_gets_no_help(
        self, live_client: TestClient
    ) -> None:
        household, offer = self._offer()
        with clock.travel_to(offer.deadline_at + timedelta(hours=1)):
            result = self._reply(live_client, "late-what", household.phone, "what?")
        assert result["outcome"] == "no_offer"
        assert [m.kind for m in _messages()] == ["offer"]

    @pytest.mark.parametrize("lapse_job_ran", [False, True])
    def test_the_link_after_the_deadline_says_late_in_the_citizens_language(
        self, live_client: TestClient, proactive_env: Path, lapse_job_ran: bool
    ) -> None:
        _, offer = self._offer("kk")
        [sent] = _sent(proactive_env)
        token = sent["text"].rsplit("/consent/", 1)[1]
        after = offer.deadline_at + timedelta(minutes=1)
        if lapse_job_ran:
            with session_scope() as session:
                service.process_deadlines(session, now=after)
        with clock.travel_to(after):
            page = live_client.get(f"/consent/{token}")
            answer = live_client.post(f"/consent/{token}", content="decision=agree", headers=FORM)
        for response in (page, answer):
            assert response.status_code == 409, response.text
            assert "text/html" in response.headers["content-type"]
            assert 'lang="kk"' in response.text
            assert "жауабыңыз қабылданбады" in response.text
            assert offer.deadline_at.strftime("%d.%m.%Y") in response.text
        assert (_count(Consent), _count(Assignment), _count(PaymentOrder)) == (0, 0, 0)

    def test_a_link_living_past_the_deadline_still_cannot_consent(
        self, live_client: TestClient
    ) -> None:
        _, offer = self._offer("en")
        token = links.make_token(offer.id, expires_at=offer.deadline_at + timedelta(days=30))
        with clock.travel_to(offer.deadline_at + timedelta(hours=2)):
            page = live_client.get(f"/consent/{token}")
            answer = live_client.post(f"/consent/{token}", content="decision=agree", headers=FORM)
            iban = live_client.post(
                f"/consent/{token}",
                content=f"decision=agree&iban={make_kz_iban('125KZT5004100100')}",
                headers=FORM,
            )
        assert page.status_code == 200
        assert "not accepted" in page.text
        assert "<form" not in page.text
        assert answer.status_code == 409
        assert "not accepted" in answer.text
        assert iban.status_code == 409
        assert (_count(Consent), _count(PaymentOrder)) == (0, 0)
        assert _messages("code") == []

    def test_an_operator_cannot_agree_after_the_deadline(self, live_client: TestClient) -> None:
        _, offer = self._offer()
        with clock.travel_to(offer.deadline_at + timedelta(minutes=1)):
            done = live_client.post(
                f"/api/v1/proactive/offers/{offer.id}/override",
                json={"action": "agree", "reason": "the citizen called after the deadline"},
                headers=api_key(),
            )
        assert done.status_code == 409
        assert done.json()["code"] == "offer_late"
        assert done.json()["errors"][0]["field"] == "offer_id"
        assert (_count(Consent), _count(PaymentOrder)) == (0, 0)

    def test_the_service_refuses_a_late_answer_whatever_the_channel(
        self, proactive_env: Path
    ) -> None:
        _, offer = self._offer()
        for channel in Channel:
            with session_scope() as session, pytest.raises(OfferLate) as raised:
                service.decide(
                    session,
                    offer_id=offer.id,
                    decision=ConsentDecision.AGREE,
                    channel=channel,
                    actor="t",
                    now=offer.deadline_at,
                )
            assert raised.value.language == "ru"
        with (
            clock.travel_to(offer.deadline_at + timedelta(days=1)),
            session_scope() as session,
            pytest.raises(OfferLate),
        ):
            service.decide_as_citizen(
                session,
                offer_id=offer.id,
                person_id=offer.person_id,
                decision=ConsentDecision.AGREE,
            )
        assert _count(InboundReply) == 0
        assert [o.status for o in _offers(LARGE)] == ["pending"]
