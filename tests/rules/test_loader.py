"""Loading a pack: every problem at once, each with file, program, line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from socialcard.rules.engine import PackError, load_pack
from socialcard.rules.engine.problems import Problem
from tests.rules.conftest import MakePack, program


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(PackError) as info:
        load_pack(path)
    return info.value.problems


def reasons(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems)


class TestLoadPack:
    def test_loads_the_kazakhstan_pack(self, kz) -> None:  # type: ignore[no-untyped-def]
        assert {p.program.id for p in kz.programs} >= {
            "kz.birth_allowance",
            "kz.child_care",
            "kz.disabled_child_care",
            "kz.job_loss",
            "kz.disability",
            "kz.survivor",
            "kz.large_family",
            "kz.asp",
            "kz.awarded_mothers",
            "kz.base_pension",
        }

    def test_reports_every_problem_at_once(self, make_pack: MakePack) -> None:
        bad = program(
            variables="{family: {kids: 'count(member) filter (where member.agee < 18)',"
            " a: 'b + 1', b: 'a + 1'}}",
            conditions="c1: {when: 'kids >= 4', explain: {kk: x, ru: x, en: x}},"
            " c2: {when: 'DROP TABLE person', explain: {kk: x, ru: x, en: x}},"
            " c3: {when: 'read_csv(''/etc/passwd'') > 0', explain: {kk: x, ru: x, en: x}},"
            " c4: {when: 'mrp', explain: {kk: x, ru: x, en: x}},"
            " c5: {when: '(select 1) = 1', explain: {kk: x, ru: x, en: x}}",
            parameters="{coef: {2024-02-30: 1.5}}",
        )
        path = make_pack(p=bad)
        found = problems_of(path)
        text = reasons(found)
        assert "unknown person variable 'agee'; did you mean 'age'?" in text
        assert "cycle between variables: a -> b -> a" in text
        assert "a statement (DROP) where an expression belongs" in text
        assert "function read_csv() is not allowed" in text
        assert "must be true/false, not int" in text
        assert "subqueries are not allowed" in text
        assert "bad date '2024-02-30'" in text
        # Each problem names the file, the program and a line.
        for problem in found:
            assert problem.file.endswith("p.yaml")
            assert problem.program == "t.p"
            assert problem.line > 0

    def test_line_points_at_the_offending_key(self, make_pack: MakePack) -> None:
        path = make_pack(p=program(amount="mrp * nothing"))
        [problem] = problems_of(path)
        text = (path / "p.yaml").read_text().splitlines()
        assert "amount:" in text[problem.line - 1]
        assert "unknown variable 'nothing'" in problem.reason

    def test_wrong_type_in_an_expression(self, make_pack: MakePack) -> None:
        path = make_pack(p=program(amount="mrp + 'abc'"))
        assert "cannot compute int + text" in reasons(problems_of(path))

    def test_amount_must_be_a_number(self, make_pack: MakePack) -> None:
        path = make_pack(p=program(amount="family_size > 1"))
        assert "amount must be a number, not bool" in reasons(problems_of(path))

    def test_person_name_at_family_level_is_explained(self, make_pack: MakePack) -> None:
        path = make_pack(p=program(amount="age"))
        assert "person variable used at family level: aggregate it" in reasons(problems_of(path))

    def test_invalid_yaml_names_the_line(self, make_pack: MakePack) -> None:
        path = make_pack(p="id: t.p\ntitle: {kk: x\n  ru: [\n")
        [problem] = [p for p in problems_of(path) if p.file.endswith("p.yaml")]
        assert problem.reason.startswith("invalid YAML")
        assert problem.line >= 2

    def test_duplicate_and_unknown_keys(self, make_pack: MakePack) -> None:
        text = program().replace("entity: family", "entity: family\nentity: person\ncolour: red")
        found = reasons(problems_of(make_pack(p=text)))
        assert "duplicate key 'entity'" in found
        assert "unknown field 'colour' in program" in found

    def test_missing_explanation_language(self, make_pack: MakePack) -> None:
        path = make_pack(p=program(conditions="ok: {when: 'true', explain: {ru: x, en: x}}"))
        assert "needs a 'kk' text" in reasons(problems_of(path))

    def test_unknown_name_in_an_explanation_template(self, make_pack: MakePack) -> None:
        path = make_pack(
            p=program(conditions="ok: {when: 'true', explain: {kk: '{x}', ru: '{x}', en: '{x}'}}")
        )
        assert "unknown name {x} in the kk explanation" in reasons(problems_of(path))

    def test_a_parameter_without_a_value_when_a_version_starts(self, make_pack: MakePack) -> None:
        path = make_pack(p=program(amount="late", parameters="{late: {2025-06-01: 5}}"))
        assert "has no value on 2024-01-01" in reasons(problems_of(path))

    def test_cycle_between_levels_is_refused(self, make_pack: MakePack) -> None:
        variables = (
            "{person: {x: 'family.n > 1'}, family: {n: 'count(member) filter (where member.x)'}}"
        )
        path = make_pack(p=program(variables=variables, amount="n"))
        assert "cycle" in reasons(problems_of(path))

    def test_bad_test_case_fields(self, make_pack: MakePack) -> None:
        tests = (
            "[{name: x, period: 2025-13, members: [{age: 3}], eligible: true},"
            " {name: y, period: 2025-01, members: [{role: king, age: 3,"
            " facts: [{kind: income, detail: salary}]}], eligible: yes}]"
        )
        found = reasons(problems_of(make_pack(p=program(tests=tests))))
        assert "bad month in period" in found
        assert "role 'king'" in found
        assert "income detail 'salary'" in found

    def test_an_invalid_pack_never_half_loads(self, make_pack: MakePack) -> None:
        good = program(id="t.good")
        bad = program(id="t.bad", amount="nope")
        path = make_pack(a=good, b=bad)
        with pytest.raises(PackError):
            load_pack(path)

    def test_missing_pack_file(self, tmp_path: Path) -> None:
        [problem] = problems_of(tmp_path)
        assert "needs pack.yaml" in problem.reason
