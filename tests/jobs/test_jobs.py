"""Stored jobs over the API and the service: 202 and a Location, progress, one active
whole-registry job of a kind (409), cancellation between chunks, recovery of a dead
process's jobs and their resumption."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.db import session_scope
from socialcard.jobs import process, service, worker
from socialcard.jobs.models import Job
from socialcard.proactive import config as proactive_config
from socialcard.proactive import jobs as proactive_jobs
from socialcard.proactive.models import Offer
from socialcard.rules import service as rules_service
from socialcard.rules.models import RulesRun
from tests.proactive.conftest import LARGE, PERIOD, add_large_family, api_key


def _offers() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Offer)) or 0)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _orphan(job_id: int, owner: str, *, heartbeat_age: float = 0.0) -> None:
    """Make a job look as if another process had claimed it."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.status, job.owner = "running", owner
        job.heartbeat_at = utcnow() - timedelta(seconds=heartbeat_age)
    process.release(job_id)


@pytest.fixture
def fast_cancel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings().jobs, "cancel_poll_seconds", 0.0)


class TestStartOverTheApi:
    def test_campaign_answers_202_with_the_jobs_location_and_finishes(
        self, live_client: TestClient
    ) -> None:
        for _ in range(2):
            add_large_family(4)
        headers = api_key()
        started = live_client.post(
            "/api/v1/jobs",
            json={"kind": "campaign", "program_id": LARGE, "period": PERIOD},
            headers=headers,
        )
        assert started.status_code == 202, started.text
        url = started.headers["Location"]
        assert url == f"/api/v1/jobs/{started.json()['id']}"
        job = worker.wait(started.json()["id"])
        assert job.status == "succeeded", job
        body = live_client.get(url, headers=api_key("auditor")).json()
        assert body["status"] == "succeeded"
        assert body["result"]["offered"] == 2
        assert body["step"] == "offers"
        assert (body["done"], body["total"], body["percent"]) == (2, 2, 100)
        listed = live_client.get("/api/v1/jobs?kind=campaign", headers=headers).json()
        assert [j["id"] for j in listed["items"]] == [body["id"]]

    def test_rules_run_names_its_job_and_the_job_its_run(self, live_client: TestClient) -> None:
        add_large_family(4)
        headers = api_key()
        started = live_client.post("/api/v1/rules/runs", json={"period": PERIOD}, headers=headers)
        assert started.status_code == 202, started.text
        run = started.json()
        assert started.headers["Location"] == f"/api/v1/jobs/{run['job_id']}"
        job = worker.wait(run["job_id"])
        assert job.status == "succeeded", job
        assert job.rules_run_id == run["id"] == job.result["run_id"]  # type: ignore[index]
        stored = live_client.get(f"/api/v1/rules/runs/{run['id']}", headers=headers).json()
        assert stored["status"] == "succeeded"
        assert stored["families"] == job.result["families"] == 1  # type: ignore[index]

    def test_scoring_and_the_ledger_check_run_as_jobs(self, live_client: TestClient) -> None:
        for _ in range(3):
            add_large_family(4)
        headers = api_key()
        scoring = live_client.post(
            "/api/v1/jobs", json={"kind": "scoring", "period": PERIOD}, headers=headers
        )
        assert scoring.status_code == 202, scoring.text
        scored = worker.wait(scoring.json()["id"])
        assert scored.status == "succeeded", scored
        assert scored.result is not None
        assert scored.result["families"] == 3
        assert scored.step == "write"
        runs = live_client.get("/api/v1/wellbeing/runs", headers=headers)
        assert scored.result["run_id"] in [r["id"] for r in runs.json()["items"]]
        check = live_client.post("/api/v1/jobs", json={"kind": "check"}, headers=headers)
        checked = worker.wait(check.json()["id"])
        assert checked.result == {"ok": True, "problems": 0, "problem_list": []}

    def test_card_sync_is_a_job_and_a_rerun_creates_nothing_new(
        self, live_client: TestClient
    ) -> None:
        add_large_family(4)
        ran = worker.start("rules_run", {"period": PERIOD}, actor=None, background=False)
        assert ran.status == "succeeded", ran
        headers = api_key()
        results = []
        for _ in range(2):
            started = live_client.post(f"/api/v1/card/sync?period={PERIOD}", headers=headers)
            assert started.status_code == 202, started.text
            assert started.headers["Location"] == f"/api/v1/jobs/{started.json()['id']}"
            job = worker.wait(started.json()["id"])
            assert job.status == "succeeded", job
            assert job.result is not None
            results.append(job.result)
        assert results[0]["run_id"] == ran.rules_run_id
        assert results[0]["created"] == results[0]["persons_with_status"] > 0
        assert results[1]["created"] == 0
        assert results[1]["persons_with_status"] == results[0]["persons_with_status"]

    def test_a_second_active_job_of_a_kind_is_a_409(self, live_client: TestClient) -> None:
        headers = api_key()
        queued = service.submit(
            kind="campaign",
            params={"program_id": LARGE, "period": PERIOD},
            actor=None,
            started_by="test",
        )
        second = live_client.post(
            "/api/v1/jobs",
            json={"kind": "campaign", "program_id": LARGE, "period": "2026-04"},
            headers=headers,
        )
        assert second.status_code == 409, second.text
        assert second.json()["code"] == "job_already_active"
        # Another kind is not held back.
        other = live_client.post("/api/v1/jobs", json={"kind": "check"}, headers=headers)
        assert other.status_code == 202, other.text
        assert worker.wait(other.json()["id"]).status == "succeeded"
        cancelled = live_client.post(f"/api/v1/jobs/{queued.id}/cancel", headers=headers)
        assert cancelled.status_code == 202
        assert cancelled.json()["status"] == "cancelled"
        again = live_client.post(f"/api/v1/jobs/{queued.id}/cancel", headers=headers)
        assert again.status_code == 409
        assert again.json()["code"] == "job_finished"
        third = live_client.post(
            "/api/v1/jobs",
            json={"kind": "campaign", "program_id": LARGE, "period": PERIOD},
            headers=headers,
        )
        assert third.status_code == 202, third.text
        assert worker.wait(third.json()["id"]).status == "succeeded"

    def test_the_store_refuses_two_active_jobs_of_a_kind(self, proactive_env: Path) -> None:
        # What holds even if two processes check at the same moment: the unique index.
        service.submit(kind="check", params={}, actor=None, started_by="test")
        other = Job(
            kind="check",
            scope="registry",
            label="",
            params={},
            status="running",
            step="",
            done=0,
            started_by="other",
            attempts=1,
        )
        with session_scope() as session:
            session.add(other)
            with pytest.raises(IntegrityError):
                session.flush()
            session.rollback()

    def test_roles_are_checked_per_kind(self, live_client: TestClient) -> None:
        policy = api_key("policy_owner")
        campaign = live_client.post(
            "/api/v1/jobs",
            json={"kind": "campaign", "program_id": LARGE, "period": PERIOD},
            headers=policy,
        )
        assert campaign.status_code == 403, campaign.text
        auditor = live_client.post(
            "/api/v1/jobs", json={"kind": "check"}, headers=api_key("auditor")
        )
        assert auditor.status_code == 403

    @pytest.mark.parametrize(
        ("body", "status", "field"),
        [
            ({"kind": "campaign", "program_id": "kz.nope", "period": PERIOD}, 404, "program_id"),
            ({"kind": "campaign", "program_id": LARGE, "period": "2026-13"}, 422, "period"),
            ({"kind": "rules_run", "period": "2026-99"}, 422, "period"),
            ({"kind": "scoring", "period": "March"}, 422, "period"),
            ({"kind": "nightly"}, 422, "body"),
            ({"kind": "check", "colour": "red"}, 422, "check.colour"),
        ],
    )
    def test_bad_requests_name_the_field_and_queue_nothing(
        self, live_client: TestClient, body: dict[str, object], status: int, field: str
    ) -> None:
        response = live_client.post("/api/v1/jobs", json=body, headers=api_key())
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        fields = [e["field"] for e in response.json().get("errors", [])]
        assert field in fields, response.json()
        assert service.list_jobs().total == 0

    def test_unknown_job_is_a_404(self, live_client: TestClient) -> None:
        response = live_client.get("/api/v1/jobs/424242", headers=api_key())
        assert response.status_code == 404
        assert response.json()["code"] == "job_not_found"


