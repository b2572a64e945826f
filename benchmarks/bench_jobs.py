"""Benchmark: what running long work as a stored job costs, and how fast it stops.

A whole-registry rules run over a generated registry, directly (`rules.service.run_rules`,
one transaction) and as a job (`jobs.worker.start`, the same work plus the job row, the
heartbeat thread and the per-chunk cancellation check), alternately; then a job cancelled
two seconds in: the time from the stored request to the job's end (`cancelled`).

    python benchmarks/bench_jobs.py --store sqlite --families 100000
    python benchmarks/bench_jobs.py --store postgres --families 100000 --repeat 3

The registry is generated once (var/bench/sc_jobs_<N>.db or the PostgreSQL database
sc_jobs_bench_<N>) and reused; each run deletes the previous runs' rows first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def store_url(store: str, families: int) -> str:
    """The benchmark store's URL (the PostgreSQL database created when missing)."""
    if store == "sqlite":
        path = ROOT / "var" / "bench" / f"sc_jobs_{families}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    name = f"sc_jobs_bench_{families}"
    admin = create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{POSTGRES_SERVER}/{name}"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--families", type=int, default=100_000)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--period", default="2026-03")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    url = store_url(args.store, args.families)
    os.environ["SOCIALCARD_DATABASE_URL"] = url
    os.environ.setdefault("SOCIALCARD_SECRET_KEY", "benchmark-only-secret-key-0123456789")

    # Imported after the store is chosen: the settings and the engine are cached.
    from socialcard.core.db import get_engine, session_scope
    from socialcard.core.logging import configure_logging
    from socialcard.core.migrate import upgrade
    from socialcard.jobs import service as jobs_service
    from socialcard.jobs import worker
    from socialcard.registry.population.loader import generate_population
    from socialcard.rules import service as rules_service

    configure_logging("WARNING", json=False)
    engine = get_engine()
    upgrade(engine)
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM registry_family")).scalar_one()
    if count == 0:
        started = time.perf_counter()
        generate_population(engine, families=args.families, seed=7)
        print(f"generated   {args.families:,} families in {time.perf_counter() - started:.0f} s")

    def clean() -> None:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM job"))
            for table in ("rules_outcome", "rules_run_region", "rules_run_program", "rules_run"):
                conn.execute(text(f"DELETE FROM {table}"))
        if args.store == "sqlite":
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    timings: dict[str, list[float]] = {"direct": [], "job": []}
    families = 0
    load = [os.getloadavg()[0]]
    for _ in range(args.repeat):
        for how in ("direct", "job"):
            clean()
            t0 = time.perf_counter()
            if how == "direct":
                with session_scope() as session:
                    run = rules_service.run_rules(session, period=args.period)
                families = run.families
            else:
                job = worker.start(
                    "rules_run", {"period": args.period}, actor=None, background=False
                )
                assert job.status == "succeeded", job
            timings[how].append(time.perf_counter() - t0)
            load.append(os.getloadavg()[0])
            print(f"{how:<7} {timings[how][-1]:6.2f} s  load {load[-1]:.2f}")

    clean()
    job = worker.start("rules_run", {"period": args.period}, actor=None)
    time.sleep(2.0)
    asked = time.perf_counter()
    try:
        jobs_service.cancel(job_id=job.id, actor=None)
        stored = time.perf_counter() - asked
        ended = worker.wait(job.id, timeout=300)
        stop = time.perf_counter() - asked
        cancel = (
            f"request stored in {stored:.2f} s, job {ended.status} {stop:.2f} s after the"
            f" request (step {ended.step} {ended.done}/{ended.total})"
        )
    except Exception as exc:  # SQLite: the run holds the write lock while it writes
        cancel = f"request refused while the run writes: {type(exc).__name__}"
        worker.wait(job.id, timeout=300)
    clean()

    direct, as_job = min(timings["direct"]), min(timings["job"])
    print(f"date        {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"store       {args.store}, {families:,} families, {args.repeat} run(s) each, alternated")
    print(f"direct      best {direct:.2f} s, median {statistics.median(timings['direct']):.2f} s")
    extra = 100 * (as_job / direct - 1)
    print(
        f"as a job    best {as_job:.2f} s, median {statistics.median(timings['job']):.2f} s"
        f" ({extra:+.1f} % best to best)"
    )
    print(f"cancel      {cancel}")
    print(f"load        {min(load):.2f}–{max(load):.2f} (1-minute average)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
