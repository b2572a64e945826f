"""Benchmark: one family evaluated online with its explanation, and the adapter's share.

Target (issue 3): p50 <= 10 ms, p99 <= 50 ms for one family with its explanation. The engine
part is OnlineEvaluator.evaluate; the adapter (this domain) adds the family snapshot read
through the session, the pack lookup and the response model with the explanation sentences
and its JSON. Each is timed on its own over the same families.

    flock /work/bench.lock python benchmarks/bench_rules_online.py --store sqlite --calls 2000

Uses the e2e benchmark's store (see bench_rules_e2e.py), generated there.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from sqlalchemy import text
from sqlalchemy.orm import Session

from socialcard.core.db import build_engine
from socialcard.core.logging import configure_logging
from socialcard.registry import snapshot as registry_snapshot
from socialcard.rules import service
from socialcard.rules.errors import FamilyNotFound

POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--families", type=int, default=1_000_000)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--period", default="2026-03")
    args = parser.parse_args()
    configure_logging("WARNING", json=False)
    if args.store == "sqlite":
        url = f"sqlite:///var/bench/sc_rules_service_{args.families}.db"
    else:
        url = f"{POSTGRES_SERVER}/sc_rules_service_bench_{args.families}"
    engine = build_engine(url)
    with engine.connect() as conn:
        high = conn.execute(text("SELECT max(id) FROM registry_family")).scalar_one()
    rng = random.Random(1)
    ids = [rng.randint(1, high) for _ in range(args.calls)]
    pack = service.loaded_pack()
    evaluator = service._evaluator(pack)
    total: list[float] = []
    read: list[float] = []
    engine_part: list[float] = []
    load_before = os.getloadavg()[0]
    cpu0 = time.process_time()
    with Session(engine) as session:
        service.evaluate_family(session, family_id=ids[0], period=args.period)  # warm up
        for family_id in ids:
            t0 = time.perf_counter()
            try:
                result = service.evaluate_family(session, family_id=family_id, period=args.period)
            except FamilyNotFound:
                continue  # every member died or left: nothing to evaluate
            result.model_dump_json()
            t1 = time.perf_counter()
            person, fact = registry_snapshot.family_snapshot(session, family_id)
            t2 = time.perf_counter()
            evaluator.evaluate(person, fact, args.period)
            t3 = time.perf_counter()
            total.append(t1 - t0)
            read.append(t2 - t1)
            engine_part.append(t3 - t2)
            session.rollback()
    cpu = time.process_time() - cpu0
    adapter = [t - e for t, e in zip(total, engine_part, strict=True)]
    print(f"store       {args.store} ({url}), {len(total)} random families, {args.period}")
    for label, values in (
        ("total", total),
        ("engine", engine_part),
        ("adapter", adapter),
        ("  read", read),
    ):
        print(
            f"{label:10}  p50 {pct(values, 0.5):6.2f} ms  p99 {pct(values, 0.99):6.2f} ms"
            f"  mean {statistics.mean(values) * 1000:6.2f} ms"
        )
    print(f"cpu         {cpu:.1f} s for {args.calls * 2} evaluations")
    print(f"load        {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
