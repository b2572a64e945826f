"""kill -9 between spending a PIN try and checking the PIN still counts the try (a real
subprocess and a real SIGKILL at the named point)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from socialcard.card import service
from socialcard.core.db import session_scope
from socialcard.security.schemas import Actor
from tests.card.conftest import make_card

REPO = Path(__file__).resolve().parents[2]


def _pin_check(card_id: int, pin: str, crash_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOCIALCARD_LOG_LEVEL": "WARNING"}
    env.pop("SOCIALCARD_PROACTIVE__CRASH_AT", None)
    if crash_at:
        env["SOCIALCARD_PROACTIVE__CRASH_AT"] = crash_at
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "socialcard.cli.main",
            "card",
            "pin",
            "check",
            "--card-id",
            str(card_id),
        ],
        input=pin + "\n",
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _tries(card_id: int) -> int | None:
    with session_scope() as session:
        return service.pin_tries_left(session, card_id=card_id)


@pytest.mark.slow
class TestKillDashNine:
    def test_a_crash_after_the_decrement_still_counts_the_try(
        self, committed_engine: Engine
    ) -> None:
        with session_scope() as session:
            card_id = make_card(session).id
            service.set_pin(
                session,
                card_id=card_id,
                pin="2468",
                actor=Actor(key_id=None, name="t", role="operator"),
            )
        crashed = _pin_check(card_id, "2468", "pin_after_decrement")
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        assert _tries(card_id) == 2  # the right PIN, but the process died before the check
        crashed = _pin_check(card_id, "0000", "pin_after_decrement")
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        assert _tries(card_id) == 1
        wrong = _pin_check(card_id, "0000", None)
        assert wrong.returncode == 2
        assert "blocked" in wrong.stderr
        assert "0000" not in wrong.stderr + wrong.stdout
        assert _tries(card_id) == 0
        right = _pin_check(card_id, "2468", None)
        assert right.returncode == 2  # blocked: only an operator's reset opens it again
