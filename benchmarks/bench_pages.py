"""Benchmark: server time of each main page on a 1,000,000-family region.

Target (issue 14): every page under 300 ms on the 1,000,000-family region.

    python benchmarks/bench_pages.py --families 1000000 --requests 30

The store is the demo's chain played on the region once (generate, rules run, well-being,
campaigns with simulated answers, payments, vouchers, redemptions; `socialcard demo --no-serve
--month 2026-03`) and kept under var/bench/ for the next run (`--fresh` rebuilds it). On
1,000,000 families the demo answers its ~275,000 offers one SMS at a time (over an hour here):
`--wallet-step` runs only the demo's wallet step (pay the consents, vouchers from decisions,
redemptions) on a store whose demo was stopped during the answers. The server
runs with its clock in that month. Each page is loaded `--requests` times one after another by a
signed-in staff member (an admin, who may open every page) after one warm-up load (reported as
"first"); the latency is measured on the loopback, so it is the server's time plus well under a
millisecond. Baselines in the same run: `/health` and the JSON API's read of the same family.

`--focus` measures only the pages whose cost grows with the registry and a stored run (name
search, a run's decisions) on a registry generated at that size plus one rules run for the
month (no campaigns, wallet or well-being: minutes instead of the demo's hour), kept as
var/bench/pages_focus_<N>.db (`--store postgres`: the local server's database
sc_pages_focus_<N>):

    python benchmarks/bench_pages.py --families 1000000 --focus --requests 30
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MONTH = "2026-03"
CLOCK = "2026-03-10T04:00:00+00:00"
POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
# The pages of --focus (by label prefix): the baselines, name search and a run's decisions.
FOCUS = ("baseline", "registry search", "decisions")
# A fresh password each run for the bench account (nothing secret is kept in the source).
PASSWORD = secrets.token_urlsafe(16) + "-1"


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(BIN / "socialcard"), *args], env=env, input=stdin, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"socialcard {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def prepare(families: int, fresh: bool) -> tuple[str, dict[str, str]]:
    path = ROOT / "var" / "bench" / f"pages_{families}.db"
    url = f"sqlite:///{path}"
    env = {
        **os.environ,
        "SOCIALCARD_DATABASE_URL": url,
        "SOCIALCARD_WEB__COOKIE_SECURE": "false",
        "SOCIALCARD_PROACTIVE__OUTBOX_FILE": str(path.parent / f"sms_{families}.jsonl"),
        "SOCIALCARD_LOG_LEVEL": "WARNING",
    }
    env.pop("SOCIALCARD_CLOCK", None)
    if fresh or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        print(f"playing the demo on {families:,} families (once) ...", flush=True)
        started = time.perf_counter()
        _cli(env, "demo", "--families", str(families), "--no-serve", "--month", MONTH)
        print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
    env["SOCIALCARD_CLOCK"] = CLOCK
    _cli(env, "db", "upgrade")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM security_web_session"))
        conn.execute(text("DELETE FROM security_staff WHERE username = 'bench-admin'"))
    engine.dispose()
    _cli(env, "staff", "create", "--username", "bench-admin", "--role", "admin",
         "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    return url, env


def _focus_store(store: str, families: int, fresh: bool) -> str:
    """The --focus store's URL: a SQLite file under var/bench/, or a PostgreSQL database of
    its own on the local server (created when missing)."""
    if store == "sqlite":
        path = ROOT / "var" / "bench" / f"pages_focus_{families}.db"
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    name = f"sc_pages_focus_{families}"
    admin = create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if fresh:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if not conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{POSTGRES_SERVER}/{name}"


def prepare_focus(families: int, fresh: bool, store: str) -> tuple[str, dict[str, str]]:
    """A generated registry and one stored rules run of MONTH (no demo chain)."""
    from datetime import date

    from sqlalchemy.orm import Session

    from socialcard.core.clock import parse_instant, set_clock
    from socialcard.core.db import build_engine
    from socialcard.core.migrate import upgrade
    from socialcard.registry.population.loader import generate_population
    from socialcard.rules import service as rules_service

    url = _focus_store(store, families, fresh)
    env = {
        **os.environ,
        "SOCIALCARD_DATABASE_URL": url,
        "SOCIALCARD_WEB__COOKIE_SECURE": "false",
        "SOCIALCARD_LOG_LEVEL": "WARNING",
        "SOCIALCARD_CLOCK": CLOCK,
    }
    set_clock(parse_instant(CLOCK))
    engine = build_engine(url)
    started = time.perf_counter()
    upgrade(engine)
    print(f"migrated in {time.perf_counter() - started:.1f} s", flush=True)
    with engine.connect() as conn:
        count = conn.scalar(text("SELECT count(*) FROM registry_family")) or 0
        runs = conn.scalar(text("SELECT count(*) FROM rules_run WHERE status = 'succeeded'"))
    if count == 0:
        started = time.perf_counter()
        generate_population(engine, families=families, seed=7, as_of=date(2026, 3, 1))
        print(f"generated {families:,} families in {time.perf_counter() - started:.0f} s")
    if not runs:
        started = time.perf_counter()
        with Session(engine) as session:
            rules_service.run_rules(session, period=MONTH)
            session.commit()
        print(f"rules run of {MONTH} in {time.perf_counter() - started:.0f} s", flush=True)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM security_web_session"))
        conn.execute(text("DELETE FROM security_staff WHERE username = 'bench-admin'"))
    if store == "postgres":
        # The store as autovacuum leaves it: a migration that rewrote every person leaves as
        # many dead rows behind.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE registry_person"))
            conn.execute(text("VACUUM ANALYZE rules_outcome"))
    engine.dispose()
    # An operator: the role that searches the registry and reads decisions (an admin may not).
    _cli(env, "staff", "create", "--username", "bench-admin", "--role", "operator",
         "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    return url, env


def ids(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        out = {
            "family": conn.scalar(
                text(
                    "SELECT family_id FROM registry_family_member m JOIN registry_person p"
                    " ON p.id = m.person_id WHERE p.death_on IS NULL ORDER BY m.family_id"
                    " LIMIT 1 OFFSET 5000"
                )
            ),
            "run": conn.scalar(text("SELECT max(id) FROM rules_run WHERE status = 'succeeded'")),
            "wellbeing": conn.scalar(text("SELECT max(id) FROM wellbeing_run")),
        }
    engine.dispose()
    return {k: int(v or 1) for k, v in out.items()}


def start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [str(BIN / "uvicorn"), "socialcard.app:create_app", "--factory", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    sys.exit("the server did not start")


def sign_in(client: httpx.Client) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    answer = client.post(
        "/login",
        data={"csrf": token.group(1), "username": "bench-admin", "password": PASSWORD},
    )
    if answer.status_code != 303:
        sys.exit(f"sign-in failed: {answer.status_code}")


def measure(client: httpx.Client, path: str, n: int) -> tuple[float, list[float], int]:
    started = time.perf_counter()
    first = client.get(path)
    cold = (time.perf_counter() - started) * 1000
    status = first.status_code
    times = []
    for _ in range(n):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        status = max(status, answer.status_code)
    return cold, times, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--port", type=int, default=8931)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument(
        "--wallet-step", action="store_true", help="run the demo's wallet step on the store"
    )
    parser.add_argument(
        "--focus", action="store_true", help="only name search and decisions, on a generated store"
    )
    parser.add_argument(
        "--store", choices=("sqlite", "postgres"), default="sqlite", help="with --focus"
    )
    parser.add_argument(
        "--prepare-only", action="store_true", help="build the store and stop (outside the lock)"
    )
    args = parser.parse_args()
    if args.focus:
        url, env = prepare_focus(args.families, args.fresh, args.store)
    else:
        url, env = prepare(args.families, args.fresh)
    if args.wallet_step:
        script = (
            "from rich.console import Console\n"
            "from socialcard.wallet import demo\n"
            f"demo.run_demo_step(Console(), period={MONTH!r})\n"
        )
        subprocess.run([sys.executable, "-c", script], env=env, check=True)
    if args.prepare_only:
        return
    known = ids(url)
    pages = [
        ("baseline: /health", "/health"),
        ("baseline: API family", f"/api/v1/families/{known['family']}?purpose=case_review"),
        ("home", "/"),
        ("registry search", "/registry?name=%D0%90%D1%85%D0%BC&purpose=case_review"),
        # A Kazakh letter (about 67,000 first names at 1 M families), the broadest two letters
        # (about 189,000 persons) in capitals, and a second page.
        ("registry search kk", f"/registry?name={quote('ҚА')}&purpose=case_review"),
        ("registry search 2 letters", f"/registry?name={quote('СЕ')}&purpose=case_review"),
        ("registry search 2nd", f"/registry?name={quote('ахм')}&purpose=case_review&page=2"),
        ("family card", f"/registry/families/{known['family']}?purpose=case_review"),
        ("programs", "/programs"),
        ("rules run", f"/programs/runs/{known['run']}"),
        (
            "decisions",
            f"/programs/runs/{known['run']}/decisions?program=kz.asp&eligible=true&purpose=case_review",
        ),
        ("decisions all", f"/programs/runs/{known['run']}/decisions?purpose=case_review"),
        (
            "decisions region",
            f"/programs/runs/{known['run']}/decisions?program=kz.asp&eligible=true&region=75"
            "&purpose=case_review",
        ),
        ("campaigns", "/campaigns"),
        ("offers", "/campaigns/offers?purpose=case_review&status=agreed"),
        ("well-being", "/wellbeing"),
        ("level families", f"/wellbeing/{known['wellbeing']}/families?level=E&purpose=audit"),
        ("wallet", "/wallet"),
        ("audit", "/audit"),
        ("reports", "/reports"),
        ("staff", "/admin/staff"),
    ]
    if args.focus:
        pages = [page for page in pages if page[0].startswith(FOCUS)]
    server = start(env, args.port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=120) as client:
            key = _cli(env, "apikey", "create", "--name", "bench-pages", "--role", "operator")
            sign_in(client)
            print(f"{'page':<22} {'first':>9} {'p50':>8} {'p99':>8} {'max':>8}  status")
            for label, path in pages:
                headers = {"X-API-Key": key.strip()} if path.startswith("/api/") else {}
                client.headers.update(headers)
                cold, times, status = measure(client, path, args.requests)
                for name in headers:
                    client.headers.pop(name)
                times.sort()
                p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
                print(
                    f"{label:<22} {cold:8.1f}ms {statistics.median(times):7.1f}ms"
                    f" {p99:7.1f}ms {times[-1]:7.1f}ms  {status}",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(timeout=20)
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
