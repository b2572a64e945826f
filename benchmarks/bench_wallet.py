"""Benchmark: authorize-and-capture redemptions through the HTTP API with concurrent clients.

Target (issue 5): at least 1,000 redemptions/s on PostgreSQL with 32 concurrent clients,
p99 at most 50 ms; at least 300/s on SQLite. On PostgreSQL the run also measures pgbench's
built-in TPC-B-like rate on the same server (a scratch database with the sc_wallet prefix), and
the wallet's rate is reported as a ratio to it.

Closed loop: each client sends its next redemption when the previous answer arrives. Each
redemption pays with a different citizen's voucher (as at a real till), with a fresh
Idempotency-Key. `--flow two-step` authorizes then captures (two calls per redemption).
Each run prints the rate, p50/p99, and the server's and the client's CPU per redemption; on
PostgreSQL the last line is the best run's ratio to pgbench.

    python benchmarks/bench_wallet.py --store postgres --seconds 15
    python benchmarks/bench_wallet.py --store sqlite --workers 1

Server: uvicorn with `--workers` (default 2; use 1 for SQLite, a single writer), `--loop`
(uvloop), `--http` (httptools), `--backlog`, access log off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from socialcard.core.db import build_engine, run_before_commit
from socialcard.core.logging import configure_logging
from socialcard.core.migrate import upgrade
from socialcard.registry.models import Person
from socialcard.wallet import service as wallet_service
from socialcard.wallet.funding import service as funding_service
from socialcard.wallet.funding.schemas import BudgetAllocation
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.merchants.schemas import MerchantCreate
from socialcard.wallet.vouchers import repository as voucher_repository
from socialcard.wallet.vouchers import service as voucher_service

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PREFIX = os.environ.get("SOCIALCARD_TEST_DB_PREFIX", "sc_wallet")


def scratch_postgres(name: str) -> str:
    """A new, empty PostgreSQL database of this name (dropped first if it exists)."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def prepare_store(store: str, vouchers: int, terminals: int) -> tuple[str, list[str], list[str]]:
    """A fresh store with one merchant, `terminals` terminals (one per client, as tills are:
    each terminal has its own rate limit) and `vouchers` funded food vouchers."""
    if store == "sqlite":
        path = ROOT / "var" / "bench" / f"{PREFIX}_wallet.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        url = scratch_postgres(f"{PREFIX}_bench_wallet")
    engine = build_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    period = f"{now:%Y-%m}"
    with Session(engine) as session:
        merchant = merchant_service.create_merchant(
            session,
            data=MerchantCreate(
                bin=merchant_service.make_bin("05034009999"),
                name="Bench grocery",
                category="grocery",
            ),
        )
        keys = [
            merchant_service.create_terminal(session, merchant_id=merchant.id, code=f"T{n}").key
            for n in range(terminals)
        ]
        each = 10**9
        funding_service.allocate_budget(
            session,
            idempotency_key="bench",
            allocation=BudgetAllocation(
                program_id="kz.food", region_kato="751110000", amount_minor=each * vouchers
            ),
        )
        tokens = []
        for i in range(vouchers):
            person = Person(
                national_id=f"B{i:011d}", last_name="Bench", first_name="Bench",
                birth_on=now.date().replace(year=1980), sex="F", region_kato="751110000",
            )  # fmt: skip
            session.add(person)
            session.flush()
            funded = funding_service.fund_benefit(
                session, idempotency_key=f"f{i}", person_id=person.id, program_id="kz.food",
                region_kato="751110000", amount_minor=each, benefit_type="food", period=period,
            )  # fmt: skip
            voucher_service.activate(
                session, person_id=person.id, voucher_id=funded.voucher_id, utility_account=None
            )
            row = voucher_repository.lock_voucher(session, voucher_id=funded.voucher_id)
            tokens.append(str(row.token))
        run_before_commit(session)
        session.commit()
    engine.dispose()
    return url, keys, tokens


