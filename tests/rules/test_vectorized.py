"""The numpy stages compute what DuckDB computes, expression by expression and table by table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from socialcard.rules.engine import CompiledPack, Engine, Period
from socialcard.rules.engine import vectorized as vz
from socialcard.rules.engine.synthetic import generate
from tests.rules.test_agreement import link_table, population, tables
from tests.rules.test_interpret import EXPRESSIONS, RANDOM_SQL, _same

SCHEMA = pa.schema(
    [
        ("i", pa.int64()),
        ("j", pa.int64()),
        ("n", pa.int32()),
        ("d", pa.decimal128(18, 2)),
        ("f", pa.float64()),
        ("t", pa.bool_()),
    ]
)
ROWS: list[dict[str, Any]] = [
    {"i": -14, "j": 4, "n": None, "d": Decimal("2.5"), "f": 2.5, "t": True},
    {"i": 9, "j": -4, "n": None, "d": Decimal("-1.25"), "f": -0.5, "t": False},
    {"i": None, "j": 3, "n": None, "d": None, "f": None, "t": None},
    {"i": 0, "j": 7, "n": None, "d": Decimal("0.05"), "f": 1e-3, "t": True},
]
# Left to DuckDB on purpose: a DOUBLE cast to DECIMAL (DuckDB's own rounding of binary
# fractions), and the remainder of decimals.
IN_DUCKDB = {"CAST(CAST(1.00005 AS DOUBLE) AS DECIMAL(38,4))", "7.5 % 2"}


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    made = duckdb.connect()
    yield made
    made.close()


def python_values(col: vz.Col, n: int) -> list[Any]:
    """A column's rows as Python values, as DuckDB returns them."""
    values, ok = vz._full(col, n)
    out: list[Any] = []
    for k in range(n):
        if ok is not None and not ok[k]:
            out.append(None)
            continue
        v = values[k]
        if col.kind == "int":
            out.append(int(v))
        elif col.kind == "dec":
            out.append(Decimal(int(v)).scaleb(-col.scale))
        elif col.kind == "float":
            out.append(float(v))
        elif col.kind == "bool":
            out.append(bool(v))
        elif col.kind == "str":
            out.append(col.cats[int(v)])
        elif col.kind == "date":
            out.append(date(1970, 1, 1) + timedelta(days=int(v)))
        else:
            out.append(None)
    return out


def compute(table: pa.Table, sql: str) -> list[Any]:
    frame = vz.Frame(table.num_rows, table)
    return python_values(vz.compile_sql(sql)(frame), table.num_rows)


def in_duckdb(con: duckdb.DuckDBPyConnection, table: pa.Table, sql: str) -> list[Any]:
    con.register("zrows", table)
    try:
        return [r[0] for r in con.execute(f"SELECT {sql} FROM zrows").fetchall()]
    finally:
        con.unregister("zrows")


def assert_same(got: list[Any], want: list[Any], sql: str) -> None:
    assert len(got) == len(want)
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        assert _same(a, b), (sql, k, a, b)


class TestExpressions:
    @pytest.mark.parametrize("sql", EXPRESSIONS)
    def test_each_construct_gives_duckdbs_values(
        self, con: duckdb.DuckDBPyConnection, sql: str
    ) -> None:
        table = pa.Table.from_pylist(ROWS, schema=SCHEMA)
        if sql in IN_DUCKDB:
            with pytest.raises(vz.Unsupported):
                compute(table, sql)
            return
        assert_same(compute(table, sql), in_duckdb(con, table, sql), sql)

    @settings(
        max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        rows=st.lists(
            st.tuples(
                st.one_of(st.none(), st.integers(-(10**9), 10**9)),
                st.integers(-1000, 1000).filter(lambda v: v != 0),
                st.one_of(st.none(), st.integers(-(10**7), 10**7)),
            ),
            min_size=1,
            max_size=40,
        )
    )
    def test_arithmetic_and_rounding_agree_on_random_columns(
        self, con: duckdb.DuckDBPyConnection, rows: list[tuple[int | None, int, int | None]]
    ) -> None:
        table = pa.Table.from_pylist(
            [
                {
                    "i": i,
                    "j": j,
                    "n": None,
                    "d": None if c is None else Decimal(c).scaleb(-2),
                    "f": None if c is None else c / 100,
                    "t": None if i is None else i % 2 == 0,
                }
                for i, j, c in rows
            ],
            schema=SCHEMA,
        )
        for sql in (
            *RANDOM_SQL,
            "CAST(round(greatest(CAST((d * 1.5) AS DECIMAL(38,4)), 0)) AS BIGINT)",
            "CASE WHEN t THEN d * 3 WHEN i > 0 THEN i ELSE NULL END",
            "coalesce(i, j * 2) + least(j, d)",
            "t AND i > j OR NOT t",
            "i BETWEEN j AND 1000",
        ):
            assert_same(compute(table, sql), in_duckdb(con, table, sql), sql)


