"""Benchmark: import a generated person CSV (about 1% bad rows) into a fresh store.

    .venv/bin/python benchmarks/bench_import.py --rows 1000000 --store both

Generates var/bench/persons_<rows>.csv once (valid ИИН from identifiers.make_iin; ~1% bad rows
of varied kinds), imports it into a fresh SQLite file or a fresh PostgreSQL database
(`socialcard_bench_import`), and prints rows/s, the read/validate/prepare/write split, the CPU
per row (importer and PostgreSQL backend), peak RSS, the machine's load and the count checks
(accepted + quarantined = total, and as many persons as accepted rows). `--profile` profiles the
importing thread only; the writer thread mostly waits for the store (see the backend CPU).
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import os
import pstats
import random
import resource
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from socialcard.core.db import build_engine
from socialcard.core.migrate import upgrade
from socialcard.registry.identifiers import make_iin
from socialcard.registry.ingestion import service
from socialcard.registry.models import Event, Person, QuarantinedRow
from socialcard.registry.regions import REGIONS

BENCH_DIR = Path("var") / "bench"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_DB = "socialcard_bench_import"
COLUMNS = (
    "national_id", "last_name", "first_name", "patronymic", "birth_on", "sex", "phone",
    "language", "region_kato", "address", "death_on",
)  # fmt: skip
LAST = ["Ахметов", "Серикбаев", "Иванов", "Нурланов", "Жумабаев", "Ким", "Омаров", "Садыков"]
FIRST_M = ["Нурлан", "Ерлан", "Алексей", "Данияр", "Арман", "Тимур", "Бауыржан"]
FIRST_F = ["Айгуль", "Динара", "Мария", "Асель", "Жанар", "Гульнара", "Алия"]
BAD_KINDS = (
    "check_digit", "region", "future_birth", "sex_mismatch", "bad_date", "no_last_name",
    "bad_phone", "short_row",
)  # fmt: skip


def generate(path: Path, rows: int, seed: int = 7) -> int:
    """Write the CSV; returns how many rows are bad on purpose."""
    rng = random.Random(seed)
    regions = [code + "1110000" for code in REGIONS]
    start = date(1935, 1, 1)
    bad = 0
    used: set[str] = set()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        n = 0
        while n < rows:
            birth = start + timedelta(days=rng.randrange(32_000))
            sex = rng.choice("MF")
            iin = make_iin(birth, sex, rng.randrange(10_000))
            if iin is None or iin in used:
                continue
            used.add(iin)
            female = sex == "F"
            base = rng.choice(LAST)
            last = base + "а" if female and base != "Ким" else base
            row = [
                iin,
                last,
                rng.choice(FIRST_F if female else FIRST_M),
                "",
                birth.isoformat(),
                sex,
                f"+7701{rng.randrange(10_000_000):07d}" if rng.random() < 0.6 else "",
                rng.choice(("kk", "ru")),
                rng.choice(regions),
                f"ул. Абая {rng.randrange(1, 300)}, кв. {rng.randrange(1, 200)}",
                "",
            ]
            if rng.random() < 0.01:
                bad += 1
                kind = rng.choice(BAD_KINDS)
                if kind == "check_digit":
                    row[0] = iin[:11] + str((int(iin[11]) + 1) % 10)
                elif kind == "region":
                    row[8] = "990000000"
                elif kind == "future_birth":
                    row[4] = "2099-01-01"
                elif kind == "sex_mismatch":
                    row[5] = "M" if female else "F"
                elif kind == "bad_date":
                    row[4] = "31.12.1980"
                elif kind == "no_last_name":
                    row[1] = ""
                elif kind == "bad_phone":
                    row[6] = "12345"
                else:
                    row = row[:5]
            writer.writerow(row)
            n += 1
    return bad


def _own_cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


def _backend_pid(session: Session) -> int:
    return int(session.scalar(text("SELECT pg_backend_pid()")) or 0)


def _proc_cpu(pid: int | None) -> float:
    """CPU seconds of a local process (the PostgreSQL backend serving the import)."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fresh_store(store: str) -> str:
    if store == "postgres":
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{PG_DB}"'))
        admin.dispose()
        return PG_ADMIN.rsplit("/", 1)[0] + "/" + PG_DB
    db = BENCH_DIR / "bench_import.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{db}"


