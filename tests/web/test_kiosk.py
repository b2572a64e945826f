"""Kiosk pages (card + PIN, the citizen's view, the idle end), the citizen's card with its QR
pass, and the audit viewer's filters, over HTTP on both stores."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from socialcard.card import service as card_service
from socialcard.card.enums import Verdict
from socialcard.card.models import Card, CardPin, KioskSession, PassBatch
from socialcard.core import clock, ratelimit
from socialcard.core.config import get_settings
from socialcard.security import service as security_service
from socialcard.security.accounts import service as accounts
from socialcard.security.enums import Purpose
from socialcard.security.models import AuditEvent
from socialcard.security.schemas import Actor
from socialcard.web.deps import SESSION_COOKIE
from socialcard.web.kiosk import DEVICE_COOKIE
from socialcard.web.kiosk import SESSION_COOKIE as KIOSK_COOKIE
from tests.card.conftest import make_card
from tests.web.test_pages import _csrf, sign_in

OPERATOR = Actor(key_id=None, name="test-operator", role="operator")
PIN = "2468"


@pytest.fixture(autouse=True)
def _fresh_limits() -> Iterator[None]:
    card_service.reset_online_verifier()
    ratelimit.reset_limiters()
    yield
    card_service.reset_online_verifier()
    ratelimit.reset_limiters()


def _chip(session: Session, statuses: tuple[str, ...] = ("pensioner",)) -> tuple[Card, str, str]:
    card = make_card(session, statuses=statuses)
    chip = card_service.issue_chip(session, card_id=card.id, actor=OPERATOR)
    card_service.set_pin(session, card_id=card.id, pin=PIN, actor=OPERATOR)
    return card, chip.chip_id, chip.chip_key


def _set_up(web: TestClient, session: Session) -> str:
    """This browser becomes a kiosk; returns the start page."""
    key = security_service.create_api_key(session, name="kiosk-1", role="kiosk").key
    page = web.get("/kiosk?lang=en")
    assert 'action="/kiosk/setup"' in page.text
    done = web.post("/kiosk/setup", data={"csrf": _csrf(page.text), "kiosk_key": key})
    assert done.status_code == 303
    assert web.cookies.get(DEVICE_COOKIE)
    page = web.get("/kiosk?lang=en")
    assert 'action="/kiosk/start"' in page.text
    return page.text


def _start(web: TestClient, page: str, chip_id: str, chip_key: str, pin: str) -> object:
    return web.post(
        "/kiosk/start",
        data={"csrf": _csrf(page), "chip_id": chip_id, "chip_key": chip_key, "pin": pin},
    )


class TestKioskSetUp:
    def test_only_a_kiosk_key_sets_a_browser_up(self, web: TestClient, session: Session) -> None:
        other = security_service.create_api_key(session, name="op", role="operator").key
        page = web.get("/kiosk?lang=en")
        refused = web.post("/kiosk/setup", data={"csrf": _csrf(page.text), "kiosk_key": other})
        assert refused.status_code == 401
        assert "not a kiosk" in refused.text
        assert not web.cookies.get(DEVICE_COOKIE)

    def test_a_start_without_a_kiosk_is_refused(self, web: TestClient, session: Session) -> None:
        _card, chip_id, chip_key = _chip(session)
        page = web.get("/kiosk?lang=en")
        answer = _start(web, page.text, chip_id, chip_key, PIN)
        assert answer.status_code == 403  # type: ignore[attr-defined]
        assert session.scalar(select(func.count()).select_from(KioskSession)) == 0


class TestKioskSession:
    def test_card_and_pin_show_the_view_and_the_end_leaves_only_the_audit(
        self, web: TestClient, session: Session
    ) -> None:
        card, chip_id, chip_key = _chip(session)
        page = _set_up(web, session)
        opened = _start(web, page, chip_id, chip_key, PIN)
        assert opened.status_code == 303, opened.text  # type: ignore[attr-defined]
        assert opened.headers["location"] == "/kiosk/view"  # type: ignore[attr-defined]
        assert web.cookies.get(KIOSK_COOKIE)
        view = web.get("/kiosk/view?lang=en")
        assert view.status_code == 200
        assert "Pensioner" in view.text
        assert 'data-idle-seconds="120"' in view.text
        assert view.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in view.headers["content-security-policy"]
        ru = web.get("/kiosk/view?lang=ru")
        assert "Пенсионер" in ru.text
        end = web.post("/kiosk/end", data={"csrf": _csrf(view.text), "reason": "logout"})
        assert end.status_code == 303
        assert end.headers["location"] == "/kiosk?ended=logout"
        assert not web.cookies.get(KIOSK_COOKIE)
        assert session.scalar(select(func.count()).select_from(KioskSession)) == 0
        after = web.get("/kiosk/view?lang=en")
        assert after.status_code == 303
        assert after.headers["location"] == "/kiosk?ended=timeout"
        assert "Pensioner" not in after.text
        actions = set(
            session.scalars(
                select(AuditEvent.action).where(AuditEvent.subject_id == card.person_id)
            )
        )
        assert {"card.kiosk_start", "card.kiosk_view", "card.kiosk_end"} <= actions

    def test_wrong_pins_count_down_then_block_in_the_users_language(
        self, web: TestClient, session: Session
    ) -> None:
        card, chip_id, chip_key = _chip(session)
        page = _set_up(web, session)
        first = _start(web, page, chip_id, chip_key, "0000")
        assert first.status_code == 401  # type: ignore[attr-defined]
        assert "Wrong PIN. Tries left: 2." in first.text  # type: ignore[attr-defined]
        page = web.get("/kiosk?lang=ru").text
        second = _start(web, page, chip_id, chip_key, "1111")
        assert "Неверный PIN-код. Осталось попыток: 1." in second.text  # type: ignore[attr-defined]
        page = web.get("/kiosk?lang=kk").text
        third = _start(web, page, chip_id, chip_key, "2222")
        assert third.status_code == 403  # type: ignore[attr-defined]
        assert "PIN-код бұғатталды" in third.text  # type: ignore[attr-defined]
        # Blocked: even the right PIN is refused until an operator resets it.
        page = web.get("/kiosk?lang=en").text
        right = _start(web, page, chip_id, chip_key, PIN)
        assert right.status_code == 403  # type: ignore[attr-defined]
        assert "Only an operator can reset it" in right.text  # type: ignore[attr-defined]
        pin = session.scalars(select(CardPin).where(CardPin.card_id == card.id)).one()
        assert pin.tries_left == 0
        assert not web.cookies.get(KIOSK_COOKIE)

    def test_past_the_cards_rate_the_page_says_to_wait(
        self, web: TestClient, session: Session
    ) -> None:
        _card, chip_id, chip_key = _chip(session)
        page = _set_up(web, session)
        answers = [
            _start(web, page, chip_id, chip_key, "0000")
            for _ in range(get_settings().card.rate_per_card + 1)
        ]
        assert answers[-1].status_code == 429  # type: ignore[attr-defined]
        assert answers[-1].headers["retry-after"]  # type: ignore[attr-defined]
        assert "Too many attempts" in answers[-1].text  # type: ignore[attr-defined]
        page = web.get("/kiosk?lang=ru").text
        again = _start(web, page, chip_id, chip_key, PIN)
        assert again.status_code == 429  # type: ignore[attr-defined]
        assert "Слишком много попыток" in again.text  # type: ignore[attr-defined]

    def test_an_unknown_card_and_a_missing_pin_are_named(
        self, web: TestClient, session: Session
    ) -> None:
        _card, chip_id, _chip_key = _chip(session)
        page = _set_up(web, session)
        unknown = _start(web, page, chip_id, "not-the-key", PIN)
        assert unknown.status_code == 401  # type: ignore[attr-defined]
        assert "The card was not recognised" in unknown.text  # type: ignore[attr-defined]
        missing = _start(web, page, chip_id, "k", "")
        assert missing.status_code == 422  # type: ignore[attr-defined]
        assert 'id="pin" name="pin"' in missing.text  # type: ignore[attr-defined]
        assert re.search(r'id="pin"[^>]*aria-invalid="true"', missing.text)  # type: ignore[attr-defined]

    def test_the_session_ends_after_the_idle_time_and_a_touch_extends_it(
        self, web: TestClient, session: Session
    ) -> None:
        _card, chip_id, chip_key = _chip(session)
        page = _set_up(web, session)
        idle = get_settings().card.kiosk_idle_seconds
        start = clock.utcnow()
        with clock.travel_to(start, frozen=True):
            _start(web, page, chip_id, chip_key, PIN)
            view = web.get("/kiosk/view?lang=en")
        csrf = _csrf(view.text)
        with clock.travel_to(start + timedelta(seconds=idle - 1), frozen=True):
            assert web.post("/kiosk/touch", data={"csrf": csrf}).status_code == 204
        with clock.travel_to(start + timedelta(seconds=2 * idle - 2), frozen=True):
            assert web.get("/kiosk/view?lang=en").status_code == 200
        with clock.travel_to(start + timedelta(seconds=3 * idle), frozen=True):
            assert web.post("/kiosk/touch", data={"csrf": csrf}).status_code == 404
            ended = web.get("/kiosk/view?lang=en")
        assert ended.status_code == 303
        assert ended.headers["location"] == "/kiosk?ended=timeout"
        assert session.scalar(select(func.count()).select_from(KioskSession)) == 0
        notice = web.get("/kiosk?ended=timeout&lang=en")
        assert "Nothing of yours is kept" in notice.text

    def test_the_start_page_ends_a_session_left_open(
        self, web: TestClient, session: Session
    ) -> None:
        _card, chip_id, chip_key = _chip(session)
        page = _set_up(web, session)
        _start(web, page, chip_id, chip_key, PIN)
        assert session.scalar(select(func.count()).select_from(KioskSession)) == 1
        web.get("/kiosk?lang=en")
        assert session.scalar(select(func.count()).select_from(KioskSession)) == 0
        assert not web.cookies.get(KIOSK_COOKIE)

    def test_a_form_without_its_token_is_refused(self, web: TestClient, session: Session) -> None:
        _card, chip_id, chip_key = _chip(session)
        _set_up(web, session)
        answer = web.post("/kiosk/start", data={"chip_id": chip_id, "chip_key": chip_key})
        assert answer.status_code == 403
        assert session.scalar(select(func.count()).select_from(KioskSession)) == 0


def _citizen(web: TestClient, session: Session, person_id: int, national_id: str) -> None:
    codes: list[str] = []
    accounts.request_code(
        session, national_id=national_id, send=lambda _p, _ph, _l, code: codes.append(code)
    )
    token, _ = accounts.sign_in_citizen(session, national_id=national_id, code=codes[0])
    web.cookies.set(SESSION_COOKIE, token)


class TestCitizenCard:
    def test_the_card_page_shows_statuses_and_a_verifiable_qr(
        self, web: TestClient, session: Session
    ) -> None:
        card = make_card(session, statuses=("pensioner",))
        person = card_service.card_view_unaudited(session, card_id=card.id)
        from socialcard.registry.models import Person

        national_id = session.get(Person, person.person_id).national_id  # type: ignore[union-attr]
        _citizen(web, session, person.person_id, national_id)
        page = web.get("/citizen/card?lang=en")
        assert page.status_code == 200
        assert "Pensioner" in page.text
        assert '<option value="transit_reduced"' in page.text
        before = session.scalar(select(func.count()).select_from(PassBatch))
        shown = web.post(
            "/citizen/card/qr?lang=en",
            data={"csrf": _csrf(page.text), "tariff": "transit_reduced"},
        )
        assert shown.status_code == 200
        assert "<svg" in shown.text
        assert 'role="img"' in shown.text
        assert "valid for 60 seconds" in shown.text
        assert session.scalar(select(func.count()).select_from(PassBatch)) == (before or 0) + 1
        reads = session.scalars(
            select(AuditEvent.purpose).where(
                AuditEvent.subject_id == person.person_id, AuditEvent.action == "card.read"
            )
        ).all()
        assert set(reads) == {Purpose.SELF_SERVICE.value}

    def test_the_presented_pass_verifies_once_for_its_tariff(self, session: Session) -> None:
        card = make_card(session, statuses=("pensioner",))
        actor = Actor(key_id=None, name=f"citizen:{card.person_id}", role="citizen")
        shown = card_service.present_pass(
            session, person_id=card.person_id, tariff="transit_reduced", actor=actor, lang="kk"
        )
        assert shown.qr_version <= 25
        assert shown.tariff.code == "transit_reduced"
        card_service.online_verifier().refresh(session)
        first = card_service.online_verifier().check(shown.presentation, "transit_reduced")
        assert first.result == Verdict.VALID
        again = card_service.online_verifier().check(shown.presentation, "transit_reduced")
        assert again.result != Verdict.VALID  # single use: a replay is refused
        assert shown.pass_expires_at > datetime.now(UTC)

    def test_a_tariff_not_on_the_card_is_refused_by_name(
        self, web: TestClient, session: Session
    ) -> None:
        card = make_card(session, statuses=("pensioner",))
        from socialcard.registry.models import Person

        national_id = session.get(Person, card.person_id).national_id  # type: ignore[union-attr]
        _citizen(web, session, card.person_id, national_id)
        page = web.get("/citizen/card?lang=en")
        answer = web.post(
            "/citizen/card/qr?lang=en", data={"csrf": _csrf(page.text), "tariff": "school_meal"}
        )
        assert answer.status_code == 422
        assert "<svg" not in answer.text

    def test_a_person_without_a_card_is_told_so(self, web: TestClient, session: Session) -> None:
        from tests.factories import make_family, make_person

        person = make_person(session)
        make_family(session, [(person, "head")])
        _citizen(web, session, person.id, person.national_id)
        page = web.get("/citizen/card?lang=en")
        assert page.status_code == 200
        assert "You have no card yet" in page.text


class TestAuditFilters:
    def _rows(self, session: Session) -> None:
        for name, purpose, at in (
            ("staff:op", Purpose.CASE_REVIEW, datetime(2026, 3, 10, 8, tzinfo=UTC)),
            ("staff:op", Purpose.DATA_QUALITY, datetime(2026, 3, 12, 8, tzinfo=UTC)),
            ("citizen:7", Purpose.SELF_SERVICE, datetime(2026, 3, 12, 20, tzinfo=UTC)),
        ):
            with clock.travel_to(at, frozen=True):
                security_service.record_access(
                    session,
                    actor=Actor(key_id=None, name=name, role="operator"),
                    action="registry.person_read",
                    subject_type="person",
                    subject_ids=[7],
                    purpose=purpose,
                )
                security_service.flush_audit(session)

    def test_actor_purpose_and_days_filter_the_log(self, web: TestClient, session: Session) -> None:
        self._rows(session)
        sign_in(web, session, "auditor")

        def shown(query: str) -> int:
            page = web.get(f"/audit?lang=en&subject_id=7&{query}")
            assert page.status_code == 200, page.text
            return page.text.count('<td translate="no">registry.person_read</td>')

        assert shown("") == 3
        assert shown("actor=staff%3A") == 2
        assert shown("actor=citizen%3A7") == 1
        assert shown("purpose=data_quality") == 1
        assert shown("action=registry.") == 3
        assert shown("action=card.") == 0
        # Days are Almaty's: 20:00 UTC on the 12th is already the 13th there.
        assert shown("date_from=2026-03-12&date_to=2026-03-12") == 1
        assert shown("date_from=2026-03-11") == 2
        assert shown("date_to=2026-03-10") == 1

    def test_bad_filters_name_their_field(self, web: TestClient, session: Session) -> None:
        sign_in(web, session, "auditor")
        bad_day = web.get("/audit?lang=en&date_from=12.03.2026")
        assert bad_day.status_code == 422
        assert "text/html" in bad_day.headers["content-type"]
        assert web.get("/audit?lang=en&purpose=curiosity").status_code == 422
        backwards = web.get("/audit?lang=en&date_from=2026-03-12&date_to=2026-03-11")
        assert backwards.status_code == 422
