"""Ledger rules: balanced immutable postings, overdraft, idempotency, reversal, the check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest
from sqlalchemy.orm import Session

from socialcard.core.config import get_settings
from socialcard.core.errors import InvalidInput
from socialcard.wallet import service as wallet_service
from socialcard.wallet.enums import AccountKind, PostingKind
from socialcard.wallet.errors import (
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    InsufficientFunds,
    UnbalancedPosting,
)
from socialcard.wallet.funding import service as funding_service
from socialcard.wallet.funding.orders import order_to_funding
from socialcard.wallet.ledger import repository as ledger_repository
from socialcard.wallet.ledger import service as ledger_service
from tests.factories import make_person
from tests.wallet.factories import NOW, PERIOD, PROGRAM, REGION, allocate, fund, make_merchant


def _accounts(session: Session) -> tuple[int, int]:
    a = ledger_service.ensure_account(
        session, code="t:a", kind=AccountKind.SOURCE, allow_negative=True
    )
    b = ledger_service.ensure_account(session, code="t:b", kind=AccountKind.BUDGET)
    return a.id, b.id


class TestPost:
    def test_balanced_posting_moves_cached_balances(self, session: Session) -> None:
        a, b = _accounts(session)
        ledger_service.post(
            session,
            kind=PostingKind.ALLOCATION,
            legs=[ledger_service.Leg(a, -500), ledger_service.Leg(b, 500)],
        )
        assert ledger_repository.account_by_id(session, a).balance_minor == -500
        assert ledger_repository.account_by_id(session, b).balance_minor == 500
        assert wallet_service.check(session).ok

    @pytest.mark.parametrize("amounts", [[-500, 400], [500], [0, 0], [-1, 1, 1]])
    def test_rejects_unbalanced_posting(self, session: Session, amounts: list[int]) -> None:
        a, b = _accounts(session)
        legs = [ledger_service.Leg([a, b, a][i], x) for i, x in enumerate(amounts)]
        before = ledger_service.ledger_counts(session)["postings"]
        with pytest.raises(UnbalancedPosting):
            ledger_service.post(session, kind=PostingKind.ALLOCATION, legs=legs)
        assert ledger_service.ledger_counts(session)["postings"] == before


class TestReverse:
    def test_reversal_is_a_new_posting_that_undoes_the_first(self, session: Session) -> None:
        a, b = _accounts(session)
        first = ledger_service.post(
            session,
            kind=PostingKind.ALLOCATION,
            legs=[ledger_service.Leg(a, -700), ledger_service.Leg(b, 700)],
        )
        reversal = ledger_service.reverse(session, posting_id=first)
        assert reversal != first
        assert ledger_repository.account_by_id(session, b).balance_minor == 0
        posting, entries = ledger_repository.posting_with_entries(session, first)
        assert posting is not None
        assert sorted(e.amount_minor for e in entries) == [-700, 700]
        assert wallet_service.check(session).ok

    def test_reversal_cannot_overdraw(self, session: Session) -> None:
        a, b = _accounts(session)
        first = ledger_service.post(
            session,
            kind=PostingKind.ALLOCATION,
            legs=[ledger_service.Leg(a, -100), ledger_service.Leg(b, 100)],
        )
        ledger_service.post(
            session,
            kind=PostingKind.ALLOCATION,
            legs=[ledger_service.Leg(b, -100), ledger_service.Leg(a, 100)],
        )
        with pytest.raises(InsufficientFunds):
            ledger_service.reverse(session, posting_id=first)


class TestFundBenefit:
    def test_moves_money_from_budget_to_a_new_voucher(self, session: Session) -> None:
        allocate(session, 10_000)
        person = make_person(session)
        result = funding_service.fund_benefit(
            session,
            idempotency_key="order-1",
            person_id=person.id,
            program_id=PROGRAM,
            region_kato=REGION,
            amount_minor=4_000,
            benefit_type="food",
            period=PERIOD,
            now=NOW,
        )
        budget = funding_service.budget_balance(session, program_id=PROGRAM, region_kato=REGION)
        assert budget.balance_minor == 6_000
        assert ledger_repository.account_by_id(session, result.account_id).balance_minor == 4_000
        assert result.status == "created"  # food vouchers wait for the citizen's activation
        assert wallet_service.check(session).ok

    def test_same_key_same_order_returns_the_first_result(self, session: Session) -> None:
        allocate(session, 10_000)
        person = make_person(session)
        kwargs = {
            "person_id": person.id, "program_id": PROGRAM, "region_kato": REGION,
            "amount_minor": 4_000, "benefit_type": "food", "period": PERIOD, "now": NOW,
        }  # fmt: skip
        first = funding_service.fund_benefit(session, idempotency_key="o", **kwargs)  # type: ignore[arg-type]
        again = funding_service.fund_benefit(session, idempotency_key="o", **kwargs)  # type: ignore[arg-type]
        assert again == first
        budget = funding_service.budget_balance(session, program_id=PROGRAM, region_kato=REGION)
        assert budget.balance_minor == 6_000

    def test_same_key_other_order_is_a_conflict(self, session: Session) -> None:
        allocate(session, 10_000)
        person = make_person(session)
        funding_service.fund_benefit(
            session, idempotency_key="o", person_id=person.id, program_id=PROGRAM,
            region_kato=REGION, amount_minor=4_000, benefit_type="food", period=PERIOD,
        )  # fmt: skip
        with pytest.raises(IdempotencyKeyReused):
            funding_service.fund_benefit(
                session, idempotency_key="o", person_id=person.id, program_id=PROGRAM,
                region_kato=REGION, amount_minor=4_001, benefit_type="food", period=PERIOD,
            )  # fmt: skip

    def test_budget_cannot_go_negative(self, session: Session) -> None:
        allocate(session, 1_000)
        with pytest.raises(InsufficientFunds) as caught:
            fund(session, amount_minor=1_001, allocate_first=False)
        assert caught.value.code == "budget_exhausted"
        budget = funding_service.budget_balance(session, program_id=PROGRAM, region_kato=REGION)
        assert budget.balance_minor == 1_000
        assert wallet_service.check(session).ok

    def test_budget_may_go_negative_when_configured(
        self, session: Session, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(get_settings().wallet, "budget_allow_negative", True)
        fund(session, amount_minor=2_000, allocate_first=False)
        budget = funding_service.budget_balance(session, program_id=PROGRAM, region_kato=REGION)
        assert budget.balance_minor == -2_000
        assert wallet_service.check(session).ok

    def test_requires_an_idempotency_key(self, session: Session) -> None:
        with pytest.raises(IdempotencyKeyMissing):
            funding_service.fund_benefit(
                session, idempotency_key="", person_id=1, program_id=PROGRAM, region_kato=REGION,
                amount_minor=1, benefit_type="food", period=PERIOD,
            )  # fmt: skip


class TestCheck:
    def test_detects_a_tampered_cached_balance(self, session: Session) -> None:
        result = fund(session, amount_minor=5_000)
        ledger_repository.change_balance(
            session, account_id=result.account_id, balance_delta=1, held_delta=0
        )
        problems = wallet_service.check(session).problems
        assert any("cached balance" in p for p in problems)

    def test_detects_an_unbalanced_posting(self, session: Session) -> None:
        result = fund(session, amount_minor=5_000)
        ledger_repository.insert_entries(
            session,
            [{"posting_id": result.posting_id, "account_id": result.account_id, "amount_minor": 5}],
        )
        problems = wallet_service.check(session).problems
        assert any("sums to 5" in p for p in problems)


class TestFundingRestrictions:
    @pytest.mark.parametrize(
        ("benefit_type", "extra", "field"),
        [
            ("school_meal", {}, "bound_merchant_id"),
            ("medicine", {}, "prescription"),
            ("transit", {"fare_category": "astronaut"}, "fare_category"),
        ],
    )
    def test_a_voucher_that_could_never_be_used_is_refused(
        self, session: Session, benefit_type: str, extra: dict[str, object], field: str
    ) -> None:
        with pytest.raises(InvalidInput) as caught:
            fund(session, amount_minor=1_000, benefit_type=benefit_type, **extra)
        assert caught.value.details[0]["field"] == field

    def test_bound_merchant_must_accept_the_type(self, session: Session) -> None:
        grocery_id, _, _ = make_merchant(session, category="grocery")
        with pytest.raises(InvalidInput):
            fund(
                session,
                amount_minor=1_000,
                benefit_type="school_meal",
                bound_merchant_id=grocery_id,
            )


class TestPaymentOrderAdapter:
    def test_maps_an_order_onto_a_funding_keyed_by_the_order(self) -> None:
        @dataclass
        class Order:  # the attributes the proactive domain's payment order exposes
            id: int
            person_id: int
            program_id: str
            region_kato: str
            amount_minor: int
            period: date

        funding = order_to_funding(
            Order(7, 3, "kz.asp", REGION, 55_000_00, date(2026, 3, 1)), default_benefit_type="food"
        )
        assert (funding.idempotency_key, funding.period, funding.benefit_type) == (
            "proactive-order:7", "2026-03", "food",
        )  # fmt: skip
