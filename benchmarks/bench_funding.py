"""Benchmark: funding vouchers in bulk (funding_service.fund_in_chunks, the path of
`wallet pay-orders`, `wallet fund` and the demo).

Target (issue 5, set by the lead): 100,000 vouchers funded in at most 30 s, on SQLite and on
PostgreSQL, on this machine.

A scratch store (SQLite: var/bench/<prefix>_funding.db; PostgreSQL: database
<prefix>_bench_funding, prefix `sc_funding` unless SOCIALCARD_TEST_DB_PREFIX is set), migrated,
with `--persons` persons and one program budget per region holding enough for every order.
Timed: `--orders` funding orders (food and cash vouchers, each with its own idempotency key,
spread over the persons and two regions) funded in chunks of `--chunk`, one transaction each.
Then, timed apart: the same orders again (every one a replay: nothing is funded twice) and
`wallet check`. Printed: vouchers/s, wall, this process's CPU (the PostgreSQL server's is not
in it), peak RSS, and the check's verdict.

    python benchmarks/bench_funding.py --store sqlite
    python benchmarks/bench_funding.py --store postgres
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

from bench_wallet import scratch_postgres
from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import Session

from socialcard.core.db import build_engine, session_scope
from socialcard.core.logging import configure_logging
from socialcard.core.migrate import upgrade
from socialcard.registry.models import Person
from socialcard.wallet import service as wallet_service
from socialcard.wallet.funding import service as funding_service
from socialcard.wallet.funding.schemas import BudgetAllocation, FundingOrder

ROOT = Path(__file__).resolve().parent.parent
PREFIX = os.environ.get("SOCIALCARD_TEST_DB_PREFIX", "sc_funding")
REGIONS = ("751110000", "711110000")
PROGRAM = "kz.bench_funding"
PERIOD = "2026-03"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def scratch_store(store: str) -> str:
    if store == "sqlite":
        path = ROOT / "var" / "bench" / f"{PREFIX}_funding.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    return scratch_postgres(f"{PREFIX}_bench_funding")


def seed(engine: Engine, *, persons: int, orders: int) -> list[int]:
    """Persons (one executemany) and a budget per region for every order; the person ids."""
    with Session(engine) as session, session_scope(session):
        session.execute(
            insert(Person),
            [
                {
                    "national_id": f"F{i:011d}",
                    "last_name": "Bench",
                    "first_name": "Funding",
                    "birth_on": date(1980, 1, 1),
                    "sex": "F",
                    "region_kato": REGIONS[i % len(REGIONS)],
                }
                for i in range(persons)
            ],
        )
        for region in REGIONS:
            funding_service.allocate_budget(
                session,
                idempotency_key=f"bench-{region}",
                allocation=BudgetAllocation(
                    program_id=PROGRAM, region_kato=region, amount_minor=10**6 * orders
                ),
            )
        ids = session.execute(text("SELECT id FROM registry_person ORDER BY id")).scalars()
        return list(ids)


def make_orders(person_ids: list[int], n: int) -> list[FundingOrder]:
    return [
        FundingOrder(
            idempotency_key=f"bench-order:{i}",
            person_id=person_ids[i % len(person_ids)],
            program_id=PROGRAM,
            region_kato=REGIONS[i % len(REGIONS)],
            amount_minor=50_000 + i % 7 * 1_000,
            benefit_type=("food", "cash")[i % 2],
            period=PERIOD,
        )
        for i in range(n)
    ]


def timed(label: str, engine: Engine, orders: list[FundingOrder], chunk: int) -> float:
    @contextmanager
    def new_session() -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as session, session_scope(session):
            yield session

    wall, cpu = time.perf_counter(), time.process_time()
    outcomes = funding_service.fund_in_chunks(
        orders, now=NOW, chunk_size=chunk, new_session=new_session
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    refused = sum(o.error is not None for o in outcomes)
    print(
        f"{label}: {len(orders):,} orders in {wall:.1f} s wall, {cpu:.1f} s CPU "
        f"({len(orders) / wall:,.0f}/s), refused {refused}",
        flush=True,
    )
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=funding_service.FUNDING_CHUNK)
    args = parser.parse_args()
    configure_logging("WARNING")
    engine = build_engine(scratch_store(args.store))
    upgrade(engine)
    orders = make_orders(seed(engine, persons=args.persons, orders=args.orders), args.orders)
    print(f"store {args.store}, chunk {args.chunk}, load {os.getloadavg()[0]:.1f}", flush=True)
    wall = timed("fund", engine, orders, args.chunk)
    timed("re-run (all replays)", engine, orders, args.chunk)
    started = time.perf_counter()
    with Session(engine) as session:
        check = wallet_service.check(session)
    print(
        f"wallet check: {'clean' if check.ok else check.problems[:3]} "
        f"({time.perf_counter() - started:.1f} s; {check.counts})"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.orders >= 100_000:
        verdict = "met" if wall <= 30 * args.orders / 100_000 and check.ok else "NOT met"
    else:
        verdict = f"not measured ({args.orders:,} orders; the target is for 100,000)"
    print(
        f"peak RSS {peak:,.0f} MiB; load {os.getloadavg()[0]:.1f}; "
        f"target 100,000 in 30 s: {verdict}"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
