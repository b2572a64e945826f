"""The demo's chain end to end on a small generated region: rules run, campaigns, simulated SMS
answers, consents, payment orders paid into wallets, vouchers from the run's decisions,
redemptions, statistics; and the voucher orders one decision gives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from io import StringIO
from pathlib import Path
from typing import ClassVar

import pytest
from rich.console import Console
from sqlalchemy import Engine, func, select

from socialcard.core.clock import today
from socialcard.core.db import session_scope
from socialcard.proactive import config as proactive_config
from socialcard.proactive.demo import print_demo_funnel, run_demo_campaigns
from socialcard.proactive.enums import InboundOutcome
from socialcard.proactive.models import Assignment, InboundReply, PaymentOrder
from socialcard.proactive.service import funnel
from socialcard.registry import service as registry_service
from socialcard.registry.population.loader import generate_population
from socialcard.rules import service as rules_service
from socialcard.rules.schemas import StoredDecision
from socialcard.security import service as security_service
from socialcard.security.schemas import Actor
from socialcard.wallet import demo as wallet_demo
from socialcard.wallet import service as wallet_service
from socialcard.wallet.funding.decisions import orders_for_decision, school_days, valued
from socialcard.wallet.vouchers import service as voucher_service
from socialcard.wallet.vouchers.catalog import load_catalog
from socialcard.wallet.vouchers.models import Voucher

REPO = Path(__file__).resolve().parents[2]
EARMARKED = ("food", "gas", "school_meal", "transit")
# МРП by year (REFERENCE.md §1), written out here so the test does not read the pack it checks.
# The МРП by the year it took effect (the pack's dated parameter: the last value stays in force).
MRP_MINOR = {"2024": 3692_00, "2025": 3932_00, "2026": 4325_00}


@pytest.fixture
def chain_env(
    committed_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """Committed store with a generated region, the KZ pack, SMS to a file under tmp_path."""
    monkeypatch.setenv("SOCIALCARD_PROACTIVE__PACK_PATH", str(REPO / "packs" / "kz"))
    monkeypatch.setenv("SOCIALCARD_PROACTIVE__OUTBOX_FILE", str(tmp_path / "sms.jsonl"))
    proactive_config.get_proactive_settings.cache_clear()
    generate_population(committed_engine, families=400, seed=3, region="750000000")
    yield committed_engine
    proactive_config.get_proactive_settings.cache_clear()


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _run_chain(period: str) -> str:
    out = StringIO()
    console = Console(file=out, width=120)
    run_demo_campaigns(console, period, seed=7, funnel=False)
    with session_scope() as session:
        maker = security_service.create_api_key(session, name="maker", role="operator")
        checker = security_service.create_api_key(session, name="checker", role="policy_owner")
    staff = wallet_demo.DemoStaff(
        maker=Actor(maker.id, maker.name, maker.role),
        checker=Actor(checker.id, checker.name, checker.role),
    )
    wallet_demo.demo_step(console, period=period, staff=staff)
    print_demo_funnel(console)
    return out.getvalue()


def test_the_demo_funds_wallets_only_from_decisions(chain_env: Engine) -> None:
    period = f"{today():%Y-%m}"
    with session_scope() as session:
        run = rules_service.run_rules(
            session, period=period, snapshot=rules_service.session_snapshot(session, period=period)
        )
    text = _run_chain(period)
    assert "Vouchers by type and region" in text
    assert "wallet check: clean" in text

    with session_scope() as session:
        rows = funnel(session)
        totals = {
            name: sum(getattr(r, name) for r in rows)
            for name in ("agreed", "refused", "lapsed", "assigned", "paid")
        }
        # Citizens agreed, refused, stayed silent (lapsed) and sent unclear replies.
        assert totals["agreed"] > 0
        assert totals["refused"] > 0
        assert totals["lapsed"] > 0
        assert totals["assigned"] == totals["agreed"] == totals["paid"]
        outcomes = dict(
            session.execute(
                select(InboundReply.outcome, func.count()).group_by(InboundReply.outcome)
            ).all()
        )
        assert outcomes.get(InboundOutcome.HELP.value, 0) > 0
        assert outcomes[InboundOutcome.DECIDED.value] == totals["agreed"] + totals["refused"]

        # Every payment order of a consent is paid into a cash voucher of the same amount.
        orders = session.scalars(select(PaymentOrder)).all()
        assert orders
        assert {o.status for o in orders} == {"paid"}
        vouchers = session.scalars(select(Voucher)).all()
        cash = {v.id: v for v in vouchers if v.type == "cash"}
        for order in orders:
            voucher_id = int(str(order.external_reference).removeprefix("wallet-voucher:"))
            assert cash[voucher_id].nominal_minor == order.amount_minor
            assert cash[voucher_id].person_id == order.person_id
            assert cash[voucher_id].source_program_id == order.program_id
            assignment = session.get(Assignment, order.assignment_id)
            assert assignment is not None
            assert cash[voucher_id].source_entity_id == assignment.entity_id
        assert len(cash) == len(orders)

        # Earmarked vouchers: each from an eligible decision of the run, of a family or person
        # receiving the benefit, with the reference to that decision.
        receiving = {
            (a.program_id, a.entity_id): a.person_id
            for a in session.scalars(select(Assignment).where(Assignment.status == "active"))
        }
        sources = {s.voucher: s for s in load_catalog().decision_sources}
        decisions = {
            (d.program_id, d.entity_id): d
            for program_id in {s.decision for s in sources.values()}
            for d in rules_service.eligible_decisions(
                session, run_id=run.id, program_id=program_id, period=period
            )
        }
        issued: dict[tuple[str, str, int], int] = {}
        mrp = MRP_MINOR[max(year for year in MRP_MINOR if year <= period[:4])]
        first = date(int(period[:4]), int(period[5:7]), 1)
        for voucher in (v for v in vouchers if v.type in EARMARKED):
            source = sources[voucher.type]
            assert voucher.source_run_id == run.id
            assert voucher.source_period == period
            assert voucher.source_program_id == source.decision
            assert voucher.program_id == source.budget
            key = (source.decision, int(voucher.source_entity_id or 0))
            decision = decisions[key]
            assert key in receiving
            # Valued by the decision's rules, which the voucher names.
            assert voucher.rule_version == decision.version is not None
            assert voucher.rule_pack_hash == run.pack_hash
            issued[(voucher.type, *key)] = issued.get((voucher.type, *key), 0) + 1
            if voucher.type == "food":
                assert voucher.person_id == receiving[key]
                assert voucher.nominal_minor == decision.variables["food_voucher"]
                assert voucher.nominal_minor == mrp * decision.variables["family_size"]
            if voucher.type == "gas":
                assert voucher.nominal_minor == decision.variables["gas_voucher"] == 4500_00
            if voucher.type == "school_meal":
                members = registry_service.current_members(session, [decision.family_id or 0])
                child = next(
                    m for m in members[decision.family_id or 0] if m.person_id == voucher.person_id
                )
                assert 7 <= _age(child.birth_on, first) <= 17
                assert voucher.nominal_minor == 900_00 * school_days(period)
                assert decision.variables["school_meal_day"] == 900_00
            if voucher.type == "transit":
                assert voucher.person_id == decision.entity_id
                assert voucher.fare_category == "disabled"
                assert voucher.nominal_minor == decision.variables["transit_voucher"]
        # Every receiving family eligible for targeted assistance got one food and one gas voucher.
        asp = [k for k in decisions if k[0] == "kz.asp" and k in receiving]
        assert asp
        for key in asp:
            assert issued[("food", *key)] == 1
            assert issued[("gas", *key)] == 1

        summary = voucher_service.summary(session, region_digits=2)
        assert sum(r.issued for r in summary) == len(vouchers)
        assert sum(r.redeemed for r in summary) > 0
        assert wallet_service.check(session).ok
        counts = (len(vouchers), len(orders))

    # Running the chain again the same month pays and issues nothing twice.
    again_text = _run_chain(period)
    assert "vouchers from the rules run's decisions: none new" in again_text
    assert "budgets topped up by 0 ₸" in again_text
    with session_scope() as session:
        again = (
            session.scalar(select(func.count()).select_from(Voucher)),
            session.scalar(select(func.count()).select_from(PaymentOrder)),
        )
        assert again == counts
        assert wallet_service.check(session).ok


ASP_VARIABLES = {
    "family_size": 4,
    "food_voucher": 4 * 4325_00,
    "gas_voucher": 4500_00,
    "school_meal_day": 900_00,
    "school_meal_children": 2,
    "school_meal_age_from": 7,
    "school_meal_age_to": 17,
}


def _decision(**changes: object) -> StoredDecision:
    values: dict[str, object] = {
        "run_id": 4,
        "period": "2026-03",
        "program_id": "kz.asp",
        "entity_type": "family",
        "entity_id": 10,
        "family_key": 10,
        "family_id": 10,
        "person_id": 100,
        "region_kato": "751110000",
        "eligible": True,
        "amount_minor": 155_358_00,
        "version": "2025-09-01",
        "conditions": {"income_within_poverty_line": True},
        "variables": dict(ASP_VARIABLES),
    }
    values.update(changes)
    return StoredDecision.model_validate(values)


class TestOrdersForDecision:
    sources: ClassVar = {s.voucher: s for s in load_catalog().decision_sources}
    members: ClassVar = [
        registry_service.Member(100, "head", date(1985, 1, 1), None),
        registry_service.Member(101, "spouse", date(1987, 1, 1), None),
        registry_service.Member(102, "child", date(2016, 2, 1), None),  # 10 in March 2026
        registry_service.Member(103, "child", date(2021, 5, 1), None),  # 4
        registry_service.Member(104, "child", date(2009, 3, 2), None),  # 16 on 1 March
    ]

    def test_food_is_the_decisions_value_to_who_agreed(self) -> None:
        (order,) = orders_for_decision(
            _decision(),
            self.sources["food"],
            recipient_id=101,
            members=self.members,
            pack_hash="ab12",
        )
        assert order.person_id == 101
        assert order.amount_minor == 4 * 4325_00
        assert order.program_id == "kz.food_voucher"
        assert order.benefit_type == "food"
        assert order.source is not None
        assert (order.source.run_id, order.source.program_id, order.source.entity_id) == (
            4,
            "kz.asp",
            10,
        )
        assert (order.source.rule_version, order.source.pack_hash) == ("2025-09-01", "ab12")
        assert order.idempotency_key == "decision:food:2026-03:kz.asp:10:101"

    def test_the_value_is_the_decisions_not_a_wallet_setting(self) -> None:
        decision = _decision(
            period="2025-11", variables={**ASP_VARIABLES, "food_voucher": 3 * 3932_00}
        )
        (order,) = orders_for_decision(decision, self.sources["food"], recipient_id=101)
        assert order.amount_minor == 3 * 3932_00
        (gas,) = orders_for_decision(
            _decision(variables={**ASP_VARIABLES, "gas_voucher": 5100_00}),
            self.sources["gas"],
            recipient_id=101,
        )
        assert gas.amount_minor == 5100_00

    def test_a_decision_without_the_value_issues_nothing(self) -> None:
        variables = {k: v for k, v in ASP_VARIABLES.items() if k != "food_voucher"}
        decision = _decision(variables=variables)
        assert not valued(decision, self.sources["food"])
        assert orders_for_decision(decision, self.sources["food"], recipient_id=101) == []
        assert (
            orders_for_decision(
                _decision(variables={**ASP_VARIABLES, "food_voucher": True}),
                self.sources["food"],
                recipient_id=101,
            )
            == []
        )

    def test_school_meals_go_to_each_school_age_child_at_their_canteen(self) -> None:
        source = self.sources["school_meal"]
        assert (
            orders_for_decision(_decision(), source, recipient_id=100, members=self.members) == []
        )
        orders = orders_for_decision(
            _decision(), source, recipient_id=100, members=self.members, bound_merchant_id=7
        )
        assert sorted(o.person_id for o in orders) == [102, 104]
        assert {o.amount_minor for o in orders} == {900_00 * 22}
        assert {o.bound_merchant_id for o in orders} == {7}

    def test_the_school_age_band_is_the_decisions(self) -> None:
        source = self.sources["school_meal"]
        decision = _decision(
            variables={**ASP_VARIABLES, "school_meal_age_from": 4, "school_meal_age_to": 10}
        )
        orders = orders_for_decision(
            decision, source, recipient_id=100, members=self.members, bound_merchant_id=7
        )
        assert sorted(o.person_id for o in orders) == [102, 103]
        no_band = {k: v for k, v in ASP_VARIABLES.items() if k != "school_meal_age_to"}
        assert (
            orders_for_decision(
                _decision(variables=no_band),
                source,
                recipient_id=100,
                members=self.members,
                bound_merchant_id=7,
            )
            == []
        )

    def test_transit_goes_to_the_person_the_decision_is_about(self) -> None:
        decision = _decision(
            program_id="kz.disability",
            entity_type="person",
            entity_id=103,
            person_id=103,
            variables={"transit_voucher": 3000_00},
        )
        (order,) = orders_for_decision(decision, self.sources["transit"], recipient_id=100)
        assert (order.person_id, order.fare_category) == (103, "disabled")
        assert order.amount_minor == 3000_00
