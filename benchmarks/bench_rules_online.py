"""Benchmark: one family evaluated online with its explanation, phase by phase and over HTTP.

Target (issue 3): p50 <= 10 ms, p99 <= 50 ms for one family with its explanation, on SQLite
and PostgreSQL with a 1M-family registry.

    python benchmarks/bench_rules_online.py --store postgres --calls 2000

Two measurements over the same random family ids:

1. In process, `rules_service.family_eligibility` (what the endpoint calls) plus the commit
   that writes its audit rows, each call split into phases by wrapping the functions it calls:
   `read` (the family's persons, facts and languages), `engine`
   (`OnlineEvaluator.evaluate`), `explain` (the sentences and the decision records), `model`
   (the rest of `evaluate_family`: pack lookup, checks, response model), `json` (the response
   body), `commit` (the audit rows' insert and the commit). `gc` is the time the cyclic garbage
   collector ran during the call (it overlaps the phase it interrupted). The first call of the
   process (pack compile, the period's closures) is reported on its own.
2. Over HTTP (`--http`, default on): `GET /api/v1/families/{id}/eligibility` against
   `socialcard serve` (one worker process) with an operator key, one keep-alive connection,
   latency seen by the client.

Uses the e2e benchmark's store (see bench_rules_e2e.py), generated there. The audit rows the
calls write go to that store's `security_audit_event` (as they would in production).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.orm import Session

from socialcard.core.db import build_engine
from socialcard.core.logging import configure_logging
from socialcard.registry import snapshot as registry_snapshot
from socialcard.rules import service
from socialcard.rules.engine.runtime import OnlineEvaluator
from socialcard.rules.errors import FamilyNotFound
from socialcard.security import service as security_service
from socialcard.security.enums import Purpose, Role
from socialcard.security.schemas import Actor

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
PHASES = ("read", "engine", "explain", "model", "json", "commit")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Clock:
    """Per-call phase times, filled by wrappers around the functions a call goes through."""

    def __init__(self) -> None:
        self.call: dict[str, float] = defaultdict(float)
        self.gc_started = 0.0

    def wrap(self, owner: Any, name: str, phase: str) -> None:
        inner = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.call[phase] += time.perf_counter() - t0

        setattr(owner, name, timed)

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.gc_started = time.perf_counter()
        else:
            self.call["gc"] += time.perf_counter() - self.gc_started
            self.call[f"gc{info['generation']}"] += 1


def in_process(url: str, ids: list[int], period: str) -> None:
    engine = build_engine(url)
    clock = Clock()
    clock.wrap(registry_snapshot, "family_snapshot_with_languages", "read")
    clock.wrap(OnlineEvaluator, "evaluate", "engine")
    clock.wrap(service, "_explained", "explain")
    gc.callbacks.append(clock.on_gc)
    actor = Actor(key_id=None, name="bench", role=Role.OPERATOR.value)
    rows: list[dict[str, float]] = []

    def one(session: Session, family_id: int) -> dict[str, float] | None:
        clock.call = defaultdict(float)
        t0 = time.perf_counter()
        try:
            result = service.family_eligibility(
                session,
                family_id=family_id,
                period=period,
                actor=actor,
                purpose=Purpose.CASE_REVIEW,
            )
        except FamilyNotFound:
            session.rollback()
            return None  # every member died or left: nothing to evaluate
        t1 = time.perf_counter()
        result.model_dump_json()
        t2 = time.perf_counter()
        session.commit()
        t3 = time.perf_counter()
        call = dict(clock.call)
        inside = sum(call.get(p, 0.0) for p in ("read", "engine", "explain"))
        call.update(model=t1 - t0 - inside, json=t2 - t1, commit=t3 - t2, total=t3 - t0)
        return call

    with Session(engine) as session:
        first = None
        for family_id in ids:  # the first evaluable family: compiles the pack and the period
            first = one(session, family_id)
            if first is not None:
                break
        load_before = os.getloadavg()[0]
        cpu0 = time.process_time()
        for family_id in ids:
            call = one(session, family_id)
            if call is not None:
                rows.append(call)
        cpu = time.process_time() - cpu0
    gc.callbacks.remove(clock.on_gc)
    engine.dispose()
    assert first is not None
    print(f"in process: {len(rows)} families (of {len(ids)} ids), {gc.get_freeze_count()} frozen")
    print(
        f"  first call {first['total'] * 1000:.0f} ms (engine {first.get('engine', 0) * 1000:.0f}"
        " ms: pack compile and the period's closures)"
    )
    print(f"  {'phase':8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'mean ms':>8}")
    for phase in (*PHASES, "gc", "total"):
        values = [r.get(phase, 0.0) for r in rows]
        print(
            f"  {phase:8} {pct(values, 0.5):8.2f} {pct(values, 0.9):8.2f} {pct(values, 0.99):8.2f}"
            f" {max(values) * 1000:8.2f} {sum(values) / len(values) * 1000:8.2f}"
        )
    slow = sorted(rows, key=lambda r: r["total"])[-max(1, len(rows) // 100) :]
    print(f"  the slowest 1 % ({len(slow)} calls), mean ms per phase:")
    print(
        "   "
        + "  ".join(
            f"{p} {sum(r.get(p, 0.0) for r in slow) / len(slow) * 1000:.1f}"
            for p in (*PHASES, "gc", "total")
        )
    )
    collections = {g: sum(int(r.get(f"gc{g}", 0)) for r in rows) for g in (0, 1, 2)}
    print(f"  gc collections during the calls: {collections}")
    print(f"  cpu {cpu:.1f} s; load {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")


def operator_key(url: str) -> str:
    engine = build_engine(url)
    with Session(engine) as session:
        key = security_service.create_api_key(session, name="bench_rules_online", role="operator")
        session.commit()
    engine.dispose()
    return key.key


def over_http(url: str, ids: list[int], period: str, port: int) -> None:
    key = operator_key(url)
    env = {**os.environ, "SOCIALCARD_DATABASE_URL": url, "SOCIALCARD_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [BIN / "socialcard", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as client:
            for _ in range(300):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            params = {"period": period, "purpose": Purpose.CASE_REVIEW.value}

            def get(family_id: int) -> tuple[float, int]:
                t0 = time.perf_counter()
                answer = client.get(f"/api/v1/families/{family_id}/eligibility", params=params)
                return time.perf_counter() - t0, answer.status_code

            first = next((t for t, status in map(get, ids) if status == 200), 0.0)
            load_before = os.getloadavg()[0]
            latencies = []
            statuses: dict[int, int] = defaultdict(int)
            for family_id in ids:
                elapsed, status = get(family_id)
                statuses[status] += 1
                if status == 200:
                    latencies.append(elapsed)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"over HTTP: GET /api/v1/families/{{id}}/eligibility, {dict(statuses)} by status")
    print(f"  first call {first * 1000:.0f} ms (the server compiles the pack)")
    print(
        f"  200s: p50 {pct(latencies, 0.5):.2f} ms  p90 {pct(latencies, 0.9):.2f} ms"
        f"  p99 {pct(latencies, 0.99):.2f} ms  max {max(latencies) * 1000:.2f} ms"
    )
    print(f"  load {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--families", type=int, default=1_000_000)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--period", default="2026-03")
    parser.add_argument("--http", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--in-process", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--port", type=int, default=8772)
    args = parser.parse_args()
    configure_logging("WARNING", json=False)
    if args.store == "sqlite":
        url = f"sqlite:///{ROOT}/var/bench/sc_rules_service_{args.families}.db"
    else:
        url = f"{POSTGRES_SERVER}/sc_rules_service_bench_{args.families}"
    engine = build_engine(url)
    with engine.connect() as conn:
        high = conn.execute(text("SELECT max(id) FROM registry_family")).scalar_one()
    engine.dispose()
    rng = random.Random(1)
    ids = [rng.randint(1, high) for _ in range(args.calls)]
    print(f"store {args.store} ({url}), {args.calls} random family ids, period {args.period}")
    run: list[Callable[[], None]] = []
    if args.in_process:
        run.append(lambda: in_process(url, ids, args.period))
    if args.http:
        run.append(lambda: over_http(url, ids, args.period, args.port))
    for step in run:
        step()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
