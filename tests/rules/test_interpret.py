"""The row-by-row evaluator computes SQL expressions exactly as DuckDB does."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from socialcard.rules.engine.interpret import compile_sql

ROW: dict[str, Any] = {"i": -14, "j": 4, "n": None, "d": Decimal("2.5"), "f": 2.5, "t": True}

EXPRESSIONS = [
    "i // 10000",
    "i // j",
    "i % j",
    "-7 % 3",
    "7.5 % 2",
    "i / j",
    "1 / 0",
    "round(2.5)",
    "round(-2.5)",
    "round(CAST(2.5 AS DOUBLE))",
    "round(CAST(-2.5 AS DOUBLE))",
    "round(2.345, 2)",
    "ceil(-2.5)",
    "floor(CAST(-2.5 AS DOUBLE))",
    "CAST(CAST(2.5 AS DOUBLE) AS BIGINT)",
    "CAST(CAST(3.5 AS DOUBLE) AS BIGINT)",
    "CAST(2.5 AS BIGINT)",
    "CAST(-2.5 AS BIGINT)",
    "CAST(CAST(1.00005 AS DOUBLE) AS DECIMAL(38,4))",
    "CAST(1.23456 AS DECIMAL(38,4))",
    "CAST(i AS DECIMAL(4,1))",
    "0.7 * CAST(5085100 AS BIGINT)",
    "ceil(greatest(CAST((0.7 * CAST(5085100 AS BIGINT)) AS DECIMAL(38,4)), 0) * 0.01) * 100",
    "CAST((ceil(CAST(123450000 AS DECIMAL(38,4)) * 0.01) * 100) AS BIGINT)",
    "greatest(n, 1, 2.5)",
    "least(n, n)",
    "greatest(f, d)",
    "coalesce(n, n, 3)",
    "nullif(j, 4)",
    "nullif(j, 5)",
    "n IS NULL",
    "NOT (n IS NULL)",
    "n AND FALSE",
    "n AND TRUE",
    "n OR TRUE",
    "n OR FALSE",
    "NOT n",
    "j IN (1, n)",
    "j IN (4, n)",
    "n IN (1, 2)",
    "j BETWEEN 1 AND n",
    "j BETWEEN 5 AND n",
    "CASE WHEN n THEN 1 WHEN t THEN 2 END",
    "CASE j WHEN 4 THEN 'four' ELSE 'other' END",
    "CASE n WHEN 4 THEN 'four' ELSE 'other' END",
    "if(t, 1, 2)",
    "(CAST(1 AS BIGINT) << 40) | 5",
    "((CAST(1 AS BIGINT) << 40) >> 38) & 3",
    "CAST(floor(log2(j & -j)) AS INTEGER)",
    "DATE '2024-02-28' + 2",
    "DATE '2024-03-01' - DATE '2024-02-01'",
    "year(DATE '2024-02-28') * 12 + month(DATE '2024-02-28') + day(DATE '2024-02-28')",
    "abs(i)",
    "d * j - 1.25",
    "f * j",
    "CAST(n AS BIGINT)",
]


# Arithmetic and rounding over random numbers (i, j integers, d a decimal, f a double).
RANDOM_SQL = (
    "i // j",
    "i % j",
    "round(i / j)",
    "CAST(round(i / j) AS BIGINT)",
    "CAST(ceil(greatest(CAST((d * j) AS DECIMAL(38,4)), 0) * 0.01) * 100 AS BIGINT)",
    "floor(d / j)",
)
# A DOUBLE cast to DECIMAL (the batch's numpy stages leave these to DuckDB).
RANDOM_FLOAT_TO_DECIMAL_SQL = (
    "CAST(round(CAST((f * 1.5) AS DECIMAL(38,4))) AS BIGINT)",
    "CAST(f AS DECIMAL(38,4))",
)

_TYPES = {Decimal: "DECIMAL(18,2)", float: "DOUBLE", bool: "BOOLEAN", int: "BIGINT"}


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    made = duckdb.connect()
    yield made
    made.close()


def _duckdb(con: duckdb.DuckDBPyConnection, sql: str, row: dict[str, Any]) -> Any:
    values = ", ".join(
        f"CAST({'NULL' if v is None else repr(str(v))} AS {_TYPES.get(type(v), 'INTEGER')}) AS {k}"
        for k, v in row.items()
    )
    return con.execute(f"SELECT {sql} FROM (SELECT {values})").fetchall()[0][0]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return (type(a) is type(b) and a == b) or (a == b and {type(a), type(b)} <= {int, Decimal})


class TestExpressions:
    @pytest.mark.parametrize("sql", EXPRESSIONS)
    def test_each_construct_gives_duckdbs_value_and_type(
        self, con: duckdb.DuckDBPyConnection, sql: str
    ) -> None:
        want = _duckdb(con, sql, ROW)
        got = compile_sql(sql)(ROW)
        assert _same(got, want), (sql, got, want)

    def test_a_date_literal_is_a_date(self) -> None:
        assert compile_sql("DATE '2025-09-01'")({}) == date(2025, 9, 1)

    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        i=st.integers(-(10**9), 10**9),
        j=st.integers(-1000, 1000).filter(lambda v: v != 0),
        cents=st.integers(-(10**7), 10**7),
    )
    def test_arithmetic_and_rounding_agree_on_random_numbers(
        self, con: duckdb.DuckDBPyConnection, i: int, j: int, cents: int
    ) -> None:
        row = {"i": i, "j": j, "d": Decimal(cents).scaleb(-2), "f": cents / 100}
        for sql in (*RANDOM_SQL, *RANDOM_FLOAT_TO_DECIMAL_SQL):
            assert _same(compile_sql(sql)(row), _duckdb(con, sql, row)), (sql, row)