class TestProgress:
    def test_a_running_jobs_progress_and_heartbeat_reach_the_store(
        self, proactive_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for _ in range(2):
            add_large_family(4)
        monkeypatch.setenv("SOCIALCARD_PROACTIVE__CHUNK_SIZE", "1")
        proactive_config.get_proactive_settings.cache_clear()
        monkeypatch.setattr(get_settings().jobs, "heartbeat_seconds", 0.05)
        job = service.submit(
            kind="campaign",
            params={"program_id": LARGE, "period": PERIOD},
            actor=None,
            started_by="test",
        )
        seen: list[tuple[str, str, int]] = []
        real = proactive_jobs.crashpoint

        def after_chunk(name: str) -> None:
            real(name)
            if name != "campaign_after_chunk" or seen:
                return
            # What another process reads while the job works: only the monitor writes the
            # step while the job runs (the claim leaves it empty).
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                stored = service.get(job_id=job.id)
                if stored.step:
                    seen.append((stored.status, stored.step, stored.done))
                    return
                time.sleep(0.02)

        monkeypatch.setattr(proactive_jobs, "crashpoint", after_chunk)
        ended = worker.run(job.id)
        assert ended.status == "succeeded", ended
        assert seen == [("running", "offers", 0)]
        assert (ended.step, ended.done, ended.total) == ("offers", 2, 2)


class TestCancel:
    def test_a_running_campaign_stops_between_chunks_and_resumes(
        self, proactive_env: Path, monkeypatch: pytest.MonkeyPatch, fast_cancel: None
    ) -> None:
        for _ in range(3):
            add_large_family(4)
        monkeypatch.setenv("SOCIALCARD_PROACTIVE__CHUNK_SIZE", "1")
        proactive_config.get_proactive_settings.cache_clear()
        job = service.submit(
            kind="campaign",
            params={"program_id": LARGE, "period": PERIOD},
            actor=None,
            started_by="test",
        )
        real = proactive_jobs.crashpoint

        def after_chunk(name: str) -> None:
            real(name)
            if name == "campaign_after_chunk" and _offers() == 1:
                service.cancel(job_id=job.id, actor=None)

        monkeypatch.setattr(proactive_jobs, "crashpoint", after_chunk)
        stopped = worker.run(job.id)
        assert stopped.status == "cancelled", stopped
        assert stopped.error_code == "cancelled"
        assert (stopped.step, stopped.done) == ("offers", 1)
        assert _offers() == 1
        monkeypatch.setattr(proactive_jobs, "crashpoint", real)
        resumed = worker.resume(job.id, actor=None, background=False)
        assert resumed.status == "succeeded", resumed
        assert resumed.attempts == 2
        assert resumed.result is not None
        assert resumed.result["offered"] == 3
        assert _offers() == 3

    @pytest.mark.usefixtures("postgres_only")
    def test_a_running_rules_run_stops_between_chunks_and_resumes(
        self, proactive_env: Path, monkeypatch: pytest.MonkeyPatch, fast_cancel: None
    ) -> None:
        # PostgreSQL only: on SQLite the run holds the write lock until it commits, so a
        # cancellation can be stored only before it starts writing (or it waits, then 503).
        for children in (3, 4, 5):
            add_large_family(children)
        monkeypatch.setattr(rules_service, "_CHUNK_FAMILIES", 1)
        job = service.submit(
            kind="rules_run", params={"period": PERIOD}, actor=None, started_by="test"
        )
        put = rules_service._Writer.put
        chunks: list[int] = []

        def put_then_cancel(self: object, table: object) -> float:
            chunks.append(1)
            if len(chunks) == 1:
                service.cancel(job_id=job.id, actor=None)
            return put(self, table)  # type: ignore[arg-type]

        monkeypatch.setattr(rules_service._Writer, "put", put_then_cancel)
        stopped = worker.run(job.id)
        assert stopped.status == "cancelled", stopped
        assert (stopped.step, stopped.done, stopped.total) == ("write", 1, 3)
        assert len(chunks) == 1
        with session_scope() as session:
            run = session.get(RulesRun, job.rules_run_id)
            assert run is not None
            assert (run.status, run.families) == ("cancelled", 0)
        monkeypatch.setattr(rules_service._Writer, "put", put)
        resumed = worker.resume(job.id, actor=None, background=False)
        assert resumed.status == "succeeded", resumed
        assert resumed.result is not None
        assert resumed.result["families"] == 3
        assert (resumed.step, resumed.done, resumed.total) == ("evaluate", 1, 1)


class TestRecovery:
    def test_a_dead_processs_rules_run_is_failed_then_resumed_to_the_same_result(
        self, proactive_env: Path
    ) -> None:
        for _ in range(2):
            add_large_family(4)
        reference = worker.start("rules_run", {"period": PERIOD}, actor=None, background=False)
        assert reference.status == "succeeded", reference
        job = service.submit(
            kind="rules_run", params={"period": PERIOD}, actor=None, started_by="t"
        )
        here = process.me()
        _orphan(job.id, f"{here.host}|{here.boot}|{_dead_pid()}")
        assert service.recover() == [job.id]
        failed = service.get(job_id=job.id)
        assert (failed.status, failed.error_code) == ("failed", "interrupted")
        with session_scope() as session:
            run = session.get(RulesRun, job.rules_run_id)
            assert run is not None
            assert run.status == "failed"
        resumed = worker.resume(job.id, actor=None, background=False)
        assert resumed.status == "succeeded", resumed
        assert resumed.rules_run_id == job.rules_run_id
        assert resumed.result is not None
        assert reference.result is not None
        same = ("families", "persons", "decisions", "eligible")
        assert {k: resumed.result[k] for k in same} == {k: reference.result[k] for k in same}
        with session_scope() as session:
            run = session.get(RulesRun, job.rules_run_id)
            assert run is not None
            assert (run.status, run.error) == ("succeeded", None)

    def test_another_machines_job_is_failed_only_when_its_heartbeat_is_old(
        self, proactive_env: Path
    ) -> None:
        stale = get_settings().jobs.stale_seconds
        job = service.submit(kind="check", params={}, actor=None, started_by="t")
        _orphan(job.id, "elsewhere|another-boot|1", heartbeat_age=stale / 2)
        assert service.recover() == []
        assert service.get(job_id=job.id).status == "running"
        _orphan(job.id, "elsewhere|another-boot|1", heartbeat_age=stale * 2)
        assert service.recover() == [job.id]
        assert service.get(job_id=job.id).status == "failed"

    def test_a_rules_run_left_queued_by_no_job_is_failed(self, proactive_env: Path) -> None:
        # A run committed queued by a process that stopped before runs were jobs.
        with session_scope() as session:
            left = rules_service.create_run(session, period=PERIOD)
        job = service.submit(
            kind="rules_run", params={"period": PERIOD}, actor=None, started_by="t"
        )
        assert service.recover() == []
        with session_scope() as session:
            statuses = {
                run_id: session.get(RulesRun, run_id).status  # type: ignore[union-attr]
                for run_id in (left.id, job.rules_run_id)
            }
        assert statuses == {left.id: "failed", job.rules_run_id: "queued"}

    def test_a_pid_given_to_a_later_process_is_not_the_owner(self, proactive_env: Path) -> None:
        job = service.submit(kind="check", params={}, actor=None, started_by="t")
        here, parent = process.me(), os.getppid()
        _orphan(job.id, str(process.Owner(here.host, here.boot, parent, process._started(parent))))
        assert service.recover() == []  # the parent process still runs
        _orphan(job.id, str(process.Owner(here.host, here.boot, parent, "1")))
        assert service.recover() == [job.id]  # that pid now belongs to another process

    def test_a_live_job_is_not_resumed_and_a_live_process_keeps_its_job(
        self, live_client: TestClient
    ) -> None:
        job = service.submit(kind="check", params={}, actor=None, started_by="t")
        assert service.recover() == []  # this process owns it
        response = live_client.post(f"/api/v1/jobs/{job.id}/resume", headers=api_key())
        assert response.status_code == 409
        assert response.json()["code"] == "job_not_resumable"
        here = process.me()
        _orphan(job.id, f"{here.host}|{here.boot}|{_dead_pid()}")
        resumed = live_client.post(f"/api/v1/jobs/{job.id}/resume", headers=api_key())
        assert resumed.status_code == 202, resumed.text
        assert resumed.headers["Location"] == f"/api/v1/jobs/{job.id}"
        assert worker.wait(job.id).status == "succeeded"
