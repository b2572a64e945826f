"""Row validation shared by importers and the generator."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from socialcard.registry.validation import (
    RowError,
    check_child_younger,
    normalize_phone,
    validate_fact,
    validate_member,
    validate_person,
)

TODAY = date(2026, 11, 23)


def person_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "national_id": "900215300027",
        "last_name": "Ахметов",
        "first_name": "Ерлан",
        "patronymic": "Бекұлы",
        "birth_on": "1990-02-15",
        "sex": "M",
        "phone": "8 701 123 45 67",
        "language": "ru",
        "region_kato": "751110000",
        "address": "Алматы",
    }
    row.update(overrides)
    return row


class TestValidatePerson:
    def test_accepts_and_normalises_a_good_row(self) -> None:
        person = validate_person(person_row(), today=TODAY)
        assert person.national_id == "900215300027"
        assert person.birth_on == date(1990, 2, 15)
        assert person.phone == "+77011234567"
        assert person.patronymic == "Бекұлы"

    @pytest.mark.parametrize(
        ("overrides", "field", "reason"),
        [
            ({"national_id": "900215300028"}, "national_id", "check digit"),
            ({"region_kato": "990000000"}, "region_kato", "unknown region"),
            ({"region_kato": "75"}, "region_kato", "unknown region"),
            ({"birth_on": "2027-02-15"}, "birth_on", "future"),
            ({"birth_on": "15.02.1990"}, "birth_on", "YYYY-MM-DD"),
            ({"birth_on": "1990-02-16"}, "birth_on", "encoded in national_id"),
            ({"sex": "F"}, "sex", "encoded in national_id"),
            ({"sex": "X"}, "sex", "M or F"),
            ({"last_name": "  "}, "last_name", "required"),
            ({"first_name": "Ерлан2"}, "first_name", "not allowed"),
            ({"phone": "12345"}, "phone", "Kazakhstan phone"),
            ({"language": "de"}, "language", "kk, ru, en"),
            ({"death_on": "1980-01-01"}, "death_on", "before birth_on"),
            ({"birth_on": 19900215}, "birth_on", "got int"),
        ],
    )
    def test_rejects_with_field_and_reason(
        self, overrides: dict[str, Any], field: str, reason: str
    ) -> None:
        with pytest.raises(RowError) as caught:
            validate_person(person_row(**overrides), today=TODAY)
        assert caught.value.field == field
        assert reason in caught.value.reason

    def test_missing_national_id_is_named(self) -> None:
        row = person_row()
        del row["national_id"]
        with pytest.raises(RowError, match="national_id: is required"):
            validate_person(row, today=TODAY)


class TestValidateMember:
    def test_accepts_a_membership(self) -> None:
        member = validate_member(
            {
                "family_ref": "F1",
                "region_kato": "710000000",
                "national_id": "900215300027",
                "role": "head",
                "from_on": "2020-01-01",
            },
            today=TODAY,
        )
        assert member.role == "head"
        assert member.until_on is None

    def test_rejects_until_before_from(self) -> None:
        with pytest.raises(RowError, match="until_on"):
            validate_member(
                {
                    "family_ref": "F1",
                    "region_kato": "710000000",
                    "national_id": "900215300027",
                    "role": "head",
                    "from_on": "2020-01-01",
                    "until_on": "2019-01-01",
                },
                today=TODAY,
            )

    def test_rejects_unknown_role(self) -> None:
        with pytest.raises(RowError, match="role"):
            validate_member(
                {
                    "family_ref": "F1",
                    "region_kato": "710000000",
                    "national_id": "900215300027",
                    "role": "cousin",
                    "from_on": "2020-01-01",
                },
                today=TODAY,
            )


class TestValidateFact:
    def test_income_needs_an_integer_amount(self) -> None:
        base = {"national_id": "900215300027", "detail": "wages", "valid_from": "2025-01-01"}
        with pytest.raises(RowError, match="amount_minor: is required"):
            validate_fact(base, kind="income", today=TODAY)
        with pytest.raises(RowError, match="whole number"):
            validate_fact({**base, "amount_minor": "1500.50"}, kind="income", today=TODAY)
        with pytest.raises(RowError, match="between"):
            validate_fact({**base, "amount_minor": "-1"}, kind="income", today=TODAY)
        fact = validate_fact({**base, "amount_minor": "15000000"}, kind="income", today=TODAY)
        assert fact.amount_minor == 15_000_000

    def test_single_detail_kinds_default_their_detail(self) -> None:
        fact = validate_fact(
            {"national_id": "900215300027", "valid_from": "2025-03-01"},
            kind="unemployment",
            today=TODAY,
        )
        assert fact.detail == "registered"

    def test_disability_cause_is_checked(self) -> None:
        row = {
            "national_id": "900215300027",
            "detail": "group_2",
            "qualifier": "bad_luck",
            "valid_from": "2025-01-01",
        }
        with pytest.raises(RowError, match="qualifier"):
            validate_fact(row, kind="disability", today=TODAY)

    def test_pension_needs_years(self) -> None:
        with pytest.raises(RowError, match="quantity"):
            validate_fact(
                {"national_id": "900215300027", "valid_from": "2025-01-01"},
                kind="pension",
                today=TODAY,
            )


def test_child_older_than_parent_is_rejected() -> None:
    with pytest.raises(RowError, match="older"):
        check_child_younger(child_birth_on=date(1980, 1, 1), parent_birth_on=date(1985, 1, 1))
    check_child_younger(child_birth_on=date(2010, 1, 1), parent_birth_on=date(1985, 1, 1))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+7 701 123 45 67", "+77011234567"),
        ("87011234567", "+77011234567"),
        ("7011234567", "+77011234567"),
    ],
)
def test_normalize_phone(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected
