"""`socialcard wallet ...` end to end on a committed store: money and merchants are requests
an operator files and a policy owner approves (`socialcard approvals approve`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from socialcard.cli.main import app
from socialcard.core.db import run_before_commit, session_scope
from socialcard.security import service as security_service
from socialcard.security.models import AuditEvent
from socialcard.wallet.funding import service as funding_service
from socialcard.wallet.funding.schemas import BudgetAllocation
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


def _keys() -> dict[str, str]:
    with session_scope() as session:
        return {
            role: security_service.create_api_key(session, name=f"cli-{role}", role=role).key
            for role in ("operator", "policy_owner", "admin")
        }


def _request_id(output: str) -> str:
    found = re.search(r"request (\d+):", output)
    assert found is not None, output
    return found.group(1)


class TestWalletCli:
    def test_allocate_and_fund_from_a_file_once_approved(
        self, committed_engine: Engine, tmp_path: Path
    ) -> None:
        keys = _keys()
        person_id = _person(committed_engine)
        allocated = runner.invoke(
            app,
            ["wallet", "allocate", "--program", PROGRAM, "--region", REGION,
             "--amount-minor", "100000", "--key", "a1", "--api-key", keys["operator"]],
        )  # fmt: skip
        assert allocated.exit_code == 0, allocated.output
        assert "awaiting approval" in allocated.stdout
        with Session(committed_engine) as session:
            assert ledger_repository.counts(session)["postings"] == 0  # nothing moved yet
        request = _request_id(allocated.stdout)
        same = runner.invoke(app, ["approvals", "approve", request, "--api-key", keys["operator"]])
        assert same.exit_code == 2
        assert "cannot approve" in same.output
        approved = runner.invoke(
            app, ["approvals", "approve", request, "--api-key", keys["policy_owner"]]
        )
        assert approved.exit_code == 0, approved.output
        order = {
            "idempotency_key": "order-1", "person_id": person_id, "program_id": PROGRAM,
            "region_kato": REGION, "amount_minor": 43250, "benefit_type": "food", "period": PERIOD,
        }  # fmt: skip
        bad = {**order, "idempotency_key": "order-2", "benefit_type": "caviar"}
        orders = tmp_path / "orders.json"
        orders.write_text(json.dumps([order, bad]))
        refused = runner.invoke(
            app, ["wallet", "fund", "--file", str(orders), "--api-key", keys["operator"]]
        )
        assert refused.exit_code == 2
        assert "orders.2.benefit_type" in refused.output  # nothing filed
        # 56,750 left after order-1: order-3 would overdraw, order-4 still fits.
        over = {**order, "idempotency_key": "order-3", "amount_minor": 60000}
        fits = {**order, "idempotency_key": "order-4", "amount_minor": 50000}
        orders.write_text(json.dumps([order, order, over, fits]))
        filed = runner.invoke(
            app, ["wallet", "fund", "--file", str(orders), "--api-key", keys["operator"]]
        )
        assert filed.exit_code == 0, filed.output
        paid = runner.invoke(
            app,
            ["approvals", "approve", _request_id(filed.stdout), "--api-key", keys["policy_owner"]],
        )
        assert paid.exit_code == 0, paid.output
        assert "funded 3, refused 1" in paid.stdout  # order-1's repeat replays its answer
        assert "order-3: budget_exhausted" in paid.stdout
        with Session(committed_engine) as session:
            # allocation, order-1, order-4
            assert ledger_repository.counts(session)["postings"] == 3
            actions = [
                (e.action, e.actor_role)
                for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
                if e.action.startswith("wallet.")
            ]
        assert actions == [
            ("wallet.budget.allocate", "policy_owner"),
            ("wallet.funding", "policy_owner"),
            ("wallet.funding", "policy_owner"),
        ]
        stats = runner.invoke(app, ["wallet", "stats"])
        assert stats.exit_code == 0
        assert "932.50" in stats.stdout  # 432.50 + 500.00
        check = runner.invoke(app, ["wallet", "check"])
        assert check.exit_code == 0, check.output
        assert "clean" in check.stdout

    def test_money_commands_need_a_persons_key(self, committed_engine: Engine) -> None:
        result = runner.invoke(
            app,
            ["wallet", "allocate", "--program", PROGRAM, "--region", REGION,
             "--amount-minor", "500", "--key", "a1"],
        )  # fmt: skip
        assert result.exit_code == 2
        assert "--api-key" in result.output

    def test_check_fails_on_a_broken_ledger(self, committed_engine: Engine) -> None:
        with session_scope() as session:
            funding_service.allocate_budget(
                session,
                idempotency_key="a1",
                allocation=BudgetAllocation(
                    program_id=PROGRAM, region_kato=REGION, amount_minor=500
                ),
            )
        with Session(committed_engine) as session:
            row = ledger_repository.account_by_code(session, f"budget:{PROGRAM}:{REGION}")
            ledger_repository.change_balance(
                session, account_id=row.id, balance_delta=7, held_delta=0
            )
            session.commit()
        result = runner.invoke(app, ["wallet", "check"])
        assert result.exit_code == 1
        assert "cached balance 507 != replay 500" in result.stdout

    def test_a_merchant_is_onboarded_on_approval_then_given_terminals(
        self, committed_engine: Engine
    ) -> None:
        keys = _keys()
        filed = runner.invoke(
            app, ["wallet", "merchant-add", "--bin", make_bin("05034001111"), "--name", "Apteka",
                  "--category", "pharmacy", "--licensed", "--api-key", keys["operator"]],
        )  # fmt: skip
        assert filed.exit_code == 0, filed.output
        approved = runner.invoke(
            app, ["approvals", "approve", _request_id(filed.stdout), "--api-key", keys["admin"]]
        )
        assert approved.exit_code == 0, approved.output
        listed = runner.invoke(app, ["approvals", "list", "--status", "approved"])
        assert "merchant_onboarding" in listed.stdout
        with Session(committed_engine) as session:
            merchant_id = session.scalar(
                select(AuditEvent.subject_id).where(AuditEvent.action == "wallet.merchant.create")
            )
        terminal = runner.invoke(
            app, ["wallet", "terminal-add", "--merchant-id", str(merchant_id), "--code", "T1"]
        )
        assert terminal.exit_code == 0, terminal.output
        assert terminal.stdout.strip().startswith("sct_")
        bad = runner.invoke(
            app,
            ["wallet", "merchant-add", "--bin", "123456789012", "--name", "X",
             "--category", "grocery", "--api-key", keys["operator"]],
        )  # fmt: skip
        assert bad.exit_code == 2
        assert "check digit" in bad.output
