"""Benchmark: the rules engine over a synthetic registry, in batch and online.

Targets (issue "Benefit rules as data"): every program of the KZ pack for one month over
1,000,000 families (~3.3 million persons) already loaded in memory: at most 3 s; one family
online with its explanation: p50 <= 10 ms, p99 <= 50 ms.

    python benchmarks/bench_rules.py --families 1000000 --period 2026-03 --repeat 3

Reports wall time per stage (bind, person base = numpy fact aggregates, family results and
person results: in numpy on a whole-registry run, `rules/engine/vectorized.py`; `path` says
which ran them), wall and process CPU time of each run, the one-off costs (compile,
load = Arrow -> DuckDB with preparation, and the facts as sorted arrays), and online latency
percentiles (the row-by-row Python evaluator; `--online-backend duckdb` for the SQL one).
The machine is shared: take the minimum of several repeats, and read the CPU column too
(wall time inflates when other processes hold the cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from socialcard.rules.engine.compiler import load_pack
from socialcard.rules.engine.periods import Period
from socialcard.rules.engine.runtime import Engine, OnlineEvaluator
from socialcard.rules.engine.synthetic import generate

ROOT = Path(__file__).resolve().parent.parent


def _timed(fn):  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def households(person: pa.Table, fact: pa.Table, family_ids: np.ndarray) -> list:  # type: ignore[type-arg]
    """The person and fact rows of each sampled family, as small Arrow tables."""
    wanted = pa.array(family_ids)
    persons = person.filter(pc.is_in(person["family_id"], value_set=wanted))
    facts = fact.filter(pc.is_in(fact["person_id"], value_set=persons["person_id"]))
    fam = persons["family_id"].to_numpy()
    fact_pid = facts["person_id"].to_numpy()
    out = []
    for family_id in family_ids:
        rows = np.flatnonzero(fam == family_id)
        p = persons.take(pa.array(rows))
        ids = p["person_id"].to_numpy()
        f = facts.take(pa.array(np.flatnonzero(np.isin(fact_pid, ids))))
        out.append((int(family_id), p, f))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", default=str(ROOT / "packs" / "kz"))
    parser.add_argument("--families", type=int, default=1_000_000)
    parser.add_argument("--period", default="2026-03")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (0 = all cores)")
    parser.add_argument("--online", type=int, default=1000, help="families timed online")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--online-backend", default="python", choices=["python", "duckdb"])
    args = parser.parse_args()
    period = Period.parse(args.period)

    compiled, compile_wall, _ = _timed(lambda: load_pack(args.pack))
    population, gen_wall, _ = _timed(
        lambda: generate(args.families, seed=args.seed, as_of=period.end)
    )
    person, fact = population.person, population.fact
    engine = Engine(compiled, threads=args.threads or None)
    _, load_wall, load_cpu = _timed(lambda: engine.load(person, fact))

    runs = []
    result = None
    for _ in range(args.repeat):
        if result is not None:
            result.drop()
        result, wall, cpu = _timed(lambda: engine.evaluate(period))
        runs.append({"wall": wall, "cpu": cpu, "path": result.path, **result.timings})
    assert result is not None
    best = min(runs, key=lambda r: r["wall"])
    summary = [s.__dict__ for s in result.summary()]

    online = OnlineEvaluator(compiled, backend=args.online_backend)
    rng = np.random.default_rng(args.seed)
    sample = rng.choice(
        np.arange(1, args.families + 1), size=min(args.online, args.families), replace=False
    )
    cases = households(person, fact, sample)
    first = time.perf_counter()
    online.evaluate(cases[0][1], cases[0][2], period)  # binds and compiles the period once
    online_first = time.perf_counter() - first
    for _, p, f in cases[:20]:  # warm up (first-use planning, caches)
        online.evaluate(p, f, period).explain("ru")
    latencies = []
    for family_id, p, f in cases:
        t0 = time.perf_counter()
        household = online.evaluate(p, f, period)
        text = household.explain("ru")
        latencies.append((time.perf_counter() - t0) * 1000)
        assert text, family_id
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "families": args.families,
        "persons": person.num_rows,
        "facts": fact.num_rows,
        "period": str(period),
        "one_off_s": {
            "compile": compile_wall,
            "generate": gen_wall,
            "load_wall": load_wall,
            "load_cpu": load_cpu,
        },
        "batch_best_s": best,
        "batch_runs_s": [round(r["wall"], 3) for r in runs],
        "online_ms": {
            "backend": args.online_backend,
            "first_call_with_compile": online_first * 1000,
            "n": len(latencies),
            "p50": pct(0.5),
            "p90": pct(0.9),
            "p99": pct(0.99),
            "max": latencies[-1],
            "mean": statistics.fmean(latencies),
        },
        "programs": summary,
    }
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
