"""Card benchmarks (issue 13): status list build+sign, offline verification per core, pass
issuance, online verification over HTTP against a bare endpoint of the same server, and
revocation latency from a life event to "invalid" at the online verifier.

    .venv/bin/python benchmarks/bench_card.py all
    ... bench_card.py statuslist | offline | issue --cards 20000 | online --seconds 15 | revocation
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCRATCH = Path(tempfile.mkdtemp(prefix="bench-card-"))
# The scratch store (gigabytes at a million persons) and its keys go when the run ends.
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)
os.environ.setdefault("SOCIALCARD_CARD__KEY_DIR", str(SCRATCH / "keys"))
os.environ.setdefault("SOCIALCARD_CARD__REPLAY_FILE", str(SCRATCH / "replay.bin"))
os.environ.setdefault("SOCIALCARD_LOG_LEVEL", "WARNING")
os.environ["SOCIALCARD_DATABASE_URL"] = f"sqlite:///{SCRATCH / 'card.db'}"

from joserfc.jwk import ECKey  # noqa: E402

from socialcard.card import sdjwt, service, statuslist  # noqa: E402
from socialcard.card.models import Card  # noqa: E402
from socialcard.core.clock import today  # noqa: E402
from socialcard.core.db import get_engine, run_before_commit, session_scope  # noqa: E402
from socialcard.core.migrate import upgrade  # noqa: E402
from socialcard.registry.identifiers import make_iin  # noqa: E402
from socialcard.registry.models import Family, FamilyMember, Person  # noqa: E402
from socialcard.security import service as security_service  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_statuslist() -> dict[str, float]:
    key = ECKey.generate_key("P-256", private=True)
    lst = statuslist.StatusList(1_000_000)
    revoked = np.random.default_rng(1).choice(1_000_000, 20_000, replace=False)
    started = time.perf_counter()
    lst.set_many(revoked, statuslist.INVALID)
    token = statuslist.build_token(
        lst, uri="https://sc.test/status/1", issuer="https://sc.test", key=key, kid="k",
        iat=int(time.time()), exp=int(time.time()) + 86400, ttl=30,
    )  # fmt: skip
    build = time.perf_counter() - started
    started = time.perf_counter()
    statuslist.parse_token(token, issuer_key=lambda _k: key)
    parse = time.perf_counter() - started
    return {"entries": 1_000_000, "revoked": 20_000, "build_sign_s": round(build, 3),
            "token_bytes": len(token), "verify_parse_s": round(parse, 3)}  # fmt: skip


def _presentations(count: int) -> tuple[ECKey, list[str], statuslist.StatusList]:
    from tests.card.helpers import Issuer, holder, present

    issuer = Issuer()
    out = []
    for i in range(count):
        key = holder()
        out.append(present(issuer.issue(key, idx=i % 131_072), key))
    return issuer, out, issuer.status  # type: ignore[return-value]


def bench_offline(count: int = 3000) -> dict[str, float]:
    from tests.card.helpers import Issuer, holder, present

    issuer = Issuer()
    sds = [(issuer.issue(k, idx=i), k) for i, k in enumerate(holder() for _ in range(200))]
    presentations = [present(sd, k) for sd, k in (sds[i % 200] for i in range(count))]
    verifier = issuer.verifier()
    started = time.process_time()
    wall = time.perf_counter()
    valid = sum(
        verifier.check(p, tariff="transit_reduced").result.value == "valid" for p in presentations
    )
    cpu = time.process_time() - started
    return {"presentations": count, "valid": valid, "per_cpu_second": round(count / cpu),
            "wall_per_second": round(count / (time.perf_counter() - wall))}  # fmt: skip


def _iin(i: int) -> tuple[str, date]:
    """A valid, unique ИИН for the i-th synthetic person (disjoint serials per birth day)."""
    born = date(1940, 1, 1) + timedelta(days=i % 7000)
    for serial in range((i // 7000) * 20, (i // 7000) * 20 + 20):
        iin = make_iin(born, "F", serial)
        if iin is not None:
            return iin, born
    raise RuntimeError("no valid ИИН in the serial range")


def prepare_store(cards: int) -> None:
    """A scratch SQLite store with `cards` persons each holding a card with a tariff."""
    engine = get_engine()
    upgrade(engine)
    for start in range(0, cards, 100_000):
        with session_scope() as session:
            conn = session.connection()
            people = []
            for i in range(start, min(cards, start + 100_000)):
                iin, born = _iin(i)
                people.append(
                    {"national_id": iin, "last_name": "X", "first_name": "Y",
                     "patronymic": None, "birth_on": born, "sex": "F", "phone": None,
                     "language": "kk", "region_kato": "751110000", "address": None}
                )  # fmt: skip
            conn.execute(Person.__table__.insert(), people)
            ids = [
                r[0]
                for r in conn.exec_driver_sql(
                    "SELECT id FROM registry_person WHERE id > ? ORDER BY id", (start,)
                )
            ]
            conn.execute(
                Family.__table__.insert(),
                [{"ref": f"B{i}", "region_kato": "751110000"} for i in ids],
            )
            fams = [
                r[0]
                for r in conn.exec_driver_sql(
                    "SELECT id FROM registry_family WHERE id > ? ORDER BY id", (start,)
                )
            ]
            conn.execute(
                FamilyMember.__table__.insert(),
                [
                    {"family_id": f, "person_id": p, "role": "head", "from_on": date(2020, 1, 1)}
                    for f, p in zip(fams, ids, strict=True)
                ],
            )  # fmt: skip
            conn.execute(
                Card.__table__.insert(),
                [{"person_id": p, "region_kato": "751110000", "state": "active",
                  "statuses": '["pensioner"]', "statuses_period": "2026-12"} for p in ids],
            )  # fmt: skip


def bench_issue(cards: int, workers: int) -> dict[str, float]:
    prepare_store(cards)
    holder_public = [sdjwt.public_jwk(ECKey.generate_key("P-256", private=True)) for _ in range(64)]

    def keys(card_id: int, n: int) -> list[dict[str, str]]:
        # Holder keys come from the citizens' apps; generating them is not the issuer's cost.
        return [holder_public[(card_id * n + i) % 64] for i in range(n)]

    with session_scope() as session:
        ids = service.iter_active_card_ids(session)
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_started = time.process_time()
    started = time.perf_counter()
    with session_scope() as session:
        signed = service.issue_passes_bulk(
            session, card_ids=ids, holder_keys=keys, deliver=lambda _c, _p: None, workers=workers
        )
        service.publish_lists(session)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (
        (time.process_time() - cpu_started)
        + (after.ru_utime - children.ru_utime)
        + (after.ru_stime - children.ru_stime)
    )
    per_person = cpu / max(1, len(ids))
    return {"cards": len(ids), "passes": signed, "seconds": round(elapsed, 1),
            "cpu_s": round(cpu, 1), "cpu_ms_per_person": round(per_person * 1000, 3),
            "1M_persons_min_on_2_free_cores": round(per_person * 1_000_000 / 2 / 60, 1),
            "passes_per_s": round(signed / elapsed), "persons_per_s": round(len(ids) / elapsed),
            "1M_persons_min": round(1_000_000 / (len(ids) / elapsed) / 60, 1)}  # fmt: skip


async def _post(reader, writer, path: str, headers: str, body: bytes) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    # A minimal keep-alive HTTP/1.1 client: a client library would cost more CPU than the
    # server under test on this 2-core machine.
    method = "POST" if body else "GET"
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{headers}\r\n".encode()
        + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return int(head[9:12]), await reader.readexactly(length)


async def _load(
    port: int, path: str, headers: str, bodies: list[bytes], clients: int, seconds: float
) -> tuple[list[float], int]:
    latencies: list[float] = []
    ok = 0
    stop_at = time.perf_counter() + seconds
    cursor = iter(range(10**9))

    async def client() -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop_at:
            i = next(cursor)
            if bodies and i >= len(bodies):
                break
            started = time.perf_counter()
            status, answer = await _post(
                reader, writer, path, headers, bodies[i] if bodies else b""
            )
            latencies.append(time.perf_counter() - started)
            ok += status == 200 and (not bodies or b'"valid"' in answer)
        writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, ok


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process and its descendants (the uvicorn workers), from /proc."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def _server(port: int, workers: int) -> subprocess.Popen[bytes]:
    from tests.wallet.server import start_server

    return start_server(os.environ["SOCIALCARD_DATABASE_URL"], port, workers=workers)


def bench_online(seconds: float, workers: int, clients: int) -> dict[str, object]:
    from tests.wallet.server import free_port, stop_server

    prepare_store(50)
    with session_scope() as session:
        passes = []
        for card_id in service.iter_active_card_ids(session)[:50]:
            private, public = service.holder_keys_generated(4)
            batch = service.issue_passes(session, card_id=card_id, holder_keys=public)
            passes.extend(zip(batch.passes, private, strict=True))
        service.publish_lists(session)
        merchant = security_service.create_api_key(session, name="bench", role="merchant").key
        run_before_commit(session)
    needed = int(seconds * 6000)
    started = time.perf_counter()
    bodies = []
    for i in range(needed):
        sd, key = passes[i % len(passes)]
        p = service.present_for_demo(
            sd, key, tariff="transit_reduced", nonce=secrets.token_urlsafe(16)
        )
        bodies.append(json.dumps({"presentation": p, "tariff": "transit_reduced"}).encode())
    prep = time.perf_counter() - started
    port = free_port()
    process = _server(port, workers)
    try:
        headers = f"X-API-Key: {merchant}\r\n"
        asyncio.run(_load(port, "/health", "", [], clients, 2))  # warm-up
        cpu = _cpu_seconds(process.pid)
        bare, _ = asyncio.run(_load(port, "/health", "", [], clients, seconds))
        bare_cpu = _cpu_seconds(process.pid) - cpu
        cpu = _cpu_seconds(process.pid)
        verify, ok = asyncio.run(
            _load(port, "/api/v1/card/verify", headers, bodies, clients, seconds)
        )
        verify_cpu = _cpu_seconds(process.pid) - cpu
    finally:
        stop_server(process)
    bare_rate = len(bare) / seconds
    rate = len(verify) / seconds
    return {"workers": workers, "clients": clients, "seconds": seconds,
            "bare_per_s": round(bare_rate), "bare_p99_ms": round(pct(bare, 0.99) * 1000, 2),
            "verify_per_s": round(rate), "verify_p99_ms": round(pct(verify, 0.99) * 1000, 2),
            "valid": ok, "answered": len(verify), "ratio_to_bare": round(rate / bare_rate, 2),
            "server_cpu_ms_per_bare": round(bare_cpu / max(1, len(bare)) * 1000, 3),
            "server_cpu_ms_per_verify": round(verify_cpu / max(1, len(verify)) * 1000, 3),
            "presentations_prepared_s": round(prep, 1)}  # fmt: skip


def bench_revocation(samples: int) -> dict[str, object]:
    from socialcard.registry import events as registry_events
    from socialcard.registry.enums import EventKind
    from tests.wallet.server import free_port, stop_server

    prepare_store(samples)
    passes = []
    with session_scope() as session:
        for card_id in service.iter_active_card_ids(session)[:samples]:
            private, public = service.holder_keys_generated(4)
            batch = service.issue_passes(session, card_id=card_id, holder_keys=public)
            card = session.get(Card, card_id)
            passes.append((card.person_id, list(zip(batch.passes, private, strict=True))))  # type: ignore[union-attr]
        service.publish_lists(session)
        merchant = security_service.create_api_key(session, name="bench", role="merchant").key
        run_before_commit(session)
    port = free_port()
    process = _server(port, 1)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "socialcard.cli.main", "card", "watch"],
        env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    latencies = []
    try:
        for person_id, copies in passes:
            with session_scope() as session:
                registry_events.record_events(
                    session,
                    [registry_events.NewEvent(EventKind.DEATH, person_id, None, today(), {})],
                )  # fmt: skip
            event_at = time.perf_counter()
            n = 0
            while True:
                sd, key = copies[0]
                shown = service.present_for_demo(sd, key, tariff="transit_reduced")
                body = json.dumps({"presentation": shown, "tariff": "transit_reduced"}).encode()

                async def one(payload: bytes = body) -> bytes:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    _, answer = await _post(
                        reader, writer, "/api/v1/card/verify", f"X-API-Key: {merchant}\r\n", payload
                    )
                    writer.close()
                    return answer

                answer = asyncio.run(one())
                n += 1
                if b'"invalid"' in answer:
                    latencies.append(time.perf_counter() - event_at)
                    break
                if time.perf_counter() - event_at > 120:
                    latencies.append(float("inf"))
                    break
                time.sleep(0.25)
    finally:
        watcher.terminate()
        stop_server(process)
    return {"samples": len(latencies), "p50_s": round(pct(latencies, 0.5), 1),
            "p99_s": round(pct(latencies, 0.99), 1), "max_s": round(max(latencies), 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "what", choices=["statuslist", "offline", "issue", "online", "revocation", "all"]
    )
    parser.add_argument("--cards", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    out: dict[str, object] = {"uptime": uptime.stdout.strip()}
    if args.what in ("statuslist", "all"):
        out["statuslist"] = bench_statuslist()
    if args.what in ("offline", "all"):
        out["offline"] = bench_offline()
    if args.what == "issue":
        out["issue"] = bench_issue(args.cards, args.workers)
    if args.what == "online":
        out["online"] = bench_online(args.seconds, args.workers, args.clients)
    if args.what == "revocation":
        out["revocation"] = bench_revocation(args.samples)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
