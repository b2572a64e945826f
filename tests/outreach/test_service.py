"""Segments that act: definition, selection, invitations through the proactive flow, cases."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy.orm import Session

from socialcard.core.clock import today, utcnow
from socialcard.core.errors import InvalidInput
from socialcard.outreach import service
from socialcard.outreach.enums import CaseOutcome, ContactChannel
from socialcard.outreach.errors import SegmentExists, SegmentNotFound
from socialcard.outreach.schemas import CaseUpdate, ContactCreate, SegmentCreate
from socialcard.proactive import repository as proactive_repository
from socialcard.proactive import service as proactive_service
from socialcard.proactive.enums import Channel, ConsentDecision
from socialcard.proactive.errors import OfferLate
from socialcard.proactive.models import Message
from socialcard.registry.models import Person
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor
from tests.factories import make_fact
from tests.outreach.helpers import METHODOLOGY, Household, household, stored_run

ACTOR = Actor(key_id=None, name="worker", role="operator")
PURPOSE = Purpose.CASE_REVIEW


def segment(session: Session, **overrides: object) -> str:
    values: dict[str, object] = {
        "code": "level_e_no_work",
        "title": "Level E, no working adult",
        "methodology_id": METHODOLOGY,
        "levels": ["E"],
        "indicators": ["no_working_adult"],
    }
    values.update(overrides)
    return service.create_segment(
        session, payload=SegmentCreate.model_validate(values), actor=ACTOR
    ).code


@pytest.fixture
def families(session: Session) -> dict[str, Household]:
    return {
        "target": household(session, language="kk"),
        "target_ru": household(session, language="ru", region="791110000"),
        "works": household(session),
        "level_d": household(session),
        "minor_only": household(session, adult=False),
    }


def score(session: Session, families: dict[str, Household], period: str = "2026-03") -> int:
    no_work = {"no_working_adult"}
    return stored_run(
        session,
        period,
        {
            families["target"].family_id: ("E", no_work | {"single_parent"}),
            families["target_ru"].family_id: ("E", no_work),
            families["works"].family_id: ("E", set()),
            families["level_d"].family_id: ("D", no_work),
            families["minor_only"].family_id: ("E", no_work),
        },
    )


class TestCreateSegment:
    def test_stores_and_lists_it_after_the_builtin(self, session: Session) -> None:
        code = segment(session)
        listed = service.list_segments(session)
        assert [s.code for s in listed] == ["worsened", code]
        assert listed[0].builtin
        assert listed[0].worsened
        assert service.get_segment(session, code=code).indicators == ["no_working_adult"]

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"levels": ["Z"]}, "levels"),
            ({"indicators": ["child_under_3"]}, "indicators"),
            ({"methodology_id": "kz.wellbeing.nope"}, "methodology_id"),
            ({"region": "35ab"}, "region"),
            ({"methodology_id": None}, "methodology_id"),  # indicators need their methodology
        ],
    )
    def test_bad_criteria_name_the_field(
        self, session: Session, overrides: dict[str, object], field: str
    ) -> None:
        with pytest.raises(InvalidInput) as error:
            segment(session, **overrides)
        assert error.value.status_code == 422
        assert error.value.details[0]["field"] == field

    def test_a_taken_code_is_a_conflict(self, session: Session) -> None:
        segment(session)
        with pytest.raises(SegmentExists):
            segment(session)
        with pytest.raises(SegmentExists):
            segment(session, code="worsened")

    def test_unknown_segment(self, session: Session) -> None:
        with pytest.raises(SegmentNotFound):
            service.get_segment(session, code="nope")


class TestCampaign:
    def test_invites_each_family_in_its_language_and_opens_a_case(
        self, session: Session, families: dict[str, Household]
    ) -> None:
        run_id = score(session, families)
        code = segment(session)
        result = service.start_campaign(session, code=code, actor=ACTOR, purpose=PURPOSE)
        assert result.wellbeing_run_id == run_id
        assert result.families == 3  # level E and the indicator: target, target_ru, minor_only
        assert result.invited == 2
        assert result.skipped["no_adult"] == 1
        assert result.cases_opened == 2
        assert result.program_id == "outreach.level_e_no_work"
        cases = service.list_cases(session, actor=ACTOR, purpose=PURPOSE, segment_code=code)
        by_family = {c.family_id: c for c in cases.items}
        assert set(by_family) == {families["target"].family_id, families["target_ru"].family_id}
        target = by_family[families["target"].family_id]
        assert target.level == "E"
        assert target.wellbeing_run_id == run_id
        assert target.offer_status == "pending"
        assert target.outcome == CaseOutcome.OPEN
        kk = proactive_repository.offer_message(session, target.offer_id)
        assert kk is not None
        assert kk.language == "kk"
        assert "Отбасыны қолдау орталығы" in kk.body
        assert "₸" not in kk.body
        ru_case = by_family[families["target_ru"].family_id]
        ru = proactive_repository.offer_message(session, ru_case.offer_id)
        assert ru is not None
        assert ru.body.startswith("Центр поддержки семьи приглашает")
        assert ru.phone == families["target_ru"].phone

    def test_again_invites_no_one_twice(
        self, session: Session, families: dict[str, Household]
    ) -> None:
        score(session, families)
        code = segment(session)
        service.start_campaign(session, code=code, actor=ACTOR, purpose=PURPOSE)
        again = service.start_campaign(session, code=code, actor=ACTOR, purpose=PURPOSE)
        assert again.invited == 0
        assert again.cases_opened == 0
        assert again.skipped["already_invited"] == 2

    def test_the_campaign_read_is_audited_per_member(
        self, session: Session, families: dict[str, Household]
    ) -> None:
        score(session, families)
        service.start_campaign(session, code=segment(session), actor=ACTOR, purpose=PURPOSE)
        rows = [
            e
            for e in session.info.get("pending_audit", [])
            if e["action"] == "outreach.campaign.start"
        ]
        assert {r["subject_id"] for r in rows} >= {families["target"].head_id}
        assert {r["purpose"] for r in rows} == {PURPOSE.value}

    def test_a_region_prefix_narrows_the_segment(
        self, session: Session, families: dict[str, Household]
    ) -> None:
        score(session, families)
        code = segment(session, code="shymkent_e", region="79")
        result = service.start_campaign(session, code=code, actor=ACTOR, purpose=PURPOSE)
        assert result.families == 0  # the run's rows carry the region they were scored in
        code = segment(session, code="karaganda_e", region="35")
        assert (
            service.start_campaign(session, code=code, actor=ACTOR, purpose=PURPOSE).families == 3
        )

    def test_the_builtin_segment_takes_families_whose_level_worsened(
        self, session: Session, families: dict[str, Household]
    ) -> None:
        target, works = families["target"].family_id, families["works"].family_id
        level_d = families["level_d"].family_id
        stored_run(
            session, "2026-02", {target: ("C", set()), works: ("E", set()), level_d: ("E", set())}
        )
        current = score(session, families)
        result = service.start_campaign(session, code="worsened", actor=ACTOR, purpose=PURPOSE)
        assert result.wellbeing_run_id == current
        assert result.previous_run_id is not None
        assert result.families == 1  # C -> E worsened; E -> E same; E -> D improved
        cases = service.list_cases(session, actor=ACTOR, purpose=PURPOSE, segment_code="worsened")
        assert [c.family_id for c in cases.items] == [target]

    def test_no_previous_run_no_worsened_family(
        self, session: Session, families: dict[str, Household]
    ) -> None:
        score(session, families)
        result = service.start_campaign(session, code="worsened", actor=ACTOR, purpose=PURPOSE)
        assert result.families == 0
        assert result.invited == 0


class TestAnswersAndFunnel:
    def test_an_sms_yes_assigns_nothing_and_confirms_in_the_language(
        self, session: Session, families: dict[str, Household]
    ) -> None:
        score(session, families)
        code = segment(session)
        service.start_campaign(session, code=code, actor=ACTOR, purpose=PURPOSE)
        target = families["target"]
        proactive_service.receive_reply(
            session, provider_message_id="in-1", phone=target.phone, body="1"
        )
        ru = families["target_ru"]
        proactive_service.receive_reply(
            session, provider_message_id="in-2", phone=ru.phone, body="нет"
        )
        cases = {
            c.family_id: c
            for c in service.list_cases(
                session, actor=ACTOR, purpose=PURPOSE, segment_code=code
            ).items
        }
        agreed = cases[target.family_id]
        assert agreed.offer_status == "agreed"
        assert proactive_repository.assignment_for_offer(session, agreed.offer_id) is None
        confirmation = (
            session.query(Message)
            .filter(Message.idempotency_key == f"offer:{agreed.offer_id}:confirmation")
            .one_or_none()
        )
        assert confirmation is not None
        assert "әлеуметтік қызметкері" in confirmation.body
        assert cases[ru.family_id].offer_status == "refused"
        funnel = service.funnel(session, code=code)
        assert (funnel.families, funnel.invited, funnel.agreed, funnel.refused) == (2, 2, 1, 1)
        assert funnel.cases == 2
        assert funnel.outcomes["open"] == 2

    def test_silence_lapses_at_the_deadline(
        self, session: Session, families: dict[str, Household]
    ) -> None:
        score(session, families)
        code = segment(session)
        service.start_campaign(session, code=code, actor=ACTOR, purpose=PURPOSE)
        later = utcnow() + timedelta(days=15)
        done = proactive_service.process_deadlines(session, now=later)
        assert done["lapsed"] == 2
        funnel = service.funnel(session, code=code)
        assert funnel.lapsed == 2
        case = service.list_cases(session, actor=ACTOR, purpose=PURPOSE).items[0]
        with pytest.raises(OfferLate):
            proactive_service.decide(
                session,
                offer_id=case.offer_id,
                decision=ConsentDecision.AGREE,
                channel=Channel.OPERATOR,
                actor="operator",
                now=later,
            )


class TestCases:
    def test_a_worker_records_contacts_outcome_and_review(
        self, session: Session, families: dict[str, Household]
    ) -> None:
        score(session, families)
        service.start_campaign(session, code=segment(session), actor=ACTOR, purpose=PURPOSE)
        case = service.list_cases(session, actor=ACTOR, purpose=PURPOSE).items[0]
        review = today() + timedelta(days=30)
        updated = service.update_case(
            session,
            case_id=case.id,
            payload=CaseUpdate(
                assigned_worker="Асель Н.",
                contact=ContactCreate(channel=ContactChannel.PHONE, note="agreed to a visit"),
                outcome=CaseOutcome.REACHED,
                next_review_on=review,
            ),
            actor=ACTOR,
            purpose=PURPOSE,
        )
        assert updated.assigned_worker == "Асель Н."
        assert updated.outcome == CaseOutcome.REACHED
        assert updated.next_review_on == review
        assert [c.note for c in updated.contacts] == ["agreed to a visit"]
        again = service.update_case(
            session,
            case_id=case.id,
            payload=CaseUpdate(contact=ContactCreate(channel=ContactChannel.VISIT)),
            actor=ACTOR,
            purpose=PURPOSE,
        )
        assert [c.channel for c in again.contacts] == [ContactChannel.PHONE, ContactChannel.VISIT]
        assert again.assigned_worker == "Асель Н."
        read = service.get_case(session, case_id=case.id, actor=ACTOR, purpose=PURPOSE)
        assert read.contacts[0].by == "worker"

    def test_a_review_date_in_the_past_names_the_field(
        self, session: Session, families: dict[str, Household]
    ) -> None:
        score(session, families)
        service.start_campaign(session, code=segment(session), actor=ACTOR, purpose=PURPOSE)
        case = service.list_cases(session, actor=ACTOR, purpose=PURPOSE).items[0]
        with pytest.raises(InvalidInput) as error:
            service.update_case(
                session,
                case_id=case.id,
                payload=CaseUpdate(next_review_on=date(2000, 1, 1)),
                actor=ACTOR,
                purpose=PURPOSE,
            )
        assert error.value.details[0]["field"] == "next_review_on"


CONDITION = "count(member) filter (where member.age < 3) > 0 and family_income_avg_3m = 0"


class TestCondition:
    def test_level_e_with_a_child_under_3_and_no_income_in_3_months(self, session: Session) -> None:
        target = household(session)
        older_child = household(session, child_born=date(2015, 1, 1))
        earning = household(session)
        make_fact(session, session.get(Person, earning.head_id), amount_minor=150_000_00)
        held = {"no_working_adult"}
        stored_run(
            session,
            "2026-03",
            {h.family_id: ("E", held) for h in (target, older_child, earning)},
        )
        code = segment(session, code="e_baby_no_income", indicators=[], condition=CONDITION)
        assert service.get_segment(session, code=code).condition == CONDITION
        result = service.start_campaign(session, code=code, actor=ACTOR, purpose=PURPOSE)
        assert result.families == 1
        cases = service.list_cases(session, actor=ACTOR, purpose=PURPOSE, segment_code=code)
        assert [c.family_id for c in cases.items] == [target.family_id]

    @pytest.mark.parametrize(
        "text", ["count(member) >", "family_size", "no_such_variable > 1", "select 1"]
    )
    def test_a_bad_condition_names_the_field(self, session: Session, text: str) -> None:
        with pytest.raises(InvalidInput) as error:
            segment(session, code="bad_condition", condition=text)
        assert error.value.details[0]["field"] == "condition"
