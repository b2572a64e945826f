"""Compile safety: only whitelisted expressions over known names get through."""

from __future__ import annotations

import pytest

from socialcard.rules.engine import expressions as ex
from socialcard.rules.engine.expressions import ExprError, Names, Symbol
from socialcard.rules.engine.model import T


def names() -> Names:
    person = {
        "age": Symbol("b:age", "age", "person", "age", T.INT, "years"),
        "sex": Symbol("b:sex", "sex", "person", "sex", T.TEXT, "text"),
        "disabled": Symbol("b:disabled", "disabled", "person", "disabled", T.BOOL, "bool"),
    }
    family = {"size": Symbol("fb:size", "size", "family", "f_size", T.INT, "count")}
    params = {
        "mrp": Symbol("prm:pk_mrp", "mrp", "param", "zzprm_pk_mrp", T.INT, "money"),
        "coef": Symbol(
            "prm:p1_coef", "coef", "param", "zzprm_p1_coef", T.NUM, "number", keys=(4, 5, 6)
        ),
    }
    return Names(person, family, params, {})


def lifted() -> tuple[list[ex.AggSpec], ex.Callable[[ex.AggSpec], str]]:  # type: ignore[name-defined]
    specs: list[ex.AggSpec] = []

    def lift(spec: ex.AggSpec) -> str:
        specs.append(spec)
        return f"agg_{len(specs)}"

    return specs, lift


class TestRefused:
    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("DROP TABLE person", "a statement (DROP)"),
            ("SELECT 1", "a statement (SELECT)"),
            ("DELETE FROM fact", "a statement (DELETE)"),
            ("age > 1; DROP TABLE x", "one expression expected, found 2"),
            ("(SELECT max(age) FROM person) > 1", "subqueries are not allowed"),
            ("EXISTS (SELECT 1)", "subqueries are not allowed"),
            ("age IN (SELECT 1)", "IN takes a list of values"),
            ("read_csv('/etc/passwd') IS NULL", "function read_csv() is not allowed"),
            ("getenv('HOME') = 'x'", "function getenv() is not allowed"),
            ("now() IS NULL", "function now() is not allowed"),
            ("zzprm_pk_mrp > 0", "reserved"),
            ("", "an expression is required"),
            ("age >", "cannot parse"),
        ],
    )
    def test_refuses(self, text: str, reason: str) -> None:
        with pytest.raises(ExprError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            ex.compile_expr(text, names(), "person")

    def test_aggregates_are_family_level_only(self) -> None:
        with pytest.raises(ExprError, match="not allowed at person level"):
            ex.compile_expr("count(member) > 1", names(), "person")

    def test_nested_aggregates_are_refused(self) -> None:
        _, lift = lifted()
        with pytest.raises(ExprError, match="not allowed inside another aggregate"):
            ex.compile_expr("sum(member.age + count(member))", names(), "family", lift)

    def test_types_must_fit(self) -> None:
        with pytest.raises(ExprError, match="cannot compare int with text"):
            ex.compile_expr("age = 'old'", names(), "person")
        with pytest.raises(ExprError, match="AND needs a boolean"):
            ex.compile_expr("disabled and age", names(), "person")


class TestTranslated:
    def test_names_become_columns_and_placeholders(self) -> None:
        c = ex.compile_expr("age >= 18 and mrp > 0", names(), "person")
        assert c.sql == "age >= 18 AND zzprm_pk_mrp > 0"
        assert c.type == T.BOOL
        assert {s.name for s in c.refs} == {"age", "mrp"}

    def test_table_parameter_lookup_is_a_step_function(self) -> None:
        c = ex.compile_expr("coef[age]", names(), "person")
        assert "WHEN age >= 6 THEN zzprm_p1_coef_6" in c.sql
        assert c.sql.index(">= 6") < c.sql.index(">= 4")

    def test_aggregate_is_lifted_with_the_member_guard(self) -> None:
        specs, lift = lifted()
        c = ex.compile_expr(
            "count(member) filter (where member.age < 18) >= 4", names(), "family", lift
        )
        assert c.sql == "agg_1 >= 4"
        [spec] = specs
        assert spec.kind == "count_star"
        assert spec.guard == "is_member AND (age < 18)"
        assert spec.sql() == "count(*) FILTER (WHERE is_member AND (age < 18))"

    def test_deceased_range(self) -> None:
        specs, lift = lifted()
        ex.compile_expr("count(deceased) >= 1", names(), "family", lift)
        assert specs[0].guard == "is_deceased"

    def test_any_and_sum_over_members(self) -> None:
        specs, lift = lifted()
        c = ex.compile_expr(
            "any(member.disabled) and sum(member.age) > 10", names(), "family", lift
        )
        assert c.type == T.BOOL
        assert [s.kind for s in specs] == ["bool_or", "sum"]
        assert specs[1].sql().startswith("CAST(coalesce(sum(CAST(age AS DOUBLE))")

    def test_family_values_at_person_level(self) -> None:
        c = ex.compile_expr("family.size > 2", names(), "person")
        assert c.sql == "f_size > 2"

    def test_date_literal(self) -> None:
        c = ex.compile_expr("DATE '2025-09-01'", names(), "person")
        assert c.type == T.DATE
