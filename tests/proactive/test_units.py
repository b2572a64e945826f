"""Pure helpers: IBAN, replies, signed links, templates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from socialcard.core.clock import utcnow
from socialcard.proactive.enums import ConsentDecision
from socialcard.proactive.errors import ExpiredLink, InvalidLink, InvalidTemplate
from socialcard.proactive.iban import IbanError, make_kz_iban, validate_kz_iban
from socialcard.proactive.links import make_token, verify_token
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
