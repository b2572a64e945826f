"""Pure helpers: IBAN, replies, signed links, templates, the check at sending time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from socialcard.core.clock import utcnow
from socialcard.proactive import service
from socialcard.proactive.enums import ConsentDecision, MessageKind, OfferStatus
from socialcard.proactive.errors import ExpiredLink, InvalidLink, InvalidTemplate
from socialcard.proactive.iban import IbanError, make_kz_iban, validate_kz_iban
from socialcard.proactive.links import make_token, verify_token
from socialcard.proactive.models import Message, Offer
from socialcard.proactive.replies import parse_reply
from socialcard.proactive.templates import check_template, render

BBAN = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=16, max_size=16)


class TestValidateKzIban:
    @given(BBAN)
    def test_accepts_every_iban_with_correct_check_digits(self, bban: str) -> None:
        iban = make_kz_iban(bban)
        assert validate_kz_iban(iban.lower()) == iban

    @given(BBAN, st.integers(min_value=4, max_value=19), st.sampled_from("0123456789"))
    def test_rejects_a_changed_digit(self, bban: str, index: int, digit: str) -> None:
        iban = make_kz_iban(bban)
        # ISO 7064 mod 97-10 detects every single-digit substitution among digits.
        if iban[index] == digit or not iban[index].isdigit():
            return
        with pytest.raises(IbanError):
            validate_kz_iban(iban[:index] + digit + iban[index + 1 :])

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            ("DE89370400440532013000", "must start with KZ"),
            ("KZ86125KZT50041001", "must be 20 characters"),
            ("KZ86125KZT500410010!", "only letters"),
        ],
    )
    def test_names_what_is_wrong(self, raw: str, reason: str) -> None:
        with pytest.raises(IbanError, match=reason):
            validate_kz_iban(raw)


class TestParseReply:
    @pytest.mark.parametrize("text", ["1", "иә", "ИӘ", " Да", "да ", "YES", "yes", "Yes!"])
    def test_agreements(self, text: str) -> None:
        assert parse_reply(text) is ConsentDecision.AGREE

    @pytest.mark.parametrize("text", ["2", "жоқ", "Жоқ", "НЕТ", " no ", "No."])
    def test_refusals(self, text: str) -> None:
        assert parse_reply(text) is ConsentDecision.REFUSE

    @given(st.text(max_size=20))
    def test_anything_else_decides_nothing(self, text: str) -> None:
        word = text.strip().casefold().rstrip(".!")
        if word in {"1", "2", "иә", "ия", "да", "yes", "жоқ", "жок", "нет", "no"}:
            return
        assert parse_reply(text) is None


class TestSignedLinks:
    def test_round_trip(self) -> None:
        token = make_token(42, expires_at=utcnow() + timedelta(hours=1))
        assert verify_token(token, now=utcnow()) == 42

    @given(st.text(max_size=60))
    def test_forged_tokens_are_refused(self, token: str) -> None:
        with pytest.raises(InvalidLink):
            verify_token(token, now=utcnow())

    def test_expired_token_is_refused(self) -> None:
        token = make_token(42, expires_at=utcnow() - timedelta(seconds=1))
        with pytest.raises(ExpiredLink):
            verify_token(token, now=utcnow())

    def test_changed_expiry_or_key_id_breaks_the_signature(self) -> None:
        offer, expiry, key_id, mac = make_token(42, expires_at=utcnow()).split(".")
        with pytest.raises(InvalidLink):
            verify_token(f"{offer}.{int(expiry) + 86400}.{key_id}.{mac}", now=utcnow())
        with pytest.raises(InvalidLink):
            verify_token(f"{offer}.{expiry}.other.{mac}", now=utcnow())


class TestTemplates:
    def test_unknown_placeholder_is_refused(self) -> None:
        with pytest.raises(InvalidTemplate, match="unknown placeholder"):
            check_template("Hello {name}")

    def test_unbalanced_brace_is_refused(self) -> None:
        with pytest.raises(InvalidTemplate):
            check_template("Hello {program")

    def test_render_fills_known_and_blanks_missing(self) -> None:
        assert render("{program}: {amount} {link}", {"program": "P", "amount": "1 ₸"}) == "P: 1 ₸"


class TestHoldReason:
    """The dispatcher's check at sending time, as a property over every kind and state."""

    @given(
        kind=st.sampled_from(list(MessageKind)),
        status=st.sampled_from(list(OfferStatus)),
        entity_type=st.sampled_from(["person", "family"]),
        recipient_dead=st.booleans(),
        holder_dead=st.booleans(),
        minutes_to_deadline=st.integers(min_value=-3_000, max_value=3_000),
        with_offer=st.booleans(),
    )
    def test_never_sends_to_the_dead_nor_asks_after_the_deadline(
        self,
        kind: MessageKind,
        status: OfferStatus,
        entity_type: str,
        recipient_dead: bool,
        holder_dead: bool,
        minutes_to_deadline: int,
        with_offer: bool,
    ) -> None:
        now = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
        recipient, holder = 11, 22
        deaths = {}
        if recipient_dead:
            deaths[recipient] = date(2026, 3, 9)
        if holder_dead:
            deaths[holder] = date(2026, 3, 8)
        offer = Offer(
            id=1,
            entity_type=entity_type,
            entity_id=holder if entity_type == "person" else 5,
            person_id=recipient,
            status=status.value,
            deadline_at=now + timedelta(minutes=minutes_to_deadline),
        )
        message = Message(
            id=1, kind=kind.value, person_id=recipient, offer_id=1 if with_offer else None
        )
        reason = service._hold_reason(message, offer if with_offer else None, deaths, now)
        if recipient_dead:
            assert reason is not None
            assert "the recipient died on 2026-03-09" in reason
        if with_offer and entity_type == "person" and holder_dead and kind != MessageKind.ENDED:
            assert reason is not None
        asks = kind in (MessageKind.OFFER, MessageKind.REMINDER, MessageKind.CODE)
        if with_offer and asks and (status != OfferStatus.PENDING or minutes_to_deadline <= 0):
            assert reason is not None
        if reason is None:
            # What is sent: a living recipient, and an offer (if any) in the state its kind needs.
            assert not recipient_dead
            if with_offer and kind == MessageKind.LAPSED:
                assert status == OfferStatus.LAPSED
            if with_offer and kind == MessageKind.CONFIRMATION:
                assert status == OfferStatus.AGREED
        if (
            not recipient_dead
            and not (holder_dead and entity_type == "person")
            and with_offer
            and kind == MessageKind.OFFER
            and status == OfferStatus.PENDING
            and minutes_to_deadline > 0
        ):
            assert reason is None
