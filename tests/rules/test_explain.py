"""Explanations: a sentence per condition with values, in Kazakh, Russian and English."""

from __future__ import annotations

from decimal import Decimal

import pytest

from socialcard.rules.engine.cases import household_tables, pack_cases
from socialcard.rules.engine.explain import format_number, format_value
from socialcard.rules.engine.model import MemberSpec
from socialcard.rules.engine.periods import Period, add_years


def _family(children: int, period: Period) -> list[MemberSpec]:
    start = period.start
    members = [
        MemberSpec("father", "head", "M", add_years(start, -40)),
        MemberSpec("mother", "spouse", "F", add_years(start, -38)),
    ]
    members += [
        MemberSpec(f"c{i}", "child", "F", add_years(start, -(2 + i))) for i in range(children)
    ]
    return members


class TestExplain:
    def test_large_family_sentence_in_three_languages(self, kz, kz_online) -> None:  # type: ignore[no-untyped-def]
        period = Period.parse("2026-03")
        person, fact = household_tables(_family(4, period))
        decision = kz_online.evaluate(person, fact, period).get("kz.large_family")
        assert decision.eligible
        assert decision.amount_minor == 69330_00
        en = decision.explain("en", kz.pack)
        ru = decision.explain("ru", kz.pack)
        kk = decision.explain("kk", kz.pack)
        assert en.conditions == [
            "4 children under 18 (or full-time students under 23) — at least 4 needed — met"
        ]
        assert ru.conditions[0].endswith("нужно не менее 4 — выполнено")
        assert kk.conditions[0].endswith("кемінде 4 қажет — орындалды")
        assert en.amount == "69,330 ₸"
        assert ru.amount == "69\u00a0330 ₸"
        assert "rule version from 2024-01-01" in en.text()
        assert "art. 91" in en.citation
        assert ("monthly calculation index (MCI)", "4,325 ₸") in en.parameters

    def test_not_met_sentence(self, kz, kz_online) -> None:  # type: ignore[no-untyped-def]
        period = Period.parse("2026-03")
        person, fact = household_tables(_family(3, period))
        decision = kz_online.evaluate(person, fact, period).get("kz.large_family")
        assert not decision.eligible
        assert decision.explain("en", kz.pack).conditions[0].endswith("at least 4 needed — not met")

    @pytest.mark.parametrize("lang", ["kk", "ru", "en"])
    def test_every_program_renders_without_placeholders(self, kz, kz_online, lang: str) -> None:  # type: ignore[no-untyped-def]
        for case in pack_cases(kz):
            person, fact = household_tables(case.members)
            household = kz_online.evaluate(person, fact, case.period)
            text = household.explain(lang)
            assert "{" not in text, text
            assert "}" not in text, text
            assert "None" not in text

    def test_decision_record_keeps_version_conditions_and_parameters(self, kz, kz_online) -> None:  # type: ignore[no-untyped-def]
        period = Period.parse("2025-10")
        person, fact = household_tables(_family(2, period))
        record = kz_online.evaluate(person, fact, period).get("kz.asp").as_dict()
        assert record["version"] == "2025-09-01"
        assert set(record["conditions"]) == {"income_within_poverty_line", "no_consumer_loans"}
        assert record["parameters"]["pm"] == 46228_00
        assert "poverty_line" in record["variables"]


class TestFormat:
    def test_numbers_by_language(self) -> None:
        assert format_number(Decimal("1234567.5"), "en") == "1,234,567.5"
        assert format_number(Decimal("1234567.5"), "kk") == "1\u00a0234\u00a0567,5"

    def test_money_in_major_units(self, kz) -> None:  # type: ignore[no-untyped-def]
        assert format_value(2945325, "money", "en", kz.pack) == "29,453.25 ₸"
        assert format_value(6933000, "money", "ru", kz.pack) == "69\u00a0330 ₸"
        assert format_value(True, "bool", "kk", kz.pack) == "иә"