def run(store: str, path: Path, rows: int, bad: int, args: argparse.Namespace) -> None:
    url = fresh_store(store)
    engine = build_engine(url)
    upgrade(engine)
    profiler = cProfile.Profile() if args.profile else None
    load_before = os.getloadavg()[0]
    cpu_before = _own_cpu()
    started = time.perf_counter()
    with Session(engine) as session:
        backend = _backend_pid(session) if store == "postgres" else None
        backend_before = _proc_cpu(backend)
        if profiler:
            profiler.enable()
        outcome = service.import_file(
            session,
            source="persons",
            path=path,
            checkpoint=session.commit,
            workers=service.default_workers(path) if args.workers is None else args.workers,
            chunk_rows=args.chunk_rows,
        )
        session.commit()
        if profiler:
            profiler.disable()
        backend_cpu = _proc_cpu(backend) - backend_before
    elapsed = time.perf_counter() - started
    own_cpu, workers_cpu = (a - b for a, b in zip(_own_cpu(), cpu_before, strict=True))
    with Session(engine) as session:
        persons = session.scalar(select(func.count()).select_from(Person))
        quarantined = session.scalar(select(func.count()).select_from(QuarantinedRow))
        events = session.scalar(select(func.count()).select_from(Event))
    engine.dispose()
    result, stats = outcome.result, outcome.stats
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"--- {store}: {rows:,} rows, workers={stats.workers}, chunks={stats.chunks}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(f"time {elapsed:.1f} s  ->  {rows / elapsed:,.0f} rows/s")
    print(
        f"split: read {stats.read_seconds:.1f} s, validate {stats.validate_seconds:.1f} s "
        f"({'in workers, overlapped' if stats.workers else 'in process'}), "
        f"prepare {stats.prepare_seconds:.1f} s, write {stats.write_seconds:.1f} s"
    )
    cpu = own_cpu + workers_cpu + backend_cpu
    print(
        f"cpu: importer {own_cpu:.1f} s, workers {workers_cpu:.1f} s, "
        f"postgres backend {backend_cpu:.1f} s; total {cpu:.1f} s = {cpu / rows * 1e6:.0f} us/row"
    )
    print(f"peak RSS: importer {rss_self:.0f} MiB, largest worker {rss_children:.0f} MiB")
    # Other work on the machine shows in the wall time; the cpu line above does not depend on it.
    print(f"load (1-minute average): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(
        f"rows total {result.rows_total:,}, accepted {result.rows_accepted:,}, "
        f"quarantined {result.rows_rejected:,} (generated bad {bad:,}); "
        f"persons {persons:,}, quarantine rows {quarantined:,}, events {events:,}"
    )
    assert result.rows_total == rows
    assert result.rows_accepted + result.rows_rejected == result.rows_total
    assert result.rows_rejected == bad == quarantined
    assert persons == result.rows_accepted
    assert events == 0  # registering persons is registry upkeep, not a life event
    print("counts verified")
    if profiler:
        out = BENCH_DIR / f"bench_import_{store}.prof"
        profiler.dump_stats(out)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        print(f"profile written to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--workers", type=int, default=None, help="validation processes (default: as the CLI)"
    )
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--profile", action="store_true", help="cProfile the importing process")
    args = parser.parse_args()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path = BENCH_DIR / f"persons_{args.rows}.csv"
    bad_file = path.with_suffix(".bad")
    if not path.exists() or not bad_file.exists():
        started = time.perf_counter()
        bad = generate(path, args.rows)
        bad_file.write_text(str(bad))
        size_mb = path.stat().st_size / 1e6
        print(f"generated {path} ({size_mb:.0f} MB) in {time.perf_counter() - started:.0f} s")
    bad = int(bad_file.read_text())
    stores = ("sqlite", "postgres") if args.store == "both" else (args.store,)
    for store in stores:
        run(store, path, args.rows, bad, args)


if __name__ == "__main__":
    main()
