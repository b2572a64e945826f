"""Campaign runs: offers from eligibility minus exclusions, messages, idempotent re-runs."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from socialcard.core.clock import utcnow
from socialcard.core.db import session_scope
from socialcard.proactive import jobs, service
from socialcard.proactive.enums import Channel, ConsentDecision, OfferStatus
from socialcard.proactive.errors import InvalidPeriod, UnknownProgram
from socialcard.proactive.models import Message, Offer
from socialcard.registry.models import Person
from tests.proactive.conftest import LARGE, LARGE_AMOUNT_4, PERIOD, add_large_family


def _offers() -> list[Offer]:
    with session_scope() as session:
        return list(session.scalars(select(Offer).order_by(Offer.id)))


class TestRunCampaign:
    def test_offers_each_eligible_family_once_with_decision_inputs(
        self, proactive_env: Path
    ) -> None:
        large = add_large_family(4, language="ru")
        add_large_family(3)  # three children: not a large family
        result = jobs.run_campaign(program_id=LARGE, period=PERIOD)
        offers = _offers()
        assert [o.entity_id for o in offers] == [large.family_id]
        offer = offers[0]
        assert offer.person_id == large.head_id
        assert offer.amount_minor == LARGE_AMOUNT_4
        assert offer.program_version == "2024-01-01"
        assert "art. 91" in offer.legal_basis
        assert json.loads(offer.explanation)["conditions"]["four_or_more_children"] is True
        assert result.eligible == 1
        assert result.offered == 1

    def test_rerun_makes_no_duplicate_offer_or_message(self, proactive_env: Path) -> None:
        add_large_family(4)
        add_large_family(5)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        again = jobs.run_campaign(program_id=LARGE, period=PERIOD)
        with session_scope() as session:
            assert session.scalar(select(func.count()).select_from(Offer)) == 2
            assert session.scalar(select(func.count()).select_from(Message)) == 2
        assert again.offered == 2

    def test_message_is_in_the_recipients_language(self, proactive_env: Path) -> None:
        add_large_family(4, language="kk")
        add_large_family(4, language="en")
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        with session_scope() as session:
            bodies = {m.language: m.body for m in session.scalars(select(Message))}
        assert "Көпбалалы" in bodies["kk"]
        assert "Large family allowance" in bodies["en"]
        assert "69 330 ₸" in bodies["en"]
        # Stored (and shown to operators) with a marker; the live link only in what is sent.
        assert "/consent/" not in bodies["en"]
        assert bodies["en"].endswith(service.LINK_MARK)

    def test_skips_a_family_that_already_receives(self, proactive_env: Path) -> None:
        add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period="2026-02")
        offer = _offers()[0]
        with session_scope() as session:
            service.decide(
                session,
                offer_id=offer.id,
                decision=ConsentDecision.AGREE,
                channel=Channel.SMS,
                actor="test",
            )
        result = jobs.run_campaign(program_id=LARGE, period=PERIOD)
        assert result.offered == 0
        assert result.skipped_receiving == 1

    def test_skips_a_family_with_a_pending_offer(self, proactive_env: Path) -> None:
        add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period="2026-02")
        result = jobs.run_campaign(program_id=LARGE, period=PERIOD)
        assert (result.offered, result.skipped_pending) == (0, 1)

    def test_skips_a_refusal_within_the_cooloff_but_not_after(self, proactive_env: Path) -> None:
        add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period="2026-01")
        offer = _offers()[0]
        with session_scope() as session:
            service.decide(
                session,
                offer_id=offer.id,
                decision=ConsentDecision.REFUSE,
                channel=Channel.SMS,
                actor="test",
            )
        assert jobs.run_campaign(program_id=LARGE, period="2026-02").skipped_refused == 1
        with session_scope() as session:
            session.get(Offer, offer.id).decided_at = utcnow() - timedelta(days=91)  # type: ignore[union-attr]
        assert jobs.run_campaign(program_id=LARGE, period=PERIOD).offered == 1

    def test_skips_a_deceased_recipient(self, proactive_env: Path) -> None:
        large = add_large_family(4)
        with session_scope() as session:
            session.get(Person, large.head_id).death_on = date(2026, 1, 5)  # type: ignore[union-attr]
        result = jobs.run_campaign(program_id=LARGE, period=PERIOD)
        # The family is still large: the offer goes to nobody (no living adult), never the dead.
        assert all(o.person_id != large.head_id for o in _offers())
        assert result.offered == 0

    def test_unknown_program_and_bad_period_are_refused(self, proactive_env: Path) -> None:
        with pytest.raises(UnknownProgram):
            jobs.run_campaign(program_id="kz.nothing", period=PERIOD)
        with pytest.raises(InvalidPeriod):
            jobs.run_campaign(program_id=LARGE, period="2026-13")


class TestDispatch:
    def test_file_gateway_writes_each_message_once(self, proactive_env: Path) -> None:
        add_large_family(4)
        add_large_family(6)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        first = jobs.dispatch()
        second = jobs.dispatch()
        lines = proactive_env.read_text(encoding="utf-8").splitlines()
        assert first == {"sent": 2, "failed": 0}
        assert second == {"sent": 0, "failed": 0}
        assert len(lines) == 2
        assert len({json.loads(line)["key"] for line in lines}) == 2
        statuses = {o.status for o in _offers()}
        assert statuses == {OfferStatus.PENDING}
