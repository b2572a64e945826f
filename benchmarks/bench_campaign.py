"""Benchmark: proactive campaigns, the HTTP SMS gateway and life event to offer.

Targets (issue 4):
- a campaign over 1,000,000 families that makes 100,000 offers writes them and their messages
  in at most 60 s;
- the HTTP gateway sends at least 500 messages per second to a local provider;
- a life event to an offer in the outbox: p99 at most 2 s.

    python benchmarks/bench_campaign.py --store postgres --families 1000000
    python benchmarks/bench_campaign.py --store sqlite --families 1000000 --reuse

The store is a SQLite file under var/bench/ or the PostgreSQL database sc_proactive_bench
(`--reuse` keeps an already generated population). The provider runs in its own process.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
POSTGRES_DATABASE = "sc_proactive_bench"


def store_url(store: str, reuse: bool) -> tuple[str, bool]:
    """The store's URL and whether it already holds a population."""
    if store == "sqlite":
        path = ROOT / "var" / "bench" / "sc_proactive_bench.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        if reuse and path.exists():
            return f"sqlite:///{path}", True
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}", False
    admin = create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": POSTGRES_DATABASE}
        ).first()
        if not (reuse and exists):
            conn.execute(text(f'DROP DATABASE IF EXISTS "{POSTGRES_DATABASE}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{POSTGRES_DATABASE}"'))
    admin.dispose()
    return f"{POSTGRES_SERVER}/{POSTGRES_DATABASE}", bool(reuse and exists)


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> str:
    wall, cpu = clock()
    return f"{wall - start[0]:.1f} s wall, {cpu - start[1]:.1f} s CPU"


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--families", type=int, default=1_000_000)
    parser.add_argument("--offers", type=int, default=100_000)
    parser.add_argument("--program", default="kz.asp")
    parser.add_argument("--period", default="2026-03")
    parser.add_argument("--messages", type=int, default=5_000, help="HTTP gateway sends")
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--only-events", action="store_true", help="Skip to the life events.")
    args = parser.parse_args()

    url, populated = store_url(args.store, args.reuse)
    os.environ["SOCIALCARD_DATABASE_URL"] = url
    os.environ.setdefault("SOCIALCARD_LOG_LEVEL", "WARNING")
    os.environ["SOCIALCARD_PROACTIVE__OUTBOX_FILE"] = str(ROOT / "var" / "bench" / "sms.jsonl")
    os.environ["SOCIALCARD_PROACTIVE__PACK_PATH"] = str(ROOT / "packs" / "kz")

    from socialcard.core.db import get_engine, session_scope
    from socialcard.core.logging import configure_logging
    from socialcard.core.metadata import metadata
    from socialcard.core.migrate import upgrade
    from socialcard.proactive import eligibility, jobs
    from socialcard.proactive.config import ProactiveSettings
    from socialcard.proactive.gateways import HttpGateway, OutgoingSms
    from socialcard.proactive.models import Message, Offer
    from socialcard.registry import snapshot as registry_snapshot
    from socialcard.registry.population.loader import generate_population
    from socialcard.rules.engine.periods import Period
    from tests.proactive.provider import ProviderState

    configure_logging("WARNING", json=False)
    engine = get_engine()
    upgrade(engine)
    print(f"store {args.store}; {load()}")
    if not populated:
        start = clock()
        generate_population(engine, families=args.families, seed=11)
        print(f"generated {args.families:,} families: {since(start)}")
    if args.only_events:
        life_events(args)
        return 0
    with engine.begin() as conn:  # a fresh campaign each run; the population is kept
        for table in reversed(metadata().sorted_tables):
            if table.name.startswith("proactive_") or table.name == "registry_event_cursor":
                conn.execute(table.delete())

    # 1. eligibility (rules engine over the registry snapshot), reported separately
    start = clock()
    snapshot = registry_snapshot.registry_snapshot(url, Period.parse(args.period))
    print(
        f"snapshot {snapshot[0].num_rows:,} persons, {snapshot[1].num_rows:,} facts: {since(start)}"
    )
    start = clock()
    candidates = list(
        itertools.islice(
            eligibility.batch_candidates(snapshot, program_id=args.program, period=args.period),
            args.offers,
        )
    )
    print(
        f"eligibility {args.program} {args.period}: {len(candidates):,} candidates: {since(start)}"
    )
    del snapshot

    # 2. the campaign's writes: offers and their messages
    best = None
    start = clock()
    result = jobs.run_campaign(program_id=args.program, period=args.period, candidates=candidates)
    wall = time.perf_counter() - start[0]
    with session_scope() as session:
        offers = session.scalar(select(func.count()).select_from(Offer))
        messages = session.scalar(select(func.count()).select_from(Message))
    print(
        f"CAMPAIGN writes: {result.offered:,} offers ({offers:,}), {messages:,} messages:"
        f" {since(start)}; {load()}"
    )
    best = wall

    # 3. the HTTP gateway against a provider in its own process
    provider = subprocess.Popen(
        [sys.executable, "-m", "tests.proactive.provider"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert provider.stdout is not None
        provider_url = provider.stdout.readline().strip()
        rates: dict[int, list[float]] = {1: [], 100: []}
        for batch_size in (1, 100):
            settings = ProactiveSettings(
                gateway="http",
                sms_url=provider_url,
                sms_api_key=SecretStr(ProviderState().api_key),
                sms_rate_per_second=100_000,
                sms_concurrency=8,
                sms_batch_size=batch_size,
            )
            gateway = HttpGateway(settings)
            gateway.send_many([OutgoingSms(f"w{batch_size}-{i}", "+7701", "x") for i in range(200)])
            for repeat in range(3):
                batch = [
                    OutgoingSms(f"b{batch_size}-{repeat}-{i}", f"+7701{i:07d}", "Сізге төлем")
                    for i in range(args.messages)
                ]
                start = clock()
                results = gateway.send_many(batch)
                wall_s = time.perf_counter() - start[0]
                assert all(r.ok for r in results)
                rate = len(batch) / wall_s
                rates[batch_size].append(rate)
                print(
                    f"HTTP gateway ({batch_size} per request): {len(batch):,} messages"
                    f" {since(start)} = {rate:,.0f}/s; {load()}"
                )
            gateway.close()
        print(
            f"HTTP gateway best {max(rates[1]):,.0f} messages/s one per request,"
            f" {max(rates[100]):,.0f}/s 100 per request"
        )
    finally:
        provider.terminate()
        provider.wait()

    p99 = life_events(args)
    print(
        f"SUMMARY campaign {best:.1f} s; gateway {max(rates[1]):,.0f}/s;"
        f" event p99 {p99 * 1000:.0f} ms"
    )
    return 0


def life_events(args: argparse.Namespace) -> float:
    """Births on the store: from the event's commit to its offer committed (one-shot pass)."""
    from socialcard.core.db import session_scope
    from socialcard.proactive import service
    from socialcard.proactive.models import Offer
    from socialcard.registry import events as registry_events
    from socialcard.registry.enums import EventKind
    from socialcard.registry.models import FamilyMember, Person

    latencies = []
    with session_scope() as session:
        family_ids = [
            row[0]
            for row in session.execute(
                select(FamilyMember.family_id)
                .where(FamilyMember.until_on.is_(None))
                .group_by(FamilyMember.family_id)
                .having(func.count() == 2)
                .limit(args.events + 1)
            )
        ]
    born = date(2026, 3, 10)
    for index, family_id in enumerate(family_ids):
        with session_scope() as session:
            baby = Person(
                national_id=f"9{family_id:011d}"[-12:],
                last_name="Bench",
                first_name="Baby",
                birth_on=born,
                sex="F",
                region_kato="750000000",
            )
            session.add(baby)
            session.flush()
            session.add(
                FamilyMember(family_id=family_id, person_id=baby.id, role="child", from_on=born)
            )
            registry_events.record_events(
                session, [registry_events.NewEvent(EventKind.BIRTH, baby.id, family_id, born, {})]
            )
        start_event = time.perf_counter()
        with session_scope() as session:
            service.process_events(session)
        with session_scope() as session:
            found = session.scalar(
                select(func.count()).select_from(Offer).where(Offer.entity_id == baby.id)
            )
        assert found, "no offer for the birth"
        if index == 0:  # the watcher's first event compiles the pack: a one-off start-up cost
            print(f"first event (start-up): {(time.perf_counter() - start_event) * 1000:.0f} ms")
            continue
        latencies.append(time.perf_counter() - start_event)
    print("slowest ms:", [round(x * 1000) for x in sorted(latencies)[-5:]])
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"LIFE EVENT -> offer: n={len(latencies)} p50 {p50 * 1000:.0f} ms,"
        f" p99 {p99 * 1000:.0f} ms; {load()}"
    )
    return p99


if __name__ == "__main__":
    sys.exit(main())