async def _post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, headers: str, body: bytes
) -> tuple[int, bytes]:
    # A minimal keep-alive HTTP/1.1 client: a client library costs more CPU per request than
    # the server under test on this 2-core machine, and would distort the measurement.
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{headers}\r\n".encode()
        + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def run_load(
    port: int, keys: list[str], tokens: list[str], clients: int, seconds: float, flow: str, tag: str
) -> tuple[list[float], int, int]:
    latencies: list[float] = []
    approved = errors = 0
    stop_at = time.perf_counter() + seconds
    item = b'[{"sku":"bread","category":"food.socially_significant","quantity":1,"amount_minor":'

    async def client(n: int) -> None:
        nonlocal approved, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        rng = random.Random(n)
        key = keys[n % len(keys)]
        i = 0
        while time.perf_counter() < stop_at:
            token = tokens[rng.randrange(len(tokens))]
            amount = 100 + rng.randrange(900)
            idem = f"{tag}-{n}-{i}"
            i += 1
            capture = b"true" if flow == "one-step" else b"false"
            body = b'{"token":"%s","items":%s%d}],"capture":%s,"allow_partial":false}' % (
                token.encode(), item, amount, capture,
            )  # fmt: skip
            headers = f"X-Terminal-Key: {key}\r\nIdempotency-Key: {idem}\r\n"
            started = time.perf_counter()
            status, answer = await _post(
                reader, writer, "/api/v1/business/authorizations", headers, body
            )
            if status == 200 and flow == "two-step":
                hold = json.loads(answer)["authorization_id"]
                status, answer = await _post(
                    reader, writer, f"/api/v1/business/authorizations/{hold}/capture",
                    f"X-Terminal-Key: {key}\r\nIdempotency-Key: {idem}-c\r\n", b"{}",
                )  # fmt: skip
            latencies.append(time.perf_counter() - started)
            if status == 200 and b'"captured"' in answer:
                approved += 1
            else:
                errors += 1
        writer.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies, approved, errors


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its descendants (the uvicorn workers), from /proc."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def pgbench_tps(clients: int, seconds: int) -> float:
    """pgbench's built-in TPC-B-like rate on the same server (scratch database, scale 10)."""
    name = f"{PREFIX}_pgbench"
    scratch_postgres(name)
    subprocess.run(
        ["pgbench", "-h", "127.0.0.1", "-U", "postgres", "-i", "-s", "10", "-q", name],
        check=True, capture_output=True,
    )  # fmt: skip
    out = subprocess.run(
        ["pgbench", "-h", "127.0.0.1", "-U", "postgres", "-c", str(clients), "-j", "2",
         "-T", str(seconds), "-n", name],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    match = re.search(r"tps = ([0-9.]+)", out)
    assert match, out
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--vouchers", type=int, default=2000)
    parser.add_argument("--flow", choices=("one-step", "two-step"), default="one-step")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--port", type=int, default=8771)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--http", choices=("httptools", "h11"), default="httptools")
    parser.add_argument("--backlog", type=int, default=2048)
    args = parser.parse_args()
    configure_logging("WARNING", json=False)  # the setup's funding events are not the output

    url, keys, tokens = prepare_store(args.store, args.vouchers, args.clients)
    env = {**os.environ, "SOCIALCARD_DATABASE_URL": url, "SOCIALCARD_LOG_LEVEL": "WARNING"}
    # uvicorn as `socialcard serve` runs it (access log off), with the event loop, HTTP parser
    # and backlog explicit so that they can be compared.
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "socialcard.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(args.port), "--workers", str(args.workers),
         "--loop", args.loop, "--http", args.http, "--backlog", str(args.backlog),
         "--log-level", "warning", "--no-access-log"],
        env=env,
    )  # fmt: skip
    try:
        for _ in range(150):
            try:
                if httpx.get(f"http://127.0.0.1:{args.port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        asyncio.run(run_load(args.port, keys, tokens, args.clients, 2, args.flow, "warm"))
        rates: list[float] = []
        for run in range(args.repeat):
            load = os.getloadavg()
            cpu0, client0, wall0 = (
                _cpu_seconds(server.pid),
                time.process_time(),
                time.perf_counter(),
            )
            latencies, approved, errors = asyncio.run(
                run_load(args.port, keys, tokens, args.clients, args.seconds, args.flow, f"r{run}")
            )
            wall = time.perf_counter() - wall0
            server_cpu, client_cpu = _cpu_seconds(server.pid) - cpu0, time.process_time() - client0
            ms = [x * 1000 for x in latencies]
            rates.append(approved / wall)
            print(
                f"store={args.store} flow={args.flow} clients={args.clients} "
                f"workers={args.workers} "
                f"run={run} redemptions={approved} errors={errors} rate={approved / wall:.0f}/s "
                f"p50={percentile(ms, 0.5):.1f}ms p99={percentile(ms, 0.99):.1f}ms "
                f"max={max(ms):.1f}ms server_cpu={server_cpu:.1f}s "
                f"({server_cpu / max(approved, 1) * 1000:.2f} ms/redemption) "
                f"client_cpu={client_cpu:.1f}s ({client_cpu / max(approved, 1) * 1000:.2f} ms) "
                f"wall={wall:.1f}s load={load[0]:.2f} loop={args.loop} http={args.http}",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    engine = build_engine(url)
    with Session(engine) as session:
        check = wallet_service.check(session)
    engine.dispose()
    print(f"wallet check: {'clean' if check.ok else check.problems[:5]} {check.counts}")
    if args.store == "postgres":
        tps = pgbench_tps(args.clients, 10)
        print(f"pgbench TPC-B-like: {tps:.0f} tps (32 clients, scale 10, 10 s)")
        print(f"ratio, best run to pgbench: {max(rates) / tps:.2f}")


if __name__ == "__main__":
    main()
