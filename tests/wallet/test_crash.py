"""kill -9 of the server under load: what a client saw approved is there, nothing is partial."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.db import run_before_commit
from socialcard.wallet import service as wallet_service
from socialcard.wallet.business_day import business_day
from socialcard.wallet.ledger import repository as ledger_repository
from tests.wallet.factories import activate, fund, make_merchant, token_of
from tests.wallet.server import free_port, start_server, stop_server

CLIENTS = 6
VOUCHERS = 12


def _setup(engine: Engine) -> tuple[str, list[str]]:
    with Session(engine, expire_on_commit=False) as session:
        _, _, key = make_merchant(session)
        tokens = []
        for _ in range(VOUCHERS):
            funded = fund(session, amount_minor=1_000_000, period=f"{business_day(utcnow()):%Y-%m}")
            activate(session, funded.voucher_id, now=utcnow())
            tokens.append(token_of(session, funded.voucher_id))
        run_before_commit(session)
        session.commit()
    return key, tokens


@pytest.mark.slow
class TestKillNine:
    def test_approved_redemptions_survive_a_kill(
        self, committed_engine: Engine, database_url: str
    ) -> None:
        terminal_key, tokens = _setup(committed_engine)
        port = free_port()
        url = f"http://127.0.0.1:{port}/api/v1/business/authorizations"
        server = start_server(database_url, port)
        seen: dict[str, dict[str, Any]] = {}
        unanswered: dict[str, dict[str, Any]] = {}
        stop = threading.Event()
        lock = threading.Lock()

        def client(n: int) -> None:
            with httpx.Client(timeout=10) as http:
                i = 0
                while not stop.is_set():
                    key = f"c{n}-{i}"
                    item = {"sku": "milk", "category": "food.socially_significant"}
                    body = {
                        "token": tokens[(n + i) % VOUCHERS],
                        "items": [{**item, "quantity": 1, "amount_minor": 100 + i % 7}],
                        "capture": True,
                    }
                    headers = {"X-Terminal-Key": terminal_key, "Idempotency-Key": key}
                    try:
                        response = http.post(url, json=body, headers=headers)
                    except httpx.HTTPError:
                        with lock:
                            unanswered[key] = body
                        return
                    assert response.status_code == 200, response.text
                    with lock:
                        seen[key] = response.json()
                    i += 1

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        try:
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 30
            while len(seen) < 150 and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(server.pid, signal.SIGKILL)
            server.wait()
            stop.set()
            for thread in threads:
                thread.join(timeout=20)
            assert len(seen) >= 150
            with Session(committed_engine) as session:
                # Nothing partial: the check replays every entry and hold.
                check = wallet_service.check(session)
                assert check.ok, check.problems
                for answer in seen.values():
                    assert answer["decision"] == "approved"
                    hold = ledger_repository.hold_by_id(session, answer["authorization_id"])
                    assert hold is not None
                    assert (hold.status, hold.captured_minor) == (
                        "captured",
                        answer["captured_minor"],
                    )
            # After a restart, retrying the requests that got no answer gives one effect each.
            server = start_server(database_url, port)
            with httpx.Client(timeout=10) as http:
                for key, body in unanswered.items():
                    headers = {"X-Terminal-Key": terminal_key, "Idempotency-Key": key}
                    first = http.post(url, json=body, headers=headers)
                    again = http.post(url, json=body, headers=headers)
                    assert first.status_code == 200
                    assert first.json() == again.json()
                    seen[key] = first.json()
            with Session(committed_engine) as session:
                assert wallet_service.check(session).ok
                assert ledger_repository.counts(session)["holds"] == len(seen)
        finally:
            stop.set()
            stop_server(server)
