"""The CLI end to end: migrate the store and issue an API key that then works over HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from socialcard.app import create_app
from socialcard.cli.main import app

runner = CliRunner()


def test_db_upgrade_is_idempotent(committed_engine: Engine) -> None:
    for _ in range(2):
        result = runner.invoke(app, ["db", "upgrade"])
        assert result.exit_code == 0, result.output


def test_apikey_create_prints_a_working_key(committed_engine: Engine) -> None:
    result = runner.invoke(app, ["apikey", "create", "--name", "ops", "--role", "auditor"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    with TestClient(create_app()) as client:
        response = client.get("/api/v1/audit/events", headers={"X-API-Key": key})
    assert response.status_code == 200


def test_apikey_create_rejects_unknown_role(committed_engine: Engine) -> None:
    result = runner.invoke(app, ["apikey", "create", "--name", "ops", "--role", "wizard"])
    assert result.exit_code == 2
    assert "unknown role" in result.output
