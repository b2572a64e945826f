"""kill -9 in the middle of a campaign run, a send and a consent; the re-run leaves no
duplicate offer, message, decision or payment order. Real subprocesses, real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from socialcard.core.db import session_scope
from socialcard.proactive.models import Assignment, Consent, Message, Offer, PaymentOrder
from socialcard.registry.models import Person
from tests.proactive.conftest import LARGE, PERIOD, add_large_family
from tests.proactive.provider import LocalProvider

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, crash_at: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "SOCIALCARD_LOG_LEVEL": "WARNING", **env}
    environment.pop("SOCIALCARD_PROACTIVE__CRASH_AT", None)
    if crash_at:
        environment["SOCIALCARD_PROACTIVE__CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "socialcard.cli.main", *args],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _count(model: type) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _keys(model: type, column: str) -> list[object]:
    with session_scope() as session:
        return list(session.scalars(select(getattr(model, column))))


@pytest.mark.slow
class TestKillDashNine:
    def test_campaign_run_killed_between_chunks(self, proactive_env: Path) -> None:
        for _ in range(5):
            add_large_family(4)
        crashed = _cli(
            "campaign",
            "run",
            LARGE,
            "--period",
            PERIOD,
            crash_at="campaign_after_chunk:2",
            SOCIALCARD_PROACTIVE__CHUNK_SIZE="2",
        )
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        assert _count(Offer) == 4
        done = _cli(
            "campaign", "run", LARGE, "--period", PERIOD, SOCIALCARD_PROACTIVE__CHUNK_SIZE="2"
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["offered"] == 5
        entities = _keys(Offer, "entity_id")
        assert len(entities) == len(set(entities)) == 5
        messages = _keys(Message, "offer_id")
        assert len(messages) == len(set(messages)) == 5

    def test_file_send_killed_after_the_gateway_before_recording(self, proactive_env: Path) -> None:
        for _ in range(4):
            add_large_family(4)
        assert _cli("campaign", "run", LARGE, "--period", PERIOD).returncode == 0
        crashed = _cli("proactive", "send", crash_at="send_after_gateway")
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        assert set(_keys(Message, "status")) == {"sending"}
        done = _cli("proactive", "send")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"sent": 4, "failed": 0}
        lines = proactive_env.read_text(encoding="utf-8").splitlines()
        assert len(lines) == 4
        assert set(_keys(Message, "status")) == {"delivered"}  # the file is the SMS centre

    def test_send_killed_after_claiming_checks_life_again_on_the_rerun(
        self, proactive_env: Path
    ) -> None:
        households = [add_large_family(4) for _ in range(2)]
        assert _cli("campaign", "run", LARGE, "--period", PERIOD).returncode == 0
        crashed = _cli("proactive", "send", crash_at="send_after_claim")
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        assert set(_keys(Message, "status")) == {"sending"}
        # A death is recorded while the claimed message waits (its event not processed).
        with session_scope() as session:
            person = session.get(Person, households[0].head_id)
            assert person is not None
            person.death_on = date(2026, 3, 1)
        done = _cli("proactive", "send")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"sent": 1, "failed": 0}
        sent = [json.loads(line) for line in proactive_env.read_text().splitlines()]
        assert [m["to"] for m in sent] == [households[1].phone]
        assert sorted(str(s) for s in _keys(Message, "status")) == ["cancelled", "delivered"]

    def test_http_send_killed_after_the_provider_accepted(self, proactive_env: Path) -> None:
        for _ in range(4):
            add_large_family(4)
        assert _cli("campaign", "run", LARGE, "--period", PERIOD).returncode == 0
        with LocalProvider() as provider:
            http = {
                "SOCIALCARD_PROACTIVE__GATEWAY": "http",
                "SOCIALCARD_PROACTIVE__SMS_URL": provider.url,
                "SOCIALCARD_PROACTIVE__SMS_API_KEY": provider.state.api_key,
            }
            crashed = _cli("proactive", "send", crash_at="send_after_gateway", **http)
            assert crashed.returncode == -signal.SIGKILL, crashed.stderr
            done = _cli("proactive", "send", **http)
            assert done.returncode == 0, done.stderr
        assert len(provider.state.sent) == 4  # each message reached the citizen once
        assert provider.state.requests == 8  # ... although each was handed over twice
        ids = {m["id"] for m in provider.state.sent.values()}
        assert set(_keys(Message, "provider_message_id")) == ids

    def test_consent_killed_before_commit_then_redelivered(self, proactive_env: Path) -> None:
        household = add_large_family(4)
        assert _cli("campaign", "run", LARGE, "--period", PERIOD).returncode == 0
        reply = ("proactive", "reply", "--id", "sms-1", "--from", household.phone, "--text", "1")
        crashed = _cli(*reply, crash_at="consent_before_commit")
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        assert (_count(Consent), _count(Assignment), _count(PaymentOrder)) == (0, 0, 0)
        for _ in range(2):
            done = _cli(*reply)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["outcome"] == "decided"
        assert (_count(Consent), _count(Assignment), _count(PaymentOrder)) == (1, 1, 1)
        kinds = sorted(str(k) for k in _keys(Message, "kind"))
        assert kinds == ["confirmation", "offer"]
