"""`socialcard wallet ...` end to end on a committed store."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from socialcard.cli.main import app
from socialcard.core.db import run_before_commit
from socialcard.wallet.ledger import repository as ledger_repository
from socialcard.wallet.merchants.service import make_bin
from tests.factories import make_person
from tests.wallet.factories import PERIOD, PROGRAM, REGION

runner = CliRunner()


def _person(engine: Engine) -> int:
    with Session(engine) as session:
        person_id = make_person(session).id
        run_before_commit(session)
        session.commit()
    return person_id


class TestWalletCli:
    def test_allocate_fund_from_file_stats_and_check(
        self, committed_engine: Engine, tmp_path: Path
    ) -> None:
        person_id = _person(committed_engine)
        allocated = runner.invoke(
            app,
            ["wallet", "allocate", "--program", PROGRAM, "--region", REGION,
             "--amount-minor", "100000", "--key", "a1"],
        )  # fmt: skip
        assert allocated.exit_code == 0, allocated.output
        order = {
            "idempotency_key": "order-1", "person_id": person_id, "program_id": PROGRAM,
            "region_kato": REGION, "amount_minor": 43250, "benefit_type": "food", "period": PERIOD,
        }  # fmt: skip
        bad = {**order, "idempotency_key": "order-2", "benefit_type": "caviar"}
        # 56,750 left after order-1: this one would overdraw, the next still fits.
        over = {**order, "idempotency_key": "order-3", "amount_minor": 60000}
        fits = {**order, "idempotency_key": "order-4", "amount_minor": 50000}
        orders = tmp_path / "orders.json"
        orders.write_text(json.dumps([order, order, bad, over, fits]))
        funded = runner.invoke(app, ["wallet", "fund", "--file", str(orders)])
        assert funded.exit_code == 1  # the refused orders named by their line, the rest paid
        assert "funded 3, rejected 2" in funded.stdout
        assert "order 3: voucher_type_unknown" in funded.output
        assert "order 4: budget_exhausted" in funded.output
        with Session(committed_engine) as session:
            # allocation, order-1 (its repeat paid nothing), order-4
            assert ledger_repository.counts(session)["postings"] == 3
        stats = runner.invoke(app, ["wallet", "stats"])
        assert stats.exit_code == 0
        assert "food" in stats.stdout
        assert "932.50" in stats.stdout  # 432.50 + 500.00
        check = runner.invoke(app, ["wallet", "check"])
        assert check.exit_code == 0, check.output
        assert "clean" in check.stdout

    def test_check_fails_on_a_broken_ledger(self, committed_engine: Engine) -> None:
        runner.invoke(
            app,
            ["wallet", "allocate", "--program", PROGRAM, "--region", REGION,
             "--amount-minor", "500", "--key", "a1"],
        )  # fmt: skip
        with Session(committed_engine) as session:
            row = ledger_repository.account_by_code(session, f"budget:{PROGRAM}:{REGION}")
            ledger_repository.change_balance(
                session, account_id=row.id, balance_delta=7, held_delta=0
            )
            session.commit()
        result = runner.invoke(app, ["wallet", "check"])
        assert result.exit_code == 1
        assert "cached balance 507 != replay 500" in result.stdout

    def test_merchant_add_prints_a_terminal_key(self, committed_engine: Engine) -> None:
        ok = runner.invoke(
            app, ["wallet", "merchant-add", "--bin", make_bin("05034001111"), "--name", "Apteka",
                  "--category", "pharmacy", "--licensed"],
        )  # fmt: skip
        assert ok.exit_code == 0, ok.output
        assert ok.stdout.strip().startswith("sct_")
        bad = runner.invoke(
            app,
            [
                "wallet",
                "merchant-add",
                "--bin",
                "123456789012",
                "--name",
                "X",
                "--category",
                "grocery",
            ],
        )
        assert bad.exit_code == 2
        assert "check digit" in bad.output