class TestRowsNotTaken:
    def test_an_error_in_rows_a_case_does_not_take_is_no_error(
        self, con: duckdb.DuckDBPyConnection
    ) -> None:
        table = pa.table({"x": pa.array([0, 4, 0, 0, 8, 0, 0, 0, 0, 0] * 10, pa.int64())})
        sql = "CASE WHEN x <> 0 THEN CAST(floor(log2(x & -x)) AS INTEGER) END"
        assert_same(compute(table, sql), in_duckdb(con, table, sql), sql)

    def test_an_error_in_a_result_is_left_to_duckdb(self) -> None:
        table = pa.table({"x": pa.array([0, 4], pa.int64())})
        frame = vz.Frame(2, table)
        col = vz.compile_sql("CAST(floor(log2(x)) AS INTEGER)")(frame)
        with pytest.raises(vz.Unsupported):
            vz.to_arrow(col, pa.int32(), 2)

    def test_narrow_integer_columns_widen_before_they_could_overflow(self) -> None:
        # int32 inputs are read without a copy; a sum or product that could pass 32 bits is
        # computed in 64 (as the online evaluator's Python integers are exact).
        table = pa.table(
            {"x": pa.array([2_000_000_000, -7], pa.int32()), "y": pa.array([50_000, 3], pa.int32())}
        )
        assert compute(table, "x + x") == [4_000_000_000, -14]
        assert compute(table, "y * y") == [2_500_000_000, 9]
        assert compute(table, "abs(x - x - x)") == [2_000_000_000, 7]

    def test_a_product_past_64_bits_is_left_to_duckdb(self) -> None:
        table = pa.table({"x": pa.array([10**15, 3], pa.int64())})
        with pytest.raises(vz.Unsupported):
            compute(table, "CAST(x AS DECIMAL(38,4)) * x")


def run_both(
    compiled: CompiledPack,
    person: pa.Table,
    fact: pa.Table,
    period: Period,
    link: pa.Table | None = None,
    **kwargs: Any,
) -> tuple[dict[str, pa.Table], dict[str, pa.Table], str]:
    """The stage tables by numpy and by DuckDB, sorted by key; and the numpy run's path."""
    out: list[dict[str, pa.Table]] = []
    path = ""
    for vectorize in (True, False):
        engine = Engine(compiled, threads=1, vectorize=vectorize)
        try:
            engine.load(person, fact, link)
            result = engine.evaluate(period, **kwargs)
            if vectorize:
                path = result.path
            out.append(
                {
                    stage: result.tables[stage].sort_by("person_id" if stage == "pr" else "fkey")
                    for stage in ("fr", "pr")
                    if stage in result.tables
                }
            )
        finally:
            engine.close()
    return out[0], out[1], path


def assert_tables_equal(numpy_tables: dict[str, pa.Table], duck: dict[str, pa.Table]) -> None:
    assert numpy_tables.keys() == duck.keys()
    for stage, table in duck.items():
        mine = numpy_tables[stage]
        assert mine.schema == table.schema, stage
        for name in table.column_names:
            assert mine[name].to_pylist() == table[name].to_pylist(), (stage, name)


