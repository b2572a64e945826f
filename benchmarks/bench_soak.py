"""Soak: mixed traffic at about 80 % of the measured capacity for ten minutes (issue 11, item 9).

A real server (uvicorn, 2 workers) on PostgreSQL with the demo's region (`socialcard demo
--no-serve`) takes, at once: operator reads (a family with purpose, a name search, offers),
purchases at 32 terminals, SMS replies through the signed webhook, citizens' consent pages,
and requests with bad keys. First the capacity of that mix is measured (closed loop, 32
clients); then the soak sends it open loop at `--load` of it (Poisson arrivals, latency from
the scheduled time). Consent pages and bad keys come at a fixed rate under the per-address
limit (all traffic comes from one address here).

Pass: no 5xx; the server's memory flat (the last minute's RSS within 10 % of the second
minute's); `wallet check` clean at the end, and `audit verify` where the store has an audit
hash chain (`socialcard audit verify`).

    python benchmarks/bench_soak.py --seconds 600
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from socialcard.core.db import build_engine, run_before_commit
from socialcard.core.logging import configure_logging
from socialcard.proactive import links
from socialcard.proactive import service as proactive_service
from socialcard.security import service as security_service
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
PREFIX = os.environ.get("SOCIALCARD_TEST_DB_PREFIX", "sc_soak")
REGION = "750000000"
TERMINALS = 32
OPERATOR_KEYS = 4
# Shares of the proportional traffic; consent pages and bad keys are fixed rates (below).
MIX = {"purchase": 0.6, "family": 0.2, "search": 0.07, "offers": 0.05, "sms": 0.08}
FIXED = {"consent": 6.0, "bad_key": 4.0}  # per second, under the 20/s per-address limit


@dataclass
class Fixture:
    url: str
    operators: list[str]
    terminals: list[str]
    tokens: list[str]
    families: list[int]
    links: list[str]
    phones: list[str]


def scratch_postgres(name: str) -> str:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def prepare(families: int, vouchers: int) -> Fixture:
    """The demo's region in a scratch database, plus keys, terminals and cash vouchers."""
    url = scratch_postgres(f"{PREFIX}_bench_soak")
    env = {**os.environ, "SOCIALCARD_DATABASE_URL": url, "SOCIALCARD_LOG_LEVEL": "WARNING"}
    subprocess.run(
        [str(BIN / "socialcard"), "demo", "--families", str(families), "--no-serve"],
        env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    engine = build_engine(url)
    now = datetime.now(UTC)
    with Session(engine) as session:
        operators = [
            security_service.create_api_key(session, name=f"soak-{n}", role="operator").key
            for n in range(OPERATOR_KEYS)
        ]
        merchant = merchant_service.create_merchant(
            session,
            data=MerchantCreate(
                bin=merchant_service.make_bin("05034008888"),
                name="Soak pharmacy",
                category="pharmacy",
                licensed=True,
            ),
        )
        terminals = [
            merchant_service.create_terminal(session, merchant_id=merchant.id, code=f"S{n}").key
            for n in range(TERMINALS)
        ]
        each = 10**10
        funding_service.allocate_budget(
            session,
            idempotency_key="soak",
            allocation=BudgetAllocation(
                program_id="kz.soak", region_kato=REGION, amount_minor=each * vouchers
            ),
        )
        persons = [
            int(r[0])
            for r in session.execute(
                text("SELECT id FROM registry_person ORDER BY id LIMIT :n"), {"n": vouchers}
            )
        ]
        tokens = []
        for n, person_id in enumerate(persons):
            funded = funding_service.fund_benefit(
                session, idempotency_key=f"soak-{n}", person_id=person_id, program_id="kz.soak",
                region_kato=REGION, amount_minor=each, benefit_type="cash", period=f"{now:%Y-%m}",
            )  # fmt: skip
            voucher_service.activate(
                session, person_id=person_id, voucher_id=funded.voucher_id, utility_account=None
            )
            row = voucher_repository.lock_voucher(session, voucher_id=funded.voucher_id)
            tokens.append(str(row.token))
        family_ids = [int(r[0]) for r in session.execute(text("SELECT id FROM registry_family"))]
        offers = session.execute(
            text(
                "SELECT o.id, p.phone FROM proactive_offer o "
                "JOIN registry_person p ON p.id = o.person_id"
            )
        ).all()
        link_tokens = [
            links.make_token(int(o.id), expires_at=now + timedelta(days=1)) for o in offers
        ]
        phones = [str(o.phone) for o in offers if o.phone]
        run_before_commit(session)
        session.commit()
    engine.dispose()
    return Fixture(url, operators, terminals, tokens, family_ids, link_tokens, phones)


# --- a lean HTTP/1.1 client (a library would cost more CPU than the server under test) -------


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> int:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: soak\r\nContent-Length: {len(body)}\r\n"
            f"{lines}\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, close = 0, False
        for line in head.split(b"\r\n"):
            lowered = line.lower()
            if lowered.startswith(b"content-length:"):
                length = int(line[15:])
            elif lowered.startswith(b"connection:") and b"close" in lowered:
                close = True
        await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return status


@dataclass
class Tally:
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: Counter[str] = field(default_factory=Counter)

    def total(self) -> int:
        return sum(sum(c.values()) for c in self.statuses.values())

    def server_errors(self) -> int:
        return sum(n for c in self.statuses.values() for s, n in c.items() if s >= 500)


class Traffic:
    """One request of each kind, built from the fixture (deterministic per seed)."""

    def __init__(self, fixture: Fixture, seed: int) -> None:
        self.f, self.rng, self.serial = fixture, random.Random(seed), 0

    def next(self, kind: str) -> tuple[str, str, dict[str, str], bytes]:
        f, rng = self.f, self.rng
        self.serial += 1
        operator = {"X-API-Key": rng.choice(f.operators)}
        if kind == "purchase":
            amount = 100 + rng.randrange(900)
            token = rng.choice(f.tokens)
            body = (
                f'{{"token":"{token}","items":[{{"sku":"soap","category":"other","quantity":1,'
                f'"amount_minor":{amount}}}],"capture":true}}'
            ).encode()
            headers = {
                "X-Terminal-Key": f.terminals[self.serial % len(f.terminals)],
                "Idempotency-Key": f"soak-{os.getpid()}-{self.serial}",
                "Content-Type": "application/json",
            }
            return "POST", "/api/v1/business/authorizations", headers, body
        if kind == "family":
            family = rng.choice(f.families)
            return "GET", f"/api/v1/families/{family}?purpose=case_review", operator, b""
        if kind == "search":
            name = rng.choice(["Аб", "Ах", "Се", "Жу", "Ка", "Ну", "Ом", "Ер"])
            path = f"/api/v1/persons?purpose=case_review&name={quote(name)}&size=20"
            return "GET", path, operator, b""
        if kind == "offers":
            page = 1 + rng.randrange(5)
            return "GET", f"/api/v1/proactive/offers?purpose=case_review&page={page}", operator, b""
        if kind == "sms":
            phone = rng.choice(f.phones) if f.phones and rng.random() < 0.7 else "+77009990000"
            text_ = rng.choice(["1", "2", "да", "нет", "иә", "what?"])
            payload = {"id": f"soak-{os.getpid()}-{self.serial}", "from": phone, "text": text_}
            body = json.dumps(payload).encode()
            headers = {
                "X-Signature": proactive_service.webhook_signature(body),
                "Content-Type": "application/json",
            }
            return "POST", "/api/v1/proactive/sms/inbound", headers, body
        if kind == "consent":
            return "GET", f"/consent/{rng.choice(f.links)}", {}, b""
        if kind == "bad_key":
            bad = {"X-API-Key": "sc_" + secrets.token_urlsafe(32)}
            return "GET", f"/api/v1/families/{rng.choice(f.families)}?purpose=case_review", bad, b""
        raise ValueError(kind)


async def closed_loop(port: int, traffic: Traffic, clients: int, seconds: float) -> float:
    """The proportional mix's capacity: requests/s with `clients` back-to-back clients."""
    kinds, weights = list(MIX), list(MIX.values())
    stop, done = time.perf_counter() + seconds, 0

    async def client() -> None:
        nonlocal done
        connection = Connection(port)
        while time.perf_counter() < stop:
            kind = traffic.rng.choices(kinds, weights)[0]
            await connection.request(*traffic.next(kind))
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.perf_counter() - started)


