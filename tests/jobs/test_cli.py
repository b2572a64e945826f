"""`socialcard jobs ...`: start here to the end, list, show, cancel and resume."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from socialcard.cli.main import app
from socialcard.jobs import service
from tests.proactive.conftest import LARGE, PERIOD, add_large_family

runner = CliRunner()


class TestJobsCommands:
    def test_start_list_show_cancel_and_resume(self, proactive_env: Path) -> None:
        add_large_family(4)
        started = runner.invoke(
            app, ["jobs", "start", "campaign", "--program", LARGE, "--period", PERIOD]
        )
        assert started.exit_code == 0, started.output
        job = json.loads(started.stdout)
        assert (job["status"], job["result"]["offered"]) == ("succeeded", 1)
        listed = runner.invoke(app, ["jobs", "list", "--kind", "campaign"])
        assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [job["id"]]
        shown = runner.invoke(app, ["jobs", "show", str(job["id"])])
        assert json.loads(shown.stdout)["label"] == f"{LARGE} {PERIOD}"
        finished = runner.invoke(app, ["jobs", "cancel", str(job["id"])])
        assert finished.exit_code == 2
        assert "already ended" in finished.stderr
        queued = service.submit(kind="check", params={}, actor=None, started_by="t")
        cancelled = runner.invoke(app, ["jobs", "cancel", str(queued.id)])
        assert json.loads(cancelled.stdout)["status"] == "cancelled"
        resumed = runner.invoke(app, ["jobs", "resume", str(queued.id)])
        assert resumed.exit_code == 0, resumed.output
        assert json.loads(resumed.stdout)["result"]["ok"] is True

    def test_bad_requests_exit_2_with_the_reason(self, proactive_env: Path) -> None:
        missing = runner.invoke(app, ["jobs", "start", "scoring"])
        assert missing.exit_code == 2
        assert "--period" in missing.stderr
        unknown = runner.invoke(app, ["jobs", "start", "nightly", "--period", PERIOD])
        assert unknown.exit_code == 2
        assert "unknown job kind" in unknown.stderr
        gone = runner.invoke(app, ["jobs", "show", "424242"])
        assert gone.exit_code == 2
        assert service.list_jobs().total == 0