@pytest.mark.slow
class TestStages:
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=population(), loner=st.booleans())
    def test_numpy_and_duckdb_give_the_same_tables(  # type: ignore[no-untyped-def]
        self, kz: CompiledPack, data, loner: bool
    ) -> None:
        period, families, links = data
        person, fact = tables(families, loner)
        link = link_table(person, links, period.start)
        mine, duck, path = run_both(kz, person, fact, period, link)
        assert path == "numpy"
        assert_tables_equal(mine, duck)

    @pytest.mark.parametrize(
        ("pack", "month"), [("kz", "2026-03"), ("kz", "2025-10"), ("ru", "2025-02")]
    )
    def test_each_pack_runs_in_numpy_and_agrees(
        self, request: pytest.FixtureRequest, pack: str, month: str
    ) -> None:
        compiled: CompiledPack = request.getfixturevalue(pack)
        period = Period.parse(month)
        registry = generate(400, seed=11, as_of=period.end)
        mine, duck, path = run_both(compiled, registry.person, registry.fact, period, registry.link)
        assert path == "numpy"
        assert_tables_equal(mine, duck)

    def test_person_extra_columns_come_out_the_same(self, kz: CompiledPack) -> None:
        period = Period.parse("2026-03")
        registry = generate(200, seed=5, as_of=period.end)
        extra = ["age", "region", "disability_group", "f_adults", "no_such_column"]
        mine, duck, path = run_both(kz, registry.person, registry.fact, period, person_extra=extra)
        assert path == "numpy"
        assert {"age", "region", "f_adults"} <= set(mine["pr"].column_names)
        assert_tables_equal(mine, duck)

    def test_a_negative_family_id_is_still_its_familys_max(self, kz: CompiledPack) -> None:
        # Families are keyed by family id, a person without one by minus their id; with a
        # negative family id the two could share a key, so the family id is a true max().
        period = Period.parse("2026-03")
        registry = generate(30, seed=4, as_of=period.end)
        family_id = registry.person["family_id"]
        negated = pa.array([None if f is None else -f for f in family_id.to_pylist()], pa.int64())
        person = registry.person.set_column(
            registry.person.schema.get_field_index("family_id"), "family_id", negated
        )
        mine, duck, path = run_both(kz, person, registry.fact, period)
        assert path == "numpy"
        assert_tables_equal(mine, duck)

    def test_amounts_past_64_bits_run_in_duckdb(self, kz: CompiledPack) -> None:
        period = Period.parse("2026-03")
        registry = generate(100, seed=3, as_of=period.end)
        engine = Engine(kz, threads=1)
        try:
            engine.load(registry.person, registry.fact)
            result = engine.evaluate(period, overrides={"kz.mrp": 10**15})
            assert result.path == "duckdb"
            assert "64 bits" in result.why_duckdb
            paid = {d.amount_minor for d in result.decisions("kz.awarded_mothers")}
            assert paid <= {64 * 10**14, 74 * 10**14}
        finally:
            engine.close()


def test_segments_need_families_in_runs() -> None:
    assert vz.Segments.of(np.array([0, 0, 1, 2, 2], dtype=np.int64)) is not None
    assert vz.Segments.of(np.array([0, 1, 0], dtype=np.int64)) is None
    seg = vz.Segments.of(np.array([0, 0, 1, 2, 2, 2], dtype=np.int64))
    assert seg is not None
    rows = np.array([True, False, True, True, True, False])
    assert seg.count(rows).tolist() == [1, 1, 2]


@pytest.mark.parametrize("name", ["cks_2023.yaml", "scoring_2025.yaml"])
def test_well_being_methodologies_run_in_numpy_and_agree(name: str) -> None:
    from socialcard.wellbeing.methodology import load_methodology
    from tests.rules.conftest import KZ

    methodology = load_methodology(KZ / "wellbeing" / name)
    period = Period.parse("2026-03")
    registry = generate(300, seed=9, as_of=period.end)
    mine, duck, path = run_both(methodology.compiled, registry.person, registry.fact, period)
    assert path == "numpy"
    assert_tables_equal(mine, duck)


def test_small_pages_restores_numpys_setting() -> None:
    setter = np._core.multiarray._set_madvise_hugepage
    before = setter(True)
    try:
        with vz.small_pages():
            assert setter(False) is False  # off inside
        assert setter(True) is True  # restored
    finally:
        setter(before)
