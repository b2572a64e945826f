"""`socialcard card ...` on a committed store: sync from a rules run, issue into a wallet file,
present with a QR, verify offline from a cache, revoke, link a card, set and check a PIN."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, select
from typer.testing import CliRunner

from socialcard.card.models import Card
from socialcard.cli.main import app
from socialcard.core.clock import today
from socialcard.core.db import session_scope
from socialcard.rules import service as rules_service
from tests.card.conftest import years_ago
from tests.factories import make_fact, make_family, make_person

runner = CliRunner()


def _pensioner_with_run() -> int:
    with session_scope() as session:
        person = make_person(session, sex="F", birth_on=years_ago(72))
        make_family(session, [(person, "head")])
        make_fact(
            session, person, kind="pension", detail="retirement", quantity=30, amount_minor=None
        )
        period = f"{today():%Y-%m}"
        rules_service.run_rules(
            session, period=period, snapshot=rules_service.session_snapshot(session, period=period)
        )
        return person.id


def test_the_card_commands_end_to_end(committed_engine: Engine, tmp_path: Path) -> None:
    person_id = _pensioner_with_run()
    synced = runner.invoke(app, ["card", "sync"])
    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.stdout.splitlines()[-1])["created"] >= 1
    with session_scope() as session:
        card_id = session.scalars(select(Card.id).where(Card.person_id == person_id)).one()
    wallet = tmp_path / "wallet.json"
    issued = runner.invoke(
        app, ["card", "issue", "--card-id", str(card_id), "--wallet", str(wallet), "--copies", "3"]
    )
    assert issued.exit_code == 0, issued.output
    assert "transit_reduced" in issued.stdout
    assert wallet.stat().st_mode & 0o077 == 0
    cache = tmp_path / "cache"
    assert runner.invoke(app, ["card", "cache", "--dir", str(cache)]).exit_code == 0
    shown = runner.invoke(
        app, ["card", "present", "--wallet", str(wallet), "--tariff", "transit_reduced", "--qr"]
    )
    assert shown.exit_code == 0, shown.output
    presentation = shown.stdout.strip().splitlines()[-1]
    ok = runner.invoke(
        app,
        ["card", "verify", presentation, "--tariff", "transit_reduced", "--offline", str(cache)],
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["result"] == "valid"
    assert runner.invoke(app, ["card", "revoke", "--card-id", str(card_id)]).exit_code == 0
    assert runner.invoke(app, ["card", "cache", "--dir", str(cache)]).exit_code == 0
    again = runner.invoke(
        app, ["card", "present", "--wallet", str(wallet), "--tariff", "transit_reduced"]
    )
    refused = runner.invoke(
        app,
        [
            "card",
            "verify",
            again.stdout.strip().splitlines()[-1],
            "--tariff",
            "transit_reduced",
            "--offline",
            str(cache),
        ],
    )
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["result"] == "invalid"


def test_bank_link_and_pin_read_secrets_from_stdin(committed_engine: Engine) -> None:
    person_id = _pensioner_with_run()
    assert runner.invoke(app, ["card", "sync"]).exit_code == 0
    with session_scope() as session:
        card_id = session.scalars(select(Card.id).where(Card.person_id == person_id)).one()
    linked = runner.invoke(
        app,
        ["card", "link", "--card-id", str(card_id), "--channel", "office"],
        input="4111111111111111\n",
    )
    assert linked.exit_code == 0, linked.output
    assert "4111111111111111" not in linked.output
    bad = runner.invoke(app, ["card", "link", "--card-id", str(card_id)], input="1234\n")
    assert bad.exit_code == 2
    assert "1234" not in bad.output
    assert (
        runner.invoke(
            app, ["card", "pin", "set", "--card-id", str(card_id)], input="2468\n"
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(
            app, ["card", "pin", "check", "--card-id", str(card_id)], input="2468\n"
        ).exit_code
        == 0
    )
    wrong = runner.invoke(app, ["card", "pin", "check", "--card-id", str(card_id)], input="1111\n")
    assert wrong.exit_code == 2
    assert "tries left" in wrong.output
