"""Score every family of a registry snapshot in DuckDB (pure: no store, no HTTP)."""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa

from socialcard.rules.engine import BatchResult, Engine, Period
from socialcard.wellbeing.methodology import DIMENSIONS, Methodology

RESULT_COLUMNS: tuple[str, ...] = (
    "family_id",
    "region_kato",
    "level",
    "score",
    *DIMENSIONS,
    "indicators",
)


def score_batch(methodology: Methodology, batch: BatchResult) -> pa.Table:
    """Every living family's scores from an evaluation that included the methodology.

    Rows are ordered by family id, so a re-run on the same data gives the same table.
    """
    sql = methodology.score_sql(batch.names["fr"])
    cols = ", ".join(c if c != "region_kato" else "region AS region_kato" for c in RESULT_COLUMNS)
    return batch.engine.con.sql(f"SELECT {cols} FROM ({sql}) ORDER BY family_id").to_arrow_table()


def score_snapshot(
    methodology: Methodology,
    person: Any,
    fact: Any,
    period: Period,
    *,
    timings: dict[str, float] | None = None,
    threads: int | None = None,
) -> pa.Table:
    """Load a snapshot into the engine, evaluate the methodology for a period, score families."""
    timings = timings if timings is not None else {}
    engine = Engine(methodology.compiled, threads=threads)
    try:
        timings["load"] = engine.load(person, fact)
        started = time.perf_counter()
        batch = engine.evaluate(period)
        table = score_batch(methodology, batch)
        timings["evaluate"] = time.perf_counter() - started
        batch.drop()
        return table
    finally:
        engine.close()


def level_counts(methodology: Methodology, table: pa.Table) -> dict[str, int]:
    """Families per level, every level present (zeros included), best first."""
    counts = dict.fromkeys((lv.code for lv in methodology.levels), 0)
    if table.num_rows:
        grouped = table.group_by("level").aggregate([("family_id", "count")])
        for level, n in zip(
            grouped.column("level").to_pylist(),
            grouped.column("family_id_count").to_pylist(),
            strict=True,
        ):
            counts[str(level)] = int(n)
    return counts


def level_moves(baseline: pa.Table, reform: pa.Table) -> dict[tuple[str, str], int]:
    """Families per (baseline level, reform level), over the families both tables scored."""
    joined = baseline.select(["family_id", "level"]).join(
        reform.select(["family_id", "level"]).rename_columns(["family_id", "reform_level"]),
        "family_id",
        join_type="inner",
    )
    if not joined.num_rows:
        return {}
    grouped = joined.group_by(["level", "reform_level"]).aggregate([("family_id", "count")])
    return {
        (str(a), str(b)): int(n)
        for a, b, n in zip(
            grouped.column("level").to_pylist(),
            grouped.column("reform_level").to_pylist(),
            grouped.column("family_id_count").to_pylist(),
            strict=True,
        )
    }
