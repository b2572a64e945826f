"""Loading methodologies: the shipped schemes, and every kind of problem with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socialcard.wellbeing.methodology import CONFIDENCES, MethodologyError, load_methodology
from tests.wellbeing.helpers import METHODOLOGY, PACKS, make_pack


def _problems(tmp_path: Path, text: str) -> tuple[Path, list[tuple[str, int, str]]]:
    path = make_pack(tmp_path / "pack", text)
    with pytest.raises(MethodologyError) as caught:
        load_methodology(path)
    return path, [(p.file, p.line, p.reason) for p in caught.value.problems]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


class TestShippedMethodologies:
    def test_five_level_scheme_is_the_default_with_the_published_names(self) -> None:
        m = load_methodology(PACKS / "kz" / "wellbeing" / "cks_2023.yaml")
        assert m.default
        assert m.title["ru"] == "Методика определения социального благополучия семьи (лица)"
        assert [lv.code for lv in m.levels] == ["A", "B", "C", "D", "E"]
        # REFERENCE.md §3 (V): C is «неудовлетворительный», not «неблагополучный».
        assert [lv.name["ru"] for lv in m.levels] == [
            "благополучный",
            "удовлетворительный",
            "неудовлетворительный",
            "кризисный",
            "экстренный",
        ]
        assert {lv.name_confidence for lv in m.levels} == {"confirmed"}
        # No source confirms a cut-off: none may be shown as law.
        assert [lv.cut_confidence for lv in m.levels] == ["unconfirmed"] * 4 + [None]
        assert not any(lv.confirmed for lv in m.levels[:-1])
        assert {i.dimension for i in m.indicators} == {
            "economic",
            "social",
            "housing",
            "health",
            "education",
        }
        assert "32923" in m.citation
        assert m.unverified

    def test_six_level_scheme_has_23_criteria(self) -> None:
        m = load_methodology(PACKS / "kz" / "wellbeing" / "scoring_2025.yaml")
        assert len(m.levels) == 6
        assert len(m.indicators) == 23
        # Numbered as published: category 6 is high well-being, category 1 extreme need.
        assert [lv.code for lv in m.levels] == ["6", "5", "4", "3", "2", "1"]
        assert m.levels[0].name["ru"] == "высокое благосостояние"
        assert m.levels[-1].name["ru"] == "крайняя нуждаемость"
        assert m.level_of(1_000).code == "6"
        assert m.level_of(-1_000).code == "1"
        assert "скоринговая модель" in m.title["ru"]
        assert not m.default

    @pytest.mark.parametrize("name", ["cks_2023.yaml", "scoring_2025.yaml"])
    def test_every_indicator_and_level_has_a_source_and_marks(self, name: str) -> None:
        m = load_methodology(PACKS / "kz" / "wellbeing" / name)
        for indicator in m.indicators:
            assert indicator.source, indicator.code
            assert indicator.confidence in CONFIDENCES
            # No published point value was found for either model.
            assert indicator.points_confidence == "unconfirmed", indicator.code
        for level in m.levels:
            assert level.source, level.code

    def test_titles_in_three_languages(self) -> None:
        for name in ("cks_2023.yaml", "scoring_2025.yaml"):
            m = load_methodology(PACKS / "kz" / "wellbeing" / name)
            for item in [*m.indicators]:
                assert set(item.title) == {"kk", "ru", "en"}
            for level in m.levels:
                assert all(level.name[lang] for lang in ("kk", "ru", "en"))

    def test_hash_changes_with_the_file(self, tmp_path: Path) -> None:
        first = load_methodology(make_pack(tmp_path / "a"))
        second = load_methodology(make_pack(tmp_path / "b", METHODOLOGY.replace("-20", "-21")))
        assert first.sha256 != second.sha256


class TestLoadingProblems:
    def test_unknown_variable_names_file_line_and_indicator(self, tmp_path: Path) -> None:
        text = METHODOLOGY.replace("sum(member.vehicle_count)", "sum(member.vehicle_cnt)")
        path, problems = _problems(tmp_path, text)
        assert len(problems) == 1
        file, line, reason = problems[0]
        assert file == str(path)
        assert line == _line_of(text, "vehicle_cnt")
        assert "vehicle_cnt" in reason
        assert "has_vehicle" in reason

    def test_indicator_must_be_true_or_false(self, tmp_path: Path) -> None:
        text = METHODOLOGY.replace("when: family_size = 1", "when: family_size + 1")
        _, problems = _problems(tmp_path, text)
        assert any("true/false" in reason for _, _, reason in problems)

    def test_function_outside_the_whitelist_is_refused(self, tmp_path: Path) -> None:
        text = METHODOLOGY.replace("when: family_size = 1", "when: random() > 0.5")
        _, problems = _problems(tmp_path, text)
        assert any("is not allowed" in reason for _, _, reason in problems)

    def test_a_statement_is_not_an_expression(self, tmp_path: Path) -> None:
        text = METHODOLOGY.replace(
            "when: family_size = 1", 'when: "family_size = 1; DROP TABLE person"'
        )
        _, problems = _problems(tmp_path, text)
        assert problems

    def test_points_must_be_a_non_zero_integer(self, tmp_path: Path) -> None:
        text = METHODOLOGY.replace("points: -1\n", "points: 0\n").replace(
            "points: 3\n", "points: many\n"
        )
        _, problems = _problems(tmp_path, text)
        lines = {line for _, line, reason in problems if "points" in reason}
        assert lines == {_line_of(text, "points: 0"), _line_of(text, "points: many")}

    def test_cut_offs_must_fall_from_best_to_worst(self, tmp_path: Path) -> None:
        text = METHODOLOGY.replace("min_score: -15", "min_score: 5")
        _, problems = _problems(tmp_path, text)
        assert [r for _, _, r in problems] == [problems[0][2]]
        assert "below the previous level" in problems[0][2]
        assert problems[0][1] == _line_of(text, "code: C")

    def test_last_level_takes_every_lower_score(self, tmp_path: Path) -> None:
        text = METHODOLOGY.replace(
            "{code: E, name: {kk: e, ru: э, en: e}, name_confidence: confirmed}",
            "{code: E, name: {kk: e, ru: э, en: e}, min_score: -40}",
        )
        _, problems = _problems(tmp_path, text)
        assert any("drop its min_score" in r for _, _, r in problems)

    def test_a_confidence_mark_is_one_of_three(self, tmp_path: Path) -> None:
        text = METHODOLOGY.replace("points: 10", "points: 10\n        confidence: sure", 1)
        _, problems = _problems(tmp_path, text)
        assert any(
            "confidence is one of confirmed, reported, unconfirmed, got 'sure'" in r
            for _, _, r in problems
        )

    def test_unmarked_statements_are_unconfirmed(self, tmp_path: Path) -> None:
        m = load_methodology(make_pack(tmp_path))
        assert {(i.confidence, i.points_confidence) for i in m.indicators} == {
            ("unconfirmed", "unconfirmed")
        }
        assert [lv.confirmed for lv in m.levels] == [True, False, False, True]

    def test_unknown_field_gets_a_hint(self, tmp_path: Path) -> None:
        text = METHODOLOGY.replace("points: 10", "pionts: 10")
        _, problems = _problems(tmp_path, text)
        assert any("did you mean 'points'" in r for _, _, r in problems)

    def test_duplicate_indicator_across_dimensions(self, tmp_path: Path) -> None:
        text = METHODOLOGY.replace("      student:", "      owns_home:")
        _, problems = _problems(tmp_path, text)
        assert any("also defined on line" in r for _, _, r in problems)

    def test_missing_language_is_reported(self, tmp_path: Path) -> None:
        text = METHODOLOGY.replace("{kk: студент, ru: студент, en: student}", "{ru: студент}")
        _, problems = _problems(tmp_path, text)
        assert any("'kk'" in r for _, _, r in problems)

    def test_yaml_syntax_error_names_the_line(self, tmp_path: Path) -> None:
        text = METHODOLOGY.replace("points: -7", "points: [-7")
        _, problems = _problems(tmp_path, text)
        assert problems[0][1] > 0

    def test_every_problem_is_reported_at_once(self, tmp_path: Path) -> None:
        text = METHODOLOGY.replace("sum(member.vehicle_count)", "nope").replace(
            "disabled_members > 0", "missing_thing > 0"
        )
        _, problems = _problems(tmp_path, text)
        reasons = " ".join(r for _, _, r in problems)
        assert "nope" in reasons
        assert "missing_thing" in reasons

    def test_a_methodology_outside_a_pack_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "alone.yaml"
        path.write_text(METHODOLOGY, encoding="utf-8")
        with pytest.raises(MethodologyError, match=r"pack\.yaml"):
            load_methodology(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(MethodologyError, match="no such methodology file"):
            load_methodology(tmp_path / "nothing.yaml")


class TestLevelOf:
    @settings(max_examples=200, deadline=None)
    @given(st.integers(-1000, 1000), st.integers(-1000, 1000))
    def test_level_is_monotone_in_the_score(self, low: int, high: int) -> None:
        m = _shipped()
        low, high = sorted((low, high))
        codes = [lv.code for lv in m.levels]
        assert codes.index(m.level_of(low).code) >= codes.index(m.level_of(high).code)

    def test_cut_off_belongs_to_its_level(self) -> None:
        m = _shipped()
        for level in m.levels[:-1]:
            assert level.min_score is not None
            assert m.level_of(level.min_score) == level
            assert m.level_of(level.min_score - 1) != level


_cache: list[object] = []


def _shipped():  # type: ignore[no-untyped-def]
    if not _cache:
        _cache.append(load_methodology(PACKS / "kz" / "wellbeing" / "cks_2023.yaml"))
    return _cache[0]
