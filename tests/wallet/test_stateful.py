"""A hypothesis state machine against a simple model: issue, hold, capture, void, refund,
expire and advance the clock, with the ledger's invariants checked after every step."""

from __future__ import annotations

import calendar
import itertools
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.orm import Session

from socialcard.core.config import get_settings
from socialcard.core.errors import AppError
from socialcard.wallet import service as wallet_service
from socialcard.wallet.business_day import business_day
from socialcard.wallet.ledger import repository as ledger_repository
from socialcard.wallet.redemption import service as redemption_service
from socialcard.wallet.redemption.schemas import AuthorizeRequest
from socialcard.wallet.vouchers import service as voucher_service
from tests.wallet.factories import NOW, activate, food_items, fund, make_merchant, token_of


@dataclass
class VoucherModel:
    account_id: int
    token: str
    valid_until: date
    balance: int
    held: int = 0
    expired: bool = False


@dataclass
class HoldModel:
    id: int
    voucher: VoucherModel
    amount: int
    expires_at: datetime
    status: str = "authorized"
    captured: int = 0
    refunded: int = 0


@dataclass
class Model:
    vouchers: list[VoucherModel] = field(default_factory=list)
    holds: dict[int, HoldModel] = field(default_factory=dict)
    merchant_net: int = 0


def make_machine(session: Session) -> type[RuleBasedStateMachine]:
    keys = itertools.count()
    ttl = timedelta(minutes=get_settings().wallet.hold_ttl_minutes)

    class WalletMachine(RuleBasedStateMachine):
        vouchers = Bundle("vouchers")
        holds = Bundle("holds")

        def __init__(self) -> None:
            super().__init__()
            self.savepoint = session.begin_nested()
            self.now = NOW
            self.model = Model()
            self.merchant_id, self.terminal, _ = make_merchant(session)

        def teardown(self) -> None:
            if self.savepoint.is_active:
                self.savepoint.rollback()

        def _key(self) -> str:
            return f"k{next(keys)}"

        @rule(target=vouchers, amount=st.integers(1, 50_000))
        def issue(self, amount: int) -> VoucherModel:
            # The wallet's days are local business days (Asia/Almaty), not UTC dates.
            today = business_day(self.now)
            period = f"{today:%Y-%m}"
            funded = fund(session, amount_minor=amount, now=self.now, period=period)
            activate(session, funded.voucher_id, now=self.now)
            last_day = calendar.monthrange(today.year, today.month)[1]
            voucher = VoucherModel(
                funded.account_id,
                token_of(session, funded.voucher_id),
                today.replace(day=last_day),
                amount,
            )
            self.model.vouchers.append(voucher)
            return voucher

        @rule(target=holds, voucher=vouchers, amount=st.integers(1, 20_000), capture=st.booleans())
        def authorize(self, voucher: VoucherModel, amount: int, capture: bool) -> object:
            result = redemption_service.authorize(
                session,
                terminal=self.terminal,
                idempotency_key=self._key(),
                request=AuthorizeRequest(
                    token=voucher.token,
                    items=food_items(amount),
                    capture=capture,
                    allow_partial=False,
                ),
                now=self.now,
            )
            if voucher.expired or business_day(self.now) > voucher.valid_until:
                assert (result.decision, result.reason) == ("declined", "voucher_expired")
                return multiple()
            if amount > voucher.balance - voucher.held:
                assert (result.decision, result.reason) == ("declined", "insufficient_balance")
                return multiple()
            assert result.decision == "approved"
            assert result.authorization_id is not None
            hold = HoldModel(result.authorization_id, voucher, amount, self.now + ttl)
            if capture:
                hold.status, hold.captured = "captured", amount
                voucher.balance -= amount
                self.model.merchant_net += amount
            else:
                voucher.held += amount
            self.model.holds[hold.id] = hold
            return hold

        @rule(hold=holds, quarters=st.integers(0, 4))
        def capture(self, hold: HoldModel, quarters: int) -> None:
            amount = hold.amount * quarters // 4
            try:
                redemption_service.capture(
                    session, terminal=self.terminal, idempotency_key=self._key(),
                    hold_id=hold.id, amount_minor=amount, now=self.now,
                )  # fmt: skip
            except AppError:
                assert hold.status != "authorized" or self.now >= hold.expires_at
                return
            assert hold.status == "authorized"
            assert self.now < hold.expires_at
            hold.voucher.held -= hold.amount
            hold.voucher.balance -= amount
            hold.status, hold.captured = ("captured", amount) if amount else ("voided", 0)
            self.model.merchant_net += amount

        @rule(hold=holds)
        def void(self, hold: HoldModel) -> None:
            try:
                redemption_service.void(
                    session, terminal=self.terminal, idempotency_key=self._key(),
                    hold_id=hold.id, now=self.now,
                )  # fmt: skip
            except AppError:
                assert hold.status != "authorized"
                return
            assert hold.status == "authorized"
            hold.status = "voided"
            hold.voucher.held -= hold.amount

        @rule(hold=holds, amount=st.integers(1, 20_000))
        def refund(self, hold: HoldModel, amount: int) -> None:
            try:
                redemption_service.refund(
                    session, terminal=self.terminal, idempotency_key=self._key(),
                    hold_id=hold.id, amount_minor=amount, now=self.now,
                )  # fmt: skip
            except AppError:
                assert hold.status != "captured" or amount > hold.captured - hold.refunded
                return
            assert hold.status == "captured"
            assert amount <= hold.captured - hold.refunded
            hold.refunded += amount
            hold.voucher.balance += amount
            self.model.merchant_net -= amount

        @rule(hours=st.integers(1, 24 * 9))
        def advance_clock(self, hours: int) -> None:
            self.now += timedelta(hours=hours)

        @rule()
        def expire(self) -> None:
            voucher_service.expire_due(session, now=self.now)
            for hold in self.model.holds.values():
                if hold.status == "authorized" and hold.expires_at <= self.now:
                    hold.status = "expired"
                    hold.voucher.held -= hold.amount
            for voucher in self.model.vouchers:
                if voucher.valid_until < business_day(self.now):
                    for hold in self.model.holds.values():
                        if hold.voucher is voucher and hold.status == "authorized":
                            hold.status = "expired"
                            voucher.held -= hold.amount
                    voucher.balance, voucher.expired = 0, True

        @invariant()
        def ledger_matches_model(self) -> None:
            for voucher in self.model.vouchers:
                account = ledger_repository.account_by_id(session, voucher.account_id)
                assert (account.balance_minor, account.held_minor) == (
                    voucher.balance,
                    voucher.held,
                )
            check = wallet_service.check(session)
            assert check.ok, check.problems
            merchant = next(
                row
                for row in ledger_repository.replayed_balances(session)
                if row.code == f"merchant:{self.merchant_id}"
            )
            assert merchant.replayed == self.model.merchant_net

    return WalletMachine


@pytest.mark.slow
class TestWalletStateMachine:
    def test_ledger_agrees_with_the_model(self, session: Session) -> None:
        machine = make_machine(session)
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=20,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            ),
        )