async def open_loop(
    port: int,
    traffic: Traffic,
    rates: dict[str, float],
    seconds: float,
    tally: Tally,
    sample: Callable[[], None],
) -> None:
    """Poisson arrivals per kind; `workers` connections serve a shared queue; latency counts
    from the scheduled time (so a server that falls behind shows it)."""
    queue: asyncio.Queue[tuple[str, float] | None] = asyncio.Queue()
    start = time.perf_counter()
    stop = start + seconds

    async def arrivals(kind: str, rate: float) -> None:
        rng = random.Random(hash(kind))
        at = start
        while True:
            at += rng.expovariate(rate)
            if at >= stop:
                return
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((kind, at))

    async def worker() -> None:
        connection = Connection(port)
        while (job := await queue.get()) is not None:
            kind, scheduled = job
            try:
                status = await connection.request(*traffic.next(kind))
            except (OSError, asyncio.IncompleteReadError) as exc:
                tally.failures[f"{kind}: {type(exc).__name__}"] += 1
                connection = Connection(port)
                continue
            tally.statuses[kind][status] += 1
            tally.latencies[kind].append(time.perf_counter() - scheduled)

    async def sampler() -> None:
        while time.perf_counter() < stop:
            sample()
            await asyncio.sleep(5)

    workers = [asyncio.create_task(worker()) for _ in range(96)]
    await asyncio.gather(*(arrivals(k, r) for k, r in rates.items() if r > 0), sampler())
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)


