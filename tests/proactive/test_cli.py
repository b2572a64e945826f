"""The proactive CLI end to end, the template API and the demo step."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner

from socialcard.cli.main import app
from socialcard.core.db import session_scope
from socialcard.jobs import worker as jobs_worker
from socialcard.proactive.demo import run_demo_campaigns
from socialcard.proactive.models import Message, Offer
from tests.proactive.conftest import LARGE, PERIOD, add_large_family, api_key

runner = CliRunner()


class TestCampaignCommands:
    def test_run_send_funnel_and_override(self, proactive_env: Path) -> None:
        add_large_family(4)
        add_large_family(5)
        run = runner.invoke(app, ["campaign", "run", LARGE, "--period", PERIOD])
        assert run.exit_code == 0, run.output
        assert json.loads(run.stdout.strip().splitlines()[-1])["offered"] == 2
        send = runner.invoke(app, ["proactive", "send"])
        assert json.loads(send.stdout) == {"sent": 2, "failed": 0}
        with session_scope() as session:
            offer_id = session.scalars(select(Offer.id)).first()
        override = runner.invoke(
            app,
            [
                "campaign",
                "override",
                str(offer_id),
                "--action",
                "refuse",
                "--reason",
                "refused in person at the office",
            ],
        )
        assert override.exit_code == 0, override.output
        assert json.loads(override.stdout)["status"] == "refused"
        funnel = runner.invoke(app, ["campaign", "funnel", "--no-regions"])
        assert funnel.exit_code == 0
        assert "Campaign funnel 2026-03" in funnel.stdout
        assert "kz.large_family" in funnel.stdout
        offers = runner.invoke(
            app, ["campaign", "offers", "--purpose", "case_review", "--status", "refused"]
        )
        assert len(offers.stdout.strip().splitlines()) == 1

    def test_errors_exit_2_with_the_reason(self, proactive_env: Path) -> None:
        unknown = runner.invoke(app, ["campaign", "run", "kz.none", "--period", PERIOD])
        assert unknown.exit_code == 2
        assert "kz.none" in unknown.output
        period = runner.invoke(app, ["campaign", "run", LARGE, "--period", "2026-3x"])
        assert period.exit_code == 2
        override = runner.invoke(
            app, ["campaign", "override", "1", "--action", "maybe", "--reason", "x" * 20]
        )
        assert override.exit_code == 2

    def test_schedule_runs_every_program_for_the_month(self, proactive_env: Path) -> None:
        add_large_family(4)
        result = runner.invoke(app, ["campaign", "schedule", "--period", PERIOD])
        assert result.exit_code == 0, result.output
        programs = [json.loads(line)["program_id"] for line in result.stdout.splitlines()]
        assert LARGE in programs
        assert len(programs) == 10


class TestTemplates:
    def test_an_edited_template_is_used_for_new_messages(self, live_client: TestClient) -> None:
        headers = api_key()
        bad = live_client.put(
            "/api/v1/proactive/templates/offer/ru",
            json={"body": "Привет {name}"},
            headers=headers,
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "body"
        unknown = live_client.put(
            "/api/v1/proactive/templates/offer/de", json={"body": "{program}"}, headers=headers
        )
        assert unknown.status_code == 422
        done = live_client.put(
            "/api/v1/proactive/templates/offer/ru",
            json={"body": "Новая выплата {program}: {amount}. Ответ 1 или 2. {link}"},
            headers=headers,
        )
        assert done.status_code == 200
        add_large_family(4, language="ru")
        run = live_client.post(
            f"/api/v1/proactive/campaigns/{LARGE}/run", json={"period": PERIOD}, headers=headers
        )
        assert run.status_code == 202  # a job now: wait for it
        assert jobs_worker.wait(run.json()["id"]).status == "succeeded"
        with session_scope() as session:
            body = session.scalars(select(Message.body)).one()
        assert body.startswith("Новая выплата Пособие многодетной семье: 69 330 ₸")
        listed = live_client.get("/api/v1/proactive/templates", headers=headers).json()
        assert sum(t["edited"] for t in listed) == 1
        assert len(listed) == 45  # 9 kinds and 6 outreach invitation kinds in kk, ru and en


class TestDemoStep:
    def test_prints_the_funnel_and_is_repeatable(self, proactive_env: Path) -> None:
        add_large_family(4)
        out = StringIO()
        run_demo_campaigns(Console(file=out, width=150), period=PERIOD)
        run_demo_campaigns(Console(file=out, width=150), period=PERIOD)
        text = out.getvalue()
        assert "Campaign funnel 2026-03" in text
        assert "kz.large_family" in text
        with session_scope() as session:
            assert len(session.scalars(select(Offer)).all()) >= 1
            assert {m.status for m in session.scalars(select(Message))} == {"delivered"}
