"""The card's demo step on a small generated region: cards from a stored rules run, one pass as
a QR code, verified online and offline, then a death reported through the registry's ingestion
turns both verifications to "invalid"."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from rich.console import Console
from sqlalchemy import Engine, func, select

from socialcard.card import demo as card_demo
from socialcard.card.models import Card, PassBatch
from socialcard.core.clock import today
from socialcard.core.db import session_scope
from socialcard.registry.population.loader import generate_population
from socialcard.rules import service as rules_service


def test_the_demo_shows_a_pass_verified_then_revoked(
    committed_engine: Engine, tmp_path: Path
) -> None:
    generate_population(committed_engine, families=300, seed=5, region="750000000")
    period = f"{today():%Y-%m}"
    with session_scope() as session:
        rules_service.run_rules(
            session, period=period, snapshot=rules_service.session_snapshot(session, period=period)
        )
    out = StringIO()
    card_demo.run_demo_step(Console(file=out, width=200), period=period, var=tmp_path)
    text = out.getvalue()
    assert "Online verification:  valid" in text
    assert "Offline verification: valid" in text
    assert "online verification now: invalid" in text
    assert "Offline verification after a cache refresh: invalid" in text
    assert "QR:" in text
    assert "version" in text
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Card)) > 50
        assert (
            session.scalar(
                select(func.count()).select_from(PassBatch).where(PassBatch.state == "revoked")
            )
            == 1
        )
