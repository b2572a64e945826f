"""Benchmark: read a family with members and facts over HTTP at a fixed request rate.

Target (issue 2): p99 at most 20 ms at 200 requests per second, on SQLite and PostgreSQL.

The load is open-loop: request i is due at start + i / rate and its latency is measured from
that due time, so a slow server cannot hide its queueing (no coordinated omission).

    python benchmarks/bench_family_read.py --store sqlite --families 100000 --rate 200 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select, text

from socialcard.registry.models import Family

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def prepare_store(store: str, families: int, reuse: bool) -> str:
    if store == "sqlite":
        path = ROOT / "var" / "bench" / f"read_{families}.db"
        url = f"sqlite:///{path}"
        if path.exists() and reuse:
            return url
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        name = f"socialcard_bench_read_{families}"
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        admin = create_engine(
            "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if exists and reuse:
                return url
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    env = {**os.environ, "SOCIALCARD_DATABASE_URL": url}
    subprocess.run(
        [BIN / "socialcard", "generate", "--families", str(families), "--seed", "7"],
        check=True,
        env=env,
    )
    return url


def family_ids(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        low, high = conn.execute(select(func.min(Family.id), func.max(Family.id))).one()
    engine.dispose()
    return int(low), int(high)


async def _connection(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port)


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, key: str
) -> int:
    # A minimal keep-alive HTTP/1.1 client: a full client library costs more CPU per request
    # than the server under test on this 2-core machine, and would distort the measurement.
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nX-API-Key: {key}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def run_load(
    host: str, port: int, key: str, ids: tuple[int, int], rate: float, seconds: float
) -> list[float]:
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(await _connection(host, port))
    rng = random.Random(1)

    async def one(due: float, family_id: int) -> None:
        nonlocal errors
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        reader, writer = await pool.get()
        status = await _get(
            reader, writer, f"/api/v1/families/{family_id}?purpose=case_review", key
        )
        pool.put_nowait((reader, writer))
        latencies.append(time.perf_counter() - due)
        if status != 200:
            errors += 1

    start = time.perf_counter() + 0.5
    tasks = [asyncio.create_task(one(start + i / rate, rng.randint(*ids))) for i in range(total)]
    await asyncio.gather(*tasks)
    while not pool.empty():
        _, writer = pool.get_nowait()
        writer.close()
    if errors:
        print(f"errors: {errors}")
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--families", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--reuse", action="store_true", help="reuse an existing generated store")
    args = parser.parse_args()

    url = prepare_store(args.store, args.families, args.reuse)
    env = {**os.environ, "SOCIALCARD_DATABASE_URL": url, "SOCIALCARD_LOG_LEVEL": "WARNING"}
    key = subprocess.run(
        [BIN / "socialcard", "apikey", "create", "--name", "bench", "--role", "operator"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    server = subprocess.Popen(
        [BIN / "socialcard", "serve", "--port", str(args.port), "--workers", str(args.workers)],
        env=env,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        ids = family_ids(url)
        asyncio.run(run_load("127.0.0.1", args.port, key, ids, args.rate, 3))  # warm-up
        latencies = asyncio.run(run_load("127.0.0.1", args.port, key, ids, args.rate, args.seconds))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    ms = [x * 1000 for x in latencies]
    print(
        f"store={args.store} families={args.families} rate={args.rate}/s "
        f"requests={len(ms)} p50={percentile(ms, 0.50):.1f}ms p90={percentile(ms, 0.90):.1f}ms "
        f"p99={percentile(ms, 0.99):.1f}ms max={max(ms):.1f}ms"
    )


if __name__ == "__main__":
    main()