def _rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants (the uvicorn workers), from /proc."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1024


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _audit_verify(env: dict[str, str]) -> str:
    """`socialcard audit verify` where the store has the audit hash chain; else why not."""
    probe = subprocess.run(
        [str(BIN / "socialcard"), "audit", "verify", "--help"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return "not available (no `socialcard audit verify` in this build)"
    run = subprocess.run(
        [str(BIN / "socialcard"), "audit", "verify"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    verdict = "clean" if run.returncode == 0 else "FAILED"
    return f"{verdict}: {run.stdout.strip()[-300:]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--probe-seconds", type=float, default=30.0)
    parser.add_argument("--load", type=float, default=0.8, help="share of the capacity")
    parser.add_argument("--families", type=int, default=5_000)
    parser.add_argument("--vouchers", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8772)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    configure_logging("WARNING", json=False)

    began = time.perf_counter()
    fixture = prepare(args.families, args.vouchers)
    print(
        f"prepared in {time.perf_counter() - began:.0f}s: {len(fixture.families)} families, "
        f"{len(fixture.tokens)} vouchers, {len(fixture.links)} consent links",
        flush=True,
    )
    env = {
        **os.environ,
        "SOCIALCARD_DATABASE_URL": fixture.url,
        "SOCIALCARD_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "socialcard.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(args.port), "--workers", str(args.workers),
         "--log-level", "warning", "--no-access-log"],
        env=env, cwd=ROOT,
    )  # fmt: skip
    traffic = Traffic(fixture, args.seed)
    tally = Tally()
    rss: list[tuple[float, float]] = []
    try:
        for _ in range(150):
            try:
                if httpx.get(f"http://127.0.0.1:{args.port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        asyncio.run(closed_loop(args.port, traffic, 32, 3))  # warm up
        capacity = asyncio.run(closed_loop(args.port, traffic, 32, args.probe_seconds))
        target = capacity * args.load
        rates = {kind: target * share for kind, share in MIX.items()} | FIXED
        load_before = os.getloadavg()
        print(
            f"capacity of the mix: {capacity:.0f} req/s (closed loop, 32 clients); soak at "
            f"{args.load:.0%}: {target:.0f} req/s + consent {FIXED['consent']:.0f}/s + bad keys "
            f"{FIXED['bad_key']:.0f}/s for {args.seconds:.0f}s; load {load_before[0]:.2f}",
            flush=True,
        )
        t0 = time.perf_counter()

        def sample() -> None:
            rss.append((time.perf_counter() - t0, _rss_mib(server.pid)))

        asyncio.run(open_loop(args.port, traffic, rates, args.seconds, tally, sample))
        wall = time.perf_counter() - t0
        sample()
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"sent {tally.total()} requests in {wall:.0f}s ({tally.total() / wall:.0f}/s)")
    for kind in list(MIX) + list(FIXED):
        ms = [x * 1000 for x in tally.latencies[kind]]
        statuses = dict(sorted(tally.statuses[kind].items()))
        print(
            f"  {kind:<9} {len(ms):>7} p50={_percentile(ms, 0.5):6.1f}ms "
            f"p99={_percentile(ms, 0.99):7.1f}ms statuses={statuses}"
        )
    if tally.failures:
        print(f"  connection failures: {dict(tally.failures)}")
    second = [m for t, m in rss if 60 <= t < 120] or [rss[0][1]]
    last = [m for t, m in rss if t >= wall - 60] or [rss[-1][1]]
    growth = statistics.median(last) / statistics.median(second) - 1
    print(
        f"server RSS: start {rss[0][1]:.0f} MiB, second minute {statistics.median(second):.0f}, "
        f"last minute {statistics.median(last):.0f}, max {max(m for _, m in rss):.0f} "
        f"(growth {growth:+.1%})"
    )
    engine = build_engine(fixture.url)
    with Session(engine) as session:
        check = wallet_service.check(session)
    engine.dispose()
    print(f"wallet check: {'clean' if check.ok else check.problems[:5]} {check.counts}")
    print(f"audit verify: {_audit_verify(env)}")
    errors = tally.server_errors() + sum(tally.failures.values())
    flat = growth < 0.10
    verdict = "PASS" if errors == 0 and flat and check.ok else "FAIL"
    print(
        f"soak {verdict}: 5xx and connection failures {errors}, memory "
        f"{'flat' if flat else 'GROWING'}, wallet {'clean' if check.ok else 'BROKEN'} "
        f"(load {os.getloadavg()[0]:.2f})"
    )
    sys.exit(0 if verdict == "PASS" else 1)


if __name__ == "__main__":
    main()
