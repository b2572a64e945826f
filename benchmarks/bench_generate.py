"""Benchmark: generate a synthetic population and bulk-load it into a fresh store.

Targets: 1,000,000 families (about 3.3 million persons with their facts) in at most 3 minutes
into SQLite and 5 minutes into PostgreSQL, with peak memory at most 4 GB.

    python benchmarks/bench_generate.py --store sqlite --families 1000000
    python benchmarks/bench_generate.py --store postgres --families 1000000

The store is fresh every time: a SQLite file under var/bench/, or the PostgreSQL database
socialcard_bench_gen (dropped and re-created). The report splits the wall time into generating,
checking and writing, and gives the rows per table, rows per second and the peak RSS.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from socialcard.core.db import build_engine
from socialcard.core.logging import configure_logging
from socialcard.core.migrate import upgrade
from socialcard.registry.population import repository
from socialcard.registry.population.loader import generate_population

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
POSTGRES_DATABASE = "socialcard_bench_gen"


def fresh_store(store: str) -> str:
    if store == "sqlite":
        path = ROOT / "var" / "bench" / "generate.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    admin = create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{POSTGRES_DATABASE}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{POSTGRES_DATABASE}"'))
    admin.dispose()
    return f"{POSTGRES_SERVER}/{POSTGRES_DATABASE}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", type=int, default=1_000_000)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--check", choices=("vector", "scalar", "both"), default="vector")
    args = parser.parse_args()
    configure_logging("WARNING", json=False)

    url = fresh_store(args.store)
    load_before = os.getloadavg()[0]
    engine = build_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    report = generate_population(
        engine,
        families=args.families,
        seed=args.seed,
        batch_size=args.batch_size,
        check_mode=args.check,
    )
    wall = time.perf_counter() - started
    with engine.connect() as conn:
        counted = {
            m.__tablename__: repository.count_rows(conn, m.__tablename__)
            for m in repository.LOADED_MODELS
        }
    engine.dispose()
    load_after = os.getloadavg()[0]
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kib = own.ru_maxrss  # KiB on Linux
    worker_kib = children.ru_maxrss  # the largest child: the generator worker

    rows = sum(counted.values())
    python = sys.version.split()[0]
    print(
        f"date        {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}, python {python}"
    )
    print(f"command     {' '.join(sys.argv)}")
    print(f"store       {args.store} ({url})")
    print(f"families    {args.families:,} (seed {args.seed}, batch {args.batch_size:,})")
    print(f"check       {args.check}")
    other = wall - sum(
        (report.seconds_wait, report.seconds_write, report.seconds_finish, report.seconds_index)
    )
    print(f"wall        {wall:8.1f} s")
    print(f"  wait      {report.seconds_wait:8.1f} s  (the writer waiting for generated chunks)")
    print(f"  write     {report.seconds_write:8.1f} s  (ids, COPY/executemany, commit)")
    print(f"  finish    {report.seconds_finish:8.1f} s  (closing the load: SQLite checkpoint)")
    print(f"  indexes   {report.seconds_index:8.1f} s  (plain indexes created after the load)")
    print(f"  other     {other:8.1f} s  (checks of the store, dropping indexes, worker start)")
    produced = report.seconds_generate + report.seconds_check
    print(f"generator   {produced:8.1f} s (in a worker process when there are several chunks)")
    print(f"  generate  {report.seconds_generate:8.1f} s")
    print(f"  check     {report.seconds_check:8.1f} s  (vectorised importer rules)")
    for table, count in counted.items():
        print(f"rows        {table:24} {count:>12,}")
    print(
        f"rows        {'total':24} {rows:>12,}  ({rows / wall:,.0f} rows/s overall, "
        f"{rows / max(report.seconds_write, 1e-9):,.0f} rows/s while writing)"
    )
    print(f"facts       {dict(sorted(report.facts_by_kind.items()))}")
    print(f"peak RSS    {peak_kib / 1024:,.0f} MiB (this process)")
    print(f"            {worker_kib / 1024:,.0f} MiB (the generator worker)")
    cpu_own = own.ru_utime + own.ru_stime
    cpu_worker = children.ru_utime + children.ru_stime
    print(f"cpu         {cpu_own:.0f} s (this process) + {cpu_worker:.0f} s (worker)")
    # Another process busy on this 2-core machine shows here, and inflates every figure above.
    print(f"load        {load_before:.2f} before, {load_after:.2f} after (1-minute average)")
    limit = 180 if args.store == "sqlite" else 300
    scaled = wall * 1_000_000 / args.families
    verdict = "PASS" if scaled <= limit and peak_kib + worker_kib <= 4 * 1024 * 1024 else "FAIL"
    print(
        f"target      {limit} s and 4 GiB per 1,000,000 families: {verdict} ({scaled:.0f} s scaled)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
