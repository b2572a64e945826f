"""Benchmark: read a family with members and facts over HTTP at a fixed request rate.

Target (issue 2): p99 at most 20 ms at 200 requests per second, on SQLite and PostgreSQL.

The load is open-loop: request i is due at start + i / rate and its latency is measured from
that due time, so a slow server cannot hide its queueing (no coordinated omission).

    python benchmarks/bench_family_read.py --store sqlite --families 100000 --rate 200 --seconds 30

Besides the latencies it prints the CPU seconds that the server (uvicorn and its workers, and on
PostgreSQL the backends serving it) and the load generator spent per request during the
measured run, and the load average: on this shared 2-core machine the latencies depend on the
neighbours, the CPU per request does not. The PostgreSQL database is named after
SOCIALCARD_TEST_DB_PREFIX (default `socialcard`), so parallel checkouts do not collide.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


def pg_database(families: int) -> str:
    return f"{os.environ.get('SOCIALCARD_TEST_DB_PREFIX', 'socialcard')}_bench_read_{families}"


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
        name = pg_database(families)
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


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a local process; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def cpu_by_process(url: str, root: int) -> dict[str, dict[int, float]]:
    """CPU seconds so far of the server's processes (uvicorn and its workers) and, on
    PostgreSQL, of the client backends connected to the benchmark's database."""
    groups = {"server": [root, *_children(root)], "backends": []}
    if url.startswith("postgresql"):
        engine = create_engine(url)
        with engine.connect() as conn:
            groups["backends"] = [
                int(p)
                for p in conn.scalars(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                    )
                )
            ]
        engine.dispose()
    return {group: {pid: _proc_cpu(pid) for pid in pids} for group, pids in groups.items()}


def cpu_spent(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float]:
    """CPU seconds per group between two readings; a backend opened in between counts whole,
    one closed in between is missed (the pool keeps its connections, so rarely)."""
    return {
        group: sum(cpu - before[group].get(pid, 0.0) for pid, cpu in now.items())
        for group, now in after.items()
    }


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


async def run_closed(
    host: str, port: int, key: str, ids: tuple[int, int], connections: int, seconds: float
) -> list[float]:
    """Closed loop: each connection sends its next request when the previous one is answered
    (the server's throughput and CPU cost per request; latencies hide queueing here)."""
    latencies: list[float] = []
    rng = random.Random(1)
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        reader, writer = await _connection(host, port)
        while (sent := time.perf_counter()) < deadline:
            path = f"/api/v1/families/{rng.randint(*ids)}?purpose=case_review"
            if await _get(reader, writer, path, key) != 200:
                print("error")
            latencies.append(time.perf_counter() - sent)
        writer.close()

    await asyncio.gather(*(loop() for _ in range(connections)))
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
    parser.add_argument(
        "--closed", type=int, metavar="N", help="closed loop on N connections instead of --rate"
    )
    parser.add_argument("--reuse", action="store_true", help="reuse an existing generated store")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="py-spy samples of the server during the run (collapsed stacks)",
    )
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
        for _ in range(600):  # a loaded machine can take a minute to start the server
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        ids = family_ids(url)
        asyncio.run(run_load("127.0.0.1", args.port, key, ids, args.rate, 3))  # warm-up
        profiler = None
        if args.profile:
            profiler = subprocess.Popen(
                [
                    BIN / "py-spy",
                    "record",
                    "--subprocesses",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "-o",
                    args.profile,
                    "-p",
                    str(server.pid),
                ],
                stdout=subprocess.DEVNULL,
            )
        load_before = os.getloadavg()
        server_before, client_before = cpu_by_process(url, server.pid), time.process_time()
        latencies = asyncio.run(
            run_closed("127.0.0.1", args.port, key, ids, args.closed, args.seconds)
            if args.closed
            else run_load("127.0.0.1", args.port, key, ids, args.rate, args.seconds)
        )
        server_cpu = cpu_spent(server_before, cpu_by_process(url, server.pid))
        client_cpu = time.process_time() - client_before
        load_after = os.getloadavg()
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes the graph when interrupted
            profiler.wait(timeout=60)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    ms = [x * 1000 for x in latencies]
    n = len(ms)
    load = f"closed loop on {args.closed} connections" if args.closed else f"rate={args.rate}/s"
    print(
        f"store={args.store} families={args.families} {load} workers={args.workers} "
        f"requests={n} ({n / args.seconds:.0f}/s) p50={percentile(ms, 0.50):.1f}ms "
        f"p90={percentile(ms, 0.90):.1f}ms "
        f"p99={percentile(ms, 0.99):.1f}ms max={max(ms):.1f}ms"
    )
    print(
        f"cpu per request: server {server_cpu['server'] / n * 1e3:.2f} ms"
        + (
            f", postgres backends {server_cpu['backends'] / n * 1e3:.2f} ms"
            if args.store == "postgres"
            else ""
        )
        + f", load generator {client_cpu / n * 1e3:.2f} ms"
    )
    print(
        "load average (1, 5, 15 min): "
        f"{' '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' '.join(f'{x:.2f}' for x in load_after)} after"
    )


if __name__ == "__main__":
    main()
