"""kill -9 in the middle of a job started from the command line; the job is found
interrupted, resumed, and ends with the result of a run that was never killed. Real
subprocesses, real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from socialcard.core.db import session_scope
from socialcard.proactive.models import Message, Offer
from socialcard.rules import service as rules_service
from socialcard.rules.models import RulesRun
from tests.proactive.conftest import LARGE, PERIOD, add_large_family

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
        timeout=180,
        check=False,
    )


def _jobs(**env: str) -> list[dict[str, Any]]:
    listed = _cli("jobs", "list", **env)
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]


def _keys(model: type, column: str) -> list[object]:
    with session_scope() as session:
        return list(session.scalars(select(getattr(model, column))))


def _eligible(run_id: int, program_id: str) -> list[tuple[int, int]]:
    with session_scope() as session:
        return sorted(
            (d.family_id or 0, d.amount_minor or 0)
            for d in rules_service.eligible_decisions(session, run_id=run_id, program_id=program_id)
        )


@pytest.mark.slow
class TestKillDashNine:
    def test_campaign_job_killed_between_chunks_resumes_to_the_full_result(
        self, proactive_env: Path
    ) -> None:
        for _ in range(5):
            add_large_family(4)
        small = {"SOCIALCARD_PROACTIVE__CHUNK_SIZE": "2"}
        crashed = _cli(
            "jobs",
            "start",
            "campaign",
            "--program",
            LARGE,
            "--period",
            PERIOD,
            crash_at="campaign_after_chunk:2",
            **small,
        )
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        assert len(_keys(Offer, "id")) == 4
        [job] = _jobs()
        assert (job["status"], job["error_code"]) == ("failed", "interrupted")
        assert job["kind"] == "campaign"
        done = _cli("jobs", "resume", str(job["id"]), **small)
        assert done.returncode == 0, done.stderr
        resumed = json.loads(done.stdout)
        assert resumed["status"] == "succeeded"
        assert resumed["attempts"] == 2
        assert resumed["result"]["offered"] == 5
        entities = _keys(Offer, "entity_id")
        assert len(entities) == len(set(entities)) == 5
        messages = _keys(Message, "offer_id")
        assert len(messages) == len(set(messages)) == 5
        shown = _cli("jobs", "show", str(job["id"]))
        assert json.loads(shown.stdout)["status"] == "succeeded"

    def test_rules_run_job_killed_mid_run_resumes_to_the_same_decisions(
        self, proactive_env: Path
    ) -> None:
        for children in (3, 4, 5):
            add_large_family(children)
        # The third progress report is the evaluation's start, after the registry was read.
        crashed = _cli("jobs", "start", "rules_run", "--period", PERIOD, crash_at="job_progress:3")
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        [job] = _jobs()
        assert (job["status"], job["error_code"]) == ("failed", "interrupted")
        run_id = job["rules_run_id"]
        with session_scope() as session:
            run = session.get(RulesRun, run_id)
            assert run is not None
            assert run.status == "failed"
        done = _cli("jobs", "resume", str(job["id"]))
        assert done.returncode == 0, done.stderr
        resumed = json.loads(done.stdout)
        assert resumed["status"] == "succeeded"
        assert resumed["result"]["run_id"] == run_id
        fresh = _cli("jobs", "start", "rules_run", "--period", PERIOD)
        assert fresh.returncode == 0, fresh.stderr
        reference = json.loads(fresh.stdout)
        same = ("families", "persons", "decisions", "eligible")
        assert {k: resumed["result"][k] for k in same} == {k: reference["result"][k] for k in same}
        ref_run = reference["result"]["run_id"]
        assert _eligible(run_id, LARGE) == _eligible(ref_run, LARGE)
        assert len(_eligible(run_id, LARGE)) == 2
