"""Card service on the store (SQLite and PostgreSQL): cards from stored rules decisions,
passes, revocation through the life-event outbox, bank links, PINs and kiosk sessions."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from socialcard.card import sdjwt, service, statuslist
from socialcard.card.enums import Verdict
from socialcard.card.errors import (
    CardNotActive,
    ChipKeyWrong,
    ConsentMissing,
    InvalidHolderKey,
    KioskSessionNotFound,
    LinkExists,
    NoStatus,
    PinLocked,
    PinWrong,
)
from socialcard.card.models import BankLink, Card, CardPin, KioskSession, PassBatch, StatusListRow
from socialcard.core import clock
from socialcard.core.clock import today
from socialcard.core.config import get_settings
from socialcard.core.errors import InvalidInput
from socialcard.registry import events as registry_events
from socialcard.registry.enums import EventKind
from socialcard.rules import service as rules_service
from socialcard.security.enums import Purpose
from socialcard.security.models import AuditEvent
from socialcard.security.schemas import Actor
from tests.card.conftest import make_card, years_ago
from tests.factories import make_fact, make_family, make_person

OPERATOR = Actor(key_id=None, name="test-operator", role="operator")
KIOSK = Actor(key_id=None, name="test-kiosk", role="kiosk")
PAN = "4111111111111111"


def _issue(session: Session, card_id: int, copies: int = 2) -> tuple[list, list[str]]:  # type: ignore[type-arg]
    keys, public = service.holder_keys_generated(copies)
    batch = service.issue_passes(session, card_id=card_id, holder_keys=public)
    service.publish_lists(session)
    return keys, batch.passes


def _check(session: Session, sd_jwt: str, key, tariff: str = "transit_reduced") -> str:  # type: ignore[no-untyped-def]
    verifier = service.online_verifier()
    verifier.refresh(session)
    return verifier.check(service.present_for_demo(sd_jwt, key, tariff=tariff), tariff).result.value


class TestSync:
    def test_cards_follow_the_stored_decisions_of_a_rules_run(self, session: Session) -> None:
        period = f"{today():%Y-%m}"
        head = make_person(session, sex="F", birth_on=years_ago(40))
        kids = [make_person(session, birth_on=years_ago(3 + 2 * i)) for i in range(4)]
        make_family(session, [(head, "head"), *((k, "child") for k in kids)])
        make_fact(session, head, amount_minor=400_000_00)
        retired = make_person(session, sex="F", birth_on=years_ago(72))
        make_family(session, [(retired, "head")])
        make_fact(
            session, retired, kind="pension", detail="retirement", quantity=30, amount_minor=None
        )
        rules_service.run_rules(
            session, period=period, snapshot=rules_service.session_snapshot(session, period=period)
        )
        result = service.sync_cards(session, period=period)
        assert result.created >= 6
        cards = {c.person_id: c for c in session.scalars(select(Card))}
        assert "large_family" in json.loads(cards[kids[0].id].statuses)
        assert "large_family" in json.loads(cards[head.id].statuses)
        assert "pensioner" in json.loads(cards[retired.id].statuses)
        read = service.card_for_person(
            session, person_id=kids[0].id, actor=OPERATOR, purpose=Purpose.CITIZEN_INQUIRY
        )
        assert {"transit_reduced", "school_meal", "museum_free"} <= set(read.tariffs)
        assert "metro_free" not in read.tariffs  # a pensioner's regional tariff, not theirs

    def test_no_stored_run_names_the_period(self, session: Session) -> None:
        with pytest.raises(Exception, match="no stored rules run") as raised:
            service.sync_cards(session, period="1999-01")
        assert raised.value.details[0]["field"] == "period"  # type: ignore[attr-defined]


class TestPasses:
    def test_a_batch_has_one_copy_per_holder_key_each_with_its_own_index(
        self, session: Session
    ) -> None:
        card = make_card(session)
        keys, passes = _issue(session, card.id, copies=4)
        assert len(passes) == 4
        batch = session.scalars(select(PassBatch).where(PassBatch.card_id == card.id)).one()
        indexes = json.loads(batch.indexes)
        assert len(set(indexes)) == 4
        for sd, key in zip(passes, keys, strict=True):
            assert _check(session, sd, key) == "valid"

    def test_only_tariffs_are_in_a_pass(self, session: Session) -> None:
        card = make_card(session, statuses=("disability",))
        _keys, passes = _issue(session, card.id, copies=1)
        token = passes[0].split("~")[0]
        payload = sdjwt.split_compact(token, what="jwt").payload
        text_of_pass = json.dumps(payload) + "".join(passes[0].split("~")[1:])
        assert "disab" not in text_of_pass.lower()
        assert set(payload) == {"iss", "vct", "iat", "exp", "cnf", "status", "tariffs", "_sd_alg"}
        assert sdjwt.split_compact(token, what="jwt").header["typ"] == "dc+sd-jwt"

    def test_too_many_copies_or_a_bad_key_is_refused(self, session: Session) -> None:
        card = make_card(session)
        _, public = service.holder_keys_generated(get_settings().card.batch_size + 1)
        with pytest.raises(InvalidInput):
            service.issue_passes(session, card_id=card.id, holder_keys=public)
        with pytest.raises(InvalidHolderKey):
            service.issue_passes(session, card_id=card.id, holder_keys=[{"kty": "oct", "k": "AA"}])
        with pytest.raises(InvalidHolderKey):
            service.issue_passes(session, card_id=card.id, holder_keys=[public[0], public[0]])

    def test_a_card_without_tariffs_gets_no_pass(self, session: Session) -> None:
        card = make_card(session, statuses=())
        with pytest.raises(NoStatus):
            _issue(session, card.id)

    def test_indexes_never_repeat_across_batches(self, session: Session) -> None:
        seen: set[tuple[int, int]] = set()
        for _ in range(5):
            card = make_card(session)
            _issue(session, card.id, copies=3)
        for batch in session.scalars(select(PassBatch)):
            for idx in json.loads(batch.indexes):
                assert (batch.list_id, idx) not in seen
                seen.add((batch.list_id, idx))

    @pytest.mark.parametrize("workers", [1, 2])
    def test_bulk_issuance_signs_every_card_once(self, session: Session, workers: int) -> None:
        cards = [make_card(session) for _ in range(5)] + [make_card(session, statuses=())]
        keys, public = service.holder_keys_generated(40)
        delivered: dict[int, list[str]] = {}
        signed = service.issue_passes_bulk(
            session,
            card_ids=[c.id for c in cards],
            holder_keys=lambda card_id, n: public[(card_id % 5) * 4 : (card_id % 5) * 4 + n],
            deliver=lambda card_id, passes: delivered.__setitem__(card_id, passes),
            chunk=2,
            workers=workers,
        )
        batch = get_settings().card.batch_size
        assert signed == 5 * batch
        assert set(delivered) == {c.id for c in cards[:5]}
        service.publish_lists(session)
        by_public = {json.dumps(p, sort_keys=True): k for p, k in zip(public, keys, strict=True)}
        card_id, passes = next(iter(delivered.items()))
        holder = json.dumps(
            sdjwt.split_compact(passes[0].split("~")[0], what="jwt").payload["cnf"]["jwk"],
            sort_keys=True,
        )
        assert _check(session, passes[0], by_public[holder]) == "valid"
        assert card_id in {c.id for c in cards}

    def test_a_retired_key_still_verifies_its_passes(self, session: Session) -> None:
        card = make_card(session)
        keys, passes = _issue(session, card.id, copies=2)
        old = sdjwt.split_compact(passes[0].split("~")[0], what="jwt").header["kid"]
        new = service.rotate_keys()
        assert new != old
        kids = {k["kid"] for k in service.published_jwks()["keys"]}
        assert {old, new} <= kids
        service.publish_lists(session, force=True)
        assert _check(session, passes[0], keys[0]) == "valid"
        # Once the retired key's time is over, it is no longer published nor trusted.
        later = clock.utcnow() + timedelta(days=get_settings().card.pass_days + 2)
        assert old not in {k["kid"] for k in service.published_jwks(later)["keys"]}


class TestRevocation:
    def test_a_death_in_the_registry_revokes_the_pass(self, session: Session) -> None:
        card = make_card(session)
        keys, passes = _issue(session, card.id)
        assert _check(session, passes[0], keys[0]) == "valid"
        person = session.get(Card, card.id).person_id  # type: ignore[union-attr]
        registry_events.record_events(
            session, [registry_events.NewEvent(EventKind.DEATH, person, None, today(), {})]
        )
        done = service.process_events(session)
        service.publish_lists(session)
        assert done.batches_revoked == 1
        assert session.get(Card, card.id).state == "closed"  # type: ignore[union-attr]
        assert _check(session, passes[1], keys[1]) == "invalid"

    def test_a_status_lost_on_re_evaluation_revokes_the_pass(self, session: Session) -> None:
        # The card says "pensioner" but the registry (a person of 30) says otherwise now.
        young = make_person(session, birth_on=years_ago(30))
        make_family(session, [(young, "head")])
        card = make_card(session, statuses=("pensioner",), person=young)
        keys, passes = _issue(session, card.id)
        family_id = session.execute(
            text("SELECT family_id FROM registry_family_member WHERE person_id = :p"),
            {"p": card.person_id},
        ).scalar_one()
        registry_events.record_events(
            session,
            [registry_events.NewEvent(EventKind.FAMILY_CHANGED, None, family_id, today(), {})],
        )
        done = service.process_events(session)
        service.publish_lists(session)
        assert done.batches_revoked == 1
        assert "pensioner" not in json.loads(session.get(Card, card.id).statuses)  # type: ignore[union-attr]
        assert _check(session, passes[0], keys[0]) == "invalid"

    def test_the_watch_step_resyncs_after_a_new_rules_run(self, session: Session) -> None:
        young = make_person(session, birth_on=years_ago(30))
        make_family(session, [(young, "head")])
        make_fact(session, young, amount_minor=900_000_00)  # no status in any run
        card = make_card(session, statuses=("pensioner",), person=young)
        keys, passes = _issue(session, card.id)
        period = f"{today():%Y-%m}"
        remembered: dict[str, int] = {}
        rules_service.run_rules(
            session, period=period, snapshot=rules_service.session_snapshot(session, period=period)
        )
        first = service.watch_step(session, synced_runs=remembered)
        assert first["batches_revoked"] == 0  # the run found at start is only remembered
        rules_service.run_rules(
            session, period=period, snapshot=rules_service.session_snapshot(session, period=period)
        )
        second = service.watch_step(session, synced_runs=remembered)
        assert second["batches_revoked"] == 1
        assert _check(session, passes[0], keys[0]) == "invalid"

    def test_suspension_and_resumption(self, session: Session) -> None:
        card = make_card(session)
        keys, passes = _issue(session, card.id, copies=3)
        service.suspend_card(session, card_id=card.id, actor=OPERATOR, reason="lost_phone")
        service.publish_lists(session)
        verifier = service.online_verifier()
        verifier.refresh(session)
        outcome = verifier.check(
            service.present_for_demo(passes[0], keys[0], tariff="transit_reduced"),
            "transit_reduced",
        )
        assert (outcome.result, outcome.reason) == (Verdict.INVALID, "suspended")
        with pytest.raises(CardNotActive):
            _issue(session, card.id)
        service.resume_card(session, card_id=card.id, actor=OPERATOR)
        service.publish_lists(session)
        assert _check(session, passes[1], keys[1]) == "valid"

    def test_the_published_list_carries_the_entries(self, session: Session) -> None:
        card = make_card(session)
        _issue(session, card.id, copies=2)
        service.revoke_card(session, card_id=card.id, actor=OPERATOR, reason="operator")
        service.publish_lists(session)
        row = session.scalars(select(StatusListRow)).first()
        assert row is not None
        assert row.token is not None
        verifier = service.online_verifier()
        verifier.refresh(session)
        parsed = verifier.verifier.lists[service.list_uri(row.id)]
        assert parsed.status_list.counts()[statuslist.INVALID] == 2
        assert parsed.ttl == get_settings().card.list_ttl_seconds
        assert parsed.status_list.size >= statuslist.MIN_ENTRIES

    def test_a_stale_list_answers_cannot_verify(self, session: Session) -> None:
        card = make_card(session)
        keys, passes = _issue(session, card.id)
        verifier = service.online_verifier()
        verifier.refresh(session)
        later = clock.utcnow() + timedelta(seconds=get_settings().card.online_max_age_seconds + 5)
        with clock.travel_to(later, frozen=True):
            presentation = service.present_for_demo(passes[0], keys[0], tariff="transit_reduced")
            assert verifier.check(presentation, "transit_reduced").result == Verdict.CANNOT_VERIFY

    def test_offline_verification_from_a_cache(self, session: Session, tmp_path) -> None:  # type: ignore[no-untyped-def]
        card = make_card(session)
        keys, passes = _issue(session, card.id)
        service.export_cache(session, tmp_path)
        first = service.present_for_demo(passes[0], keys[0], tariff="transit_reduced")
        assert service.offline_verify(tmp_path, first, "transit_reduced").result == Verdict.VALID
        again = service.offline_verify(tmp_path, first, "transit_reduced")
        assert (again.result, again.reason) == (Verdict.INVALID, "replayed")
        (
            tmp_path / "lists" / next(iter(p.name for p in (tmp_path / "lists").iterdir()))
        ).write_text("garbage")
        second = service.present_for_demo(passes[1], keys[1], tariff="transit_reduced")
        assert service.offline_verify(tmp_path, second, "transit_reduced").result == (
            Verdict.CANNOT_VERIFY
        )


class TestBankCards:
    def test_link_check_and_unlink(self, session: Session) -> None:
        card = make_card(session)
        version = get_settings().card.consent_notice_version
        link = service.link_bank_card(
            session,
            card_id=card.id,
            par=None,
            pan=PAN,
            notice_version=version,
            channel="app",
            actor=OPERATOR,
        )
        assert link.consent_channel == "app"
        assert link.consent_notice_version == version
        assert service.check_bank_card(session, par=None, pan=PAN, tariff="transit_reduced")
        assert not service.check_bank_card(session, par=None, pan=PAN, tariff="school_meal")
        assert not service.check_bank_card(
            session, par=None, pan="5555555555554444", tariff="transit_reduced"
        )
        with pytest.raises(LinkExists):
            service.link_bank_card(
                session,
                card_id=card.id,
                par=None,
                pan=PAN,
                notice_version=version,
                channel="app",
                actor=OPERATOR,
            )
        service.unlink_bank_card(session, link_id=link.id, actor=OPERATOR)
        assert not service.check_bank_card(session, par=None, pan=PAN, tariff="transit_reduced")

    def test_a_par_links_too(self, session: Session) -> None:
        card = make_card(session)
        par = "V0010013819299974321234567890"[:29]
        service.link_bank_card(
            session,
            card_id=card.id,
            par=par,
            pan=None,
            notice_version=get_settings().card.consent_notice_version,
            channel="office",
            actor=OPERATOR,
        )
        assert service.check_bank_card(session, par=par, pan=None, tariff="transit_reduced")

    def test_linking_needs_consent_and_a_valid_number(self, session: Session) -> None:
        card = make_card(session)
        with pytest.raises(ConsentMissing):
            service.link_bank_card(
                session,
                card_id=card.id,
                par=None,
                pan=PAN,
                notice_version=None,
                channel=None,
                actor=OPERATOR,
            )
        with pytest.raises(ConsentMissing):
            service.link_bank_card(
                session,
                card_id=card.id,
                par=None,
                pan=PAN,
                notice_version="1999-01",
                channel="app",
                actor=OPERATOR,
            )
        with pytest.raises(InvalidInput) as raised:
            service.link_bank_card(
                session,
                card_id=card.id,
                par=None,
                pan="4111111111111112",
                notice_version=get_settings().card.consent_notice_version,
                channel="app",
                actor=OPERATOR,
            )
        assert "4111111111111112" not in str(raised.value) + json.dumps(raised.value.details)


class TestPin:
    def test_three_wrong_pins_block_until_an_operator_resets(self, session: Session) -> None:
        card = make_card(session)
        service.set_pin(session, card_id=card.id, pin="2468", actor=OPERATOR)
        service.verify_pin(session, card_id=card.id, pin="2468", commit=session.flush)
        with pytest.raises(PinWrong, match="2 tries"):
            service.verify_pin(session, card_id=card.id, pin="1111", commit=session.flush)
        with pytest.raises(PinWrong, match="1 tries"):
            service.verify_pin(session, card_id=card.id, pin="1111", commit=session.flush)
        with pytest.raises(PinLocked):
            service.verify_pin(session, card_id=card.id, pin="1111", commit=session.flush)
        with pytest.raises(PinLocked):  # even the right PIN, once blocked
            service.verify_pin(session, card_id=card.id, pin="2468", commit=session.flush)
        service.set_pin(session, card_id=card.id, pin="1357", actor=OPERATOR)
        service.verify_pin(session, card_id=card.id, pin="1357", commit=session.flush)
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.subject_id == card.person_id)
        ).all()
        service_actions = set(actions) | {
            r["action"]
            for r in session.info.get("pending_audit", [])
            if r["subject_id"] == card.person_id
        }
        assert "card.pin_set" in service_actions

    def test_a_right_pin_restores_the_tries(self, session: Session) -> None:
        card = make_card(session)
        service.set_pin(session, card_id=card.id, pin="2468", actor=OPERATOR)
        with pytest.raises(PinWrong):
            service.verify_pin(session, card_id=card.id, pin="0000", commit=session.flush)
        service.verify_pin(session, card_id=card.id, pin="2468", commit=session.flush)
        assert service.pin_tries_left(session, card_id=card.id) == 3


class TestKiosk:
    def _chip(self, session: Session) -> tuple[Card, str, str]:
        card = make_card(session)
        chip = service.issue_chip(session, card_id=card.id, actor=OPERATOR)
        service.set_pin(session, card_id=card.id, pin="2468", actor=OPERATOR)
        return card, chip.chip_id, chip.chip_key

    def test_a_session_shows_the_view_and_leaves_only_the_audit(self, session: Session) -> None:
        card, chip_id, chip_key = self._chip(session)
        started = service.start_kiosk_session(
            session,
            chip_id=chip_id,
            chip_key=chip_key,
            pin="2468",
            kiosk=KIOSK,
            address="10.0.0.1",
            commit=session.flush,
        )
        view = service.kiosk_view(session, token=started.token, kiosk=KIOSK, lang="ru")
        assert [s.code for s in view.statuses] == ["pensioner"]
        assert view.statuses[0].title == "Пенсионер"
        assert "transit_reduced" in {t.code for t in view.tariffs}
        assert view.wallet["person_id"] == card.person_id
        service.end_kiosk_session(session, token=started.token, kiosk=KIOSK)
        assert session.scalars(select(KioskSession)).first() is None
        with pytest.raises(KioskSessionNotFound):
            service.kiosk_view(session, token=started.token, kiosk=KIOSK)
        pending = [r["action"] for r in session.info.get("pending_audit", [])]
        assert {"card.kiosk_start", "card.kiosk_view", "card.kiosk_end"} <= set(pending)

    def test_a_session_times_out_after_two_minutes_idle(self, session: Session) -> None:
        _card, chip_id, chip_key = self._chip(session)
        start = clock.utcnow()
        with clock.travel_to(start, frozen=True):
            started = service.start_kiosk_session(
                session,
                chip_id=chip_id,
                chip_key=chip_key,
                pin="2468",
                kiosk=KIOSK,
                address="a",
                commit=session.flush,
            )
        with clock.travel_to(start + timedelta(seconds=119), frozen=True):
            service.kiosk_view(session, token=started.token, kiosk=KIOSK)
        with (
            clock.travel_to(start + timedelta(seconds=119 + 121), frozen=True),
            pytest.raises(KioskSessionNotFound),
        ):
            service.kiosk_view(session, token=started.token, kiosk=KIOSK)
        assert session.scalars(select(KioskSession)).first() is None

    def test_the_sweep_deletes_abandoned_sessions(self, session: Session) -> None:
        _card, chip_id, chip_key = self._chip(session)
        service.start_kiosk_session(
            session,
            chip_id=chip_id,
            chip_key=chip_key,
            pin="2468",
            kiosk=KIOSK,
            address="a",
            commit=session.flush,
        )
        assert (
            service.sweep_kiosk_sessions(session, now=clock.utcnow() + timedelta(seconds=121)) == 1
        )

    def test_a_wrong_chip_key_is_refused_before_the_pin(self, session: Session) -> None:
        card, chip_id, _key = self._chip(session)
        with pytest.raises(ChipKeyWrong):
            service.start_kiosk_session(
                session,
                chip_id=chip_id,
                chip_key="wrong",
                pin="2468",
                kiosk=KIOSK,
                address="a",
                commit=session.flush,
            )
        assert service.pin_tries_left(session, card_id=card.id) == 3


class TestNothingSecretIsKept:
    def test_no_pin_pan_pepper_or_private_key_in_the_store_or_logs(
        self, session: Session, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        card = make_card(session)
        service.set_pin(session, card_id=card.id, pin="864213", actor=OPERATOR)
        with pytest.raises(PinWrong) as wrong:
            service.verify_pin(session, card_id=card.id, pin="975310", commit=session.flush)
        service.link_bank_card(
            session,
            card_id=card.id,
            par=None,
            pan=PAN,
            notice_version=get_settings().card.consent_notice_version,
            channel="app",
            actor=OPERATOR,
        )
        _issue(session, card.id)
        session.flush()
        from socialcard.card import tokens

        secrets_ = [
            "864213",
            "975310",
            PAN,
            tokens._secret("pin").hex(),
            tokens._secret("pan").hex(),
        ]
        _kid, issuer_key = service.issuer_keys().signing_key(now=clock.utcnow())
        secrets_.append(str(issuer_key.as_dict(private=True)["d"]))
        dumped = []
        for model in (Card, CardPin, BankLink, PassBatch, StatusListRow, KioskSession, AuditEvent):
            for row in session.scalars(select(model)):
                dumped.append(
                    repr({c.key: getattr(row, c.key) for c in model.__mapper__.column_attrs})
                )
        haystack = "\n".join(dumped) + caplog.text + str(wrong.value)
        for secret in secrets_:
            assert secret not in haystack
        key_files = list(service.issuer_keys().directory.glob("*.pem"))  # type: ignore[attr-defined]
        assert key_files
        assert all(f.stat().st_mode & 0o077 == 0 for f in key_files)
        assert all(b"ENCRYPTED" in f.read_bytes() for f in key_files)
