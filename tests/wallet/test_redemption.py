"""Redemption through the service: flows, restrictions per voucher type, declines without effect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from socialcard.wallet import service as wallet_service
from socialcard.wallet.errors import (
    ActivationRefused,
    CaptureTooLarge,
    HoldNotFound,
    HoldNotOpen,
    IdempotencyKeyReused,
    RefundTooLarge,
)
from socialcard.wallet.ledger import repository as ledger_repository
from socialcard.wallet.merchants.service import TerminalContext
from socialcard.wallet.redemption import service as redemption_service
from socialcard.wallet.redemption.schemas import AuthorizationRead, AuthorizeRequest
from socialcard.wallet.vouchers import service as voucher_service
from socialcard.wallet.vouchers.schemas import PrescriptionLine
from tests.wallet.factories import NOW, activate, food_items, fund, make_merchant, token_of

_keys = iter(range(10**9))


def _authorize(
    session: Session,
    terminal: TerminalContext,
    token: str,
    items: list[dict[str, Any]],
    *,
    capture: bool = False,
    now: datetime = NOW,
    key: str | None = None,
    allow_partial: bool = True,
) -> AuthorizationRead:
    return redemption_service.authorize(
        session,
        terminal=terminal,
        idempotency_key=key or f"k{next(_keys)}",
        request=AuthorizeRequest(
            token=token, items=items, capture=capture, allow_partial=allow_partial
        ),
        now=now,
    )


def _balance(session: Session, account_id: int) -> tuple[int, int]:
    row = ledger_repository.account_by_id(session, account_id)
    return row.balance_minor, row.held_minor


def _food(session: Session, amount: int = 10_000) -> tuple[int, str, int]:
    funded = fund(session, amount_minor=amount)
    activate(session, funded.voucher_id)
    return funded.voucher_id, token_of(session, funded.voucher_id), funded.account_id


class TestAuthorize:
    def test_one_step_purchase_pays_the_merchant(self, session: Session) -> None:
        merchant_id, terminal, _ = make_merchant(session)
        _, token, account = _food(session)
        result = _authorize(session, terminal, token, food_items(2_500), capture=True)
        assert (result.decision, result.captured_minor, result.status) == (
            "approved", 2_500, "captured",
        )  # fmt: skip
        assert _balance(session, account) == (7_500, 0)
        statement = redemption_service.settlement(
            session, merchant_id=merchant_id, day_on=NOW.date()
        )
        assert statement.net_minor == 2_500
        assert wallet_service.check(session).ok

    def test_hold_then_partial_capture_releases_the_rest(self, session: Session) -> None:
        _, terminal, _ = make_merchant(session)
        _, token, account = _food(session)
        hold = _authorize(session, terminal, token, food_items(4_000))
        assert _balance(session, account) == (10_000, 4_000)
        captured = redemption_service.capture(
            session, terminal=terminal, idempotency_key="c", hold_id=hold.authorization_id or 0,
            amount_minor=3_000, now=NOW,
        )  # fmt: skip
        assert captured.captured_minor == 3_000
        assert _balance(session, account) == (7_000, 0)
        with pytest.raises(HoldNotOpen):
            redemption_service.capture(
                session, terminal=terminal, idempotency_key="c2",
                hold_id=hold.authorization_id or 0, amount_minor=1, now=NOW,
            )  # fmt: skip
        assert wallet_service.check(session).ok

    def test_capture_cannot_exceed_the_hold(self, session: Session) -> None:
        _, terminal, _ = make_merchant(session)
        _, token, _ = _food(session)
        hold = _authorize(session, terminal, token, food_items(4_000))
        with pytest.raises(CaptureTooLarge):
            redemption_service.capture(
                session, terminal=terminal, idempotency_key="c",
                hold_id=hold.authorization_id or 0, amount_minor=4_001, now=NOW,
            )  # fmt: skip

    def test_void_releases_and_only_once(self, session: Session) -> None:
        _, terminal, _ = make_merchant(session)
        _, token, account = _food(session)
        hold = _authorize(session, terminal, token, food_items(4_000))
        redemption_service.void(
            session, terminal=terminal, idempotency_key="v", hold_id=hold.authorization_id or 0
        )
        assert _balance(session, account) == (10_000, 0)
        with pytest.raises(HoldNotOpen):
            redemption_service.void(
                session, terminal=terminal, idempotency_key="v2", hold_id=hold.authorization_id or 0
            )

    def test_another_merchant_cannot_touch_the_hold(self, session: Session) -> None:
        _, terminal, _ = make_merchant(session)
        _, other, _ = make_merchant(session)
        _, token, _ = _food(session)
        hold = _authorize(session, terminal, token, food_items(4_000))
        with pytest.raises(HoldNotFound):
            redemption_service.void(
                session, terminal=other, idempotency_key="v", hold_id=hold.authorization_id or 0
            )

    def test_refund_goes_back_to_the_voucher_never_beyond_the_capture(
        self, session: Session
    ) -> None:
        merchant_id, terminal, _ = make_merchant(session)
        _, token, account = _food(session)
        sale = _authorize(session, terminal, token, food_items(10_000), capture=True)
        assert _balance(session, account) == (0, 0)
        redemption_service.refund(
            session, terminal=terminal, idempotency_key="r1",
            hold_id=sale.authorization_id or 0, amount_minor=4_000, now=NOW,
        )  # fmt: skip
        assert _balance(session, account) == (4_000, 0)
        with pytest.raises(RefundTooLarge):
            redemption_service.refund(
                session, terminal=terminal, idempotency_key="r2",
                hold_id=sale.authorization_id or 0, amount_minor=6_001, now=NOW,
            )  # fmt: skip
        statement = redemption_service.settlement(
            session, merchant_id=merchant_id, day_on=NOW.date()
        )
        assert (statement.captured_minor, statement.refunded_minor) == (10_000, 4_000)
        assert wallet_service.check(session).ok

    def test_partial_approval_when_the_balance_is_short(self, session: Session) -> None:
        _, terminal, _ = make_merchant(session)
        _, token, account = _food(session, 3_000)
        result = _authorize(session, terminal, token, food_items(5_000), capture=True)
        assert (result.decision, result.approved_minor, result.reason) == (
            "partly_approved", 3_000, "insufficient_balance",
        )  # fmt: skip
        assert _balance(session, account) == (0, 0)

    def test_partial_approval_scales_the_lines_to_the_approved_amount(
        self, session: Session
    ) -> None:
        _, terminal, _ = make_merchant(session)
        _, token, _ = _food(session, 1_001)
        items = [*food_items(500), *food_items(0), *food_items(1_500), *food_items(999)]
        result = _authorize(session, terminal, token, items, capture=True)
        amounts = [line.approved_minor for line in result.lines]
        # 1,001 of 2,999 requested: shares rounded down, then the leftover tiyn one each to
        # the largest remainders (documented in vouchers.policy.scale_amounts).
        assert amounts == [167, 0, 501, 333]
        assert sum(amounts) == result.approved_minor == 1_001
        assert [line.reason for line in result.lines] == [
            "insufficient_balance", None, "insufficient_balance", "insufficient_balance",
        ]  # fmt: skip

    def test_no_partial_approval_when_refused_by_the_terminal(self, session: Session) -> None:
        _, terminal, _ = make_merchant(session)
        _, token, account = _food(session, 3_000)
        result = _authorize(session, terminal, token, food_items(5_000), allow_partial=False)
        assert (result.decision, result.reason) == ("declined", "insufficient_balance")
        assert _balance(session, account) == (3_000, 0)

    def test_idempotent_replay_and_conflict(self, session: Session) -> None:
        _, terminal, _ = make_merchant(session)
        _, token, account = _food(session)
        first = _authorize(session, terminal, token, food_items(1_000), capture=True, key="same")
        again = _authorize(session, terminal, token, food_items(1_000), capture=True, key="same")
        assert again == first
        assert _balance(session, account) == (9_000, 0)
        with pytest.raises(IdempotencyKeyReused):
            _authorize(session, terminal, token, food_items(1_001), capture=True, key="same")


# Each disallowed combination: how to set it up, and the reason the terminal must receive.
def _case_wrong_category(
    session: Session,
) -> tuple[TerminalContext, str, list[dict[str, Any]], datetime]:
    _, terminal, _ = make_merchant(session, category="pharmacy", licensed=True)
    _, token, _ = _food(session)
    return terminal, token, food_items(100), NOW


def _case_museum(session: Session) -> tuple[TerminalContext, str, list[dict[str, Any]], datetime]:
    _, terminal, _ = make_merchant(session, category="museum")
    _, token, _ = _food(session)
    return terminal, token, food_items(100), NOW


def _case_item(session: Session) -> tuple[TerminalContext, str, list[dict[str, Any]], datetime]:
    _, terminal, _ = make_merchant(session)
    _, token, _ = _food(session)
    return terminal, token, food_items(100, category="food.other"), NOW


def _case_not_activated(
    session: Session,
) -> tuple[TerminalContext, str, list[dict[str, Any]], datetime]:
    _, terminal, _ = make_merchant(session)
    funded = fund(session, amount_minor=1_000)
    return terminal, token_of(session, funded.voucher_id), food_items(100), NOW


def _case_expired(session: Session) -> tuple[TerminalContext, str, list[dict[str, Any]], datetime]:
    _, terminal, _ = make_merchant(session)
    _, token, _ = _food(session)
    return terminal, token, food_items(100), datetime(2026, 4, 1, 9, tzinfo=UTC)


def _case_not_yet(session: Session) -> tuple[TerminalContext, str, list[dict[str, Any]], datetime]:
    _, terminal, _ = make_merchant(session)
    funded = fund(session, amount_minor=1_000, benefit_type="transit", fare_category="pensioner")
    fare = [{"sku": "bus", "category": "fare", "quantity": 1, "amount_minor": 150_00}]
    return terminal, token_of(session, funded.voucher_id), fare, datetime(2026, 2, 27, tzinfo=UTC)


def _case_unlicensed(
    session: Session,
) -> tuple[TerminalContext, str, list[dict[str, Any]], datetime]:
    _, terminal, _ = make_merchant(session, category="pharmacy", licensed=False)
    funded = fund(
        session, amount_minor=10_000, benefit_type="medicine",
        prescription=[PrescriptionLine(atc="C09AA02", quantity=30)],
    )  # fmt: skip
    items = [
        {
            "sku": "enap",
            "category": "medicine",
            "atc": "C09AA02",
            "quantity": 30,
            "amount_minor": 900,
        }
    ]
    return terminal, token_of(session, funded.voucher_id), items, NOW


def _case_not_prescribed(
    session: Session,
) -> tuple[TerminalContext, str, list[dict[str, Any]], datetime]:
    _, terminal, _ = make_merchant(session, category="pharmacy", licensed=True)
    funded = fund(
        session, amount_minor=10_000, benefit_type="medicine",
        prescription=[PrescriptionLine(atc="C09AA02", quantity=30)],
    )  # fmt: skip
    items = [
        {"sku": "x", "category": "medicine", "atc": "N02BE01", "quantity": 1, "amount_minor": 900}
    ]
    return terminal, token_of(session, funded.voucher_id), items, NOW


def _school(session: Session, *, other_school: bool = False) -> tuple[TerminalContext, str]:
    school_id, terminal, _ = make_merchant(session, category="school_canteen")
    _other_id, other_terminal, _ = make_merchant(session, category="school_canteen")
    funded = fund(
        session, amount_minor=20_000_00, benefit_type="school_meal", bound_merchant_id=school_id
    )
    activate(session, funded.voucher_id)
    return (other_terminal if other_school else terminal), token_of(session, funded.voucher_id)


_MEAL = [{"sku": "lunch", "category": "meal", "quantity": 1, "amount_minor": 900_00}]


def _case_wrong_school(
    session: Session,
) -> tuple[TerminalContext, str, list[dict[str, Any]], datetime]:
    terminal, token = _school(session, other_school=True)
    return terminal, token, _MEAL, NOW


def _case_weekend(session: Session) -> tuple[TerminalContext, str, list[dict[str, Any]], datetime]:
    terminal, token = _school(session)
    return terminal, token, _MEAL, datetime(2026, 3, 14, 9, tzinfo=UTC)  # a Saturday


def _case_second_meal(
    session: Session,
) -> tuple[TerminalContext, str, list[dict[str, Any]], datetime]:
    terminal, token = _school(session)
    first = _authorize(session, terminal, token, _MEAL, capture=True)
    assert first.decision == "approved"
    return terminal, token, _MEAL, NOW + timedelta(hours=2)


def _case_gas_limit(
    session: Session,
) -> tuple[TerminalContext, str, list[dict[str, Any]], datetime]:
    _, terminal, _ = make_merchant(session, category="gas_utility")
    funded = fund(session, amount_minor=5_000, benefit_type="gas")
    activate(session, funded.voucher_id, utility_account="1234567")
    token = token_of(session, funded.voucher_id)
    gas = [{"sku": "bill", "category": "gas", "quantity": 1, "amount_minor": 5_000}]
    assert _authorize(session, terminal, token, gas, capture=True).decision == "approved"
    return terminal, token, gas, NOW


def _case_unknown_token(
    session: Session,
) -> tuple[TerminalContext, str, list[dict[str, Any]], datetime]:
    _, terminal, _ = make_merchant(session)
    return terminal, "no-such-token-123", food_items(100), NOW


DISALLOWED = {
    "merchant_category_not_allowed": _case_wrong_category,
    "museum_accepts_nothing": _case_museum,
    "item_not_allowed": _case_item,
    "voucher_not_activated": _case_not_activated,
    "voucher_expired": _case_expired,
    "voucher_not_yet_valid": _case_not_yet,
    "merchant_not_licensed": _case_unlicensed,
    "not_prescribed": _case_not_prescribed,
    "wrong_merchant": _case_wrong_school,
    "not_a_school_day": _case_weekend,
    "daily_limit_reached": _case_second_meal,
    "insufficient_balance": _case_gas_limit,
    "voucher_not_found": _case_unknown_token,
}
EXPECTED_REASON = {"museum_accepts_nothing": "merchant_category_not_allowed"}


class TestDisallowed:
    @pytest.mark.parametrize("case", sorted(DISALLOWED))
    def test_declined_with_its_reason_and_no_ledger_effect(
        self, session: Session, case: str
    ) -> None:
        terminal, token, items, when = DISALLOWED[case](session)
        before = ledger_repository.counts(session)
        result = _authorize(session, terminal, token, items, capture=True, now=when)
        assert result.decision == "declined"
        assert result.reason == EXPECTED_REASON.get(case, case)
        assert result.approved_minor == 0
        assert result.authorization_id is None
        assert ledger_repository.counts(session) == before
        assert wallet_service.check(session).ok


class TestVoucherTypes:
    def test_school_meal_one_per_day_and_again_next_day(self, session: Session) -> None:
        terminal, token = _school(session)
        two = [{**_MEAL[0], "quantity": 2, "amount_minor": 1_800_00}]
        first = _authorize(session, terminal, token, two, capture=True)
        assert (first.decision, first.approved_minor) == ("partly_approved", 900_00)
        next_day = _authorize(
            session, terminal, token, _MEAL, capture=True, now=NOW + timedelta(days=1)
        )
        assert next_day.decision == "approved"

    def test_school_meal_day_is_the_local_business_day(self, session: Session) -> None:
        # Almaty is UTC+5: 18:30 UTC is 23:30 on Wednesday, 19:30 UTC is already Thursday.
        terminal, token = _school(session)
        wednesday_late = datetime(2026, 3, 11, 18, 30, tzinfo=UTC)
        thursday_early = datetime(2026, 3, 11, 19, 30, tzinfo=UTC)
        thursday_late = datetime(2026, 3, 12, 18, 0, tzinfo=UTC)
        saturday_early = datetime(2026, 3, 13, 19, 30, tzinfo=UTC)  # Friday in UTC
        decisions = [
            _authorize(session, terminal, token, _MEAL, capture=True, now=when)
            for when in (wednesday_late, thursday_early, thursday_late, saturday_early)
        ]
        assert [(d.decision, d.reason) for d in decisions] == [
            ("approved", None),
            ("approved", None),
            ("declined", "daily_limit_reached"),
            ("declined", "not_a_school_day"),
        ]

    def test_voided_meal_can_be_served_again_the_same_day(self, session: Session) -> None:
        terminal, token = _school(session)
        hold = _authorize(session, terminal, token, _MEAL)
        redemption_service.void(
            session,
            terminal=terminal,
            idempotency_key="v",
            hold_id=hold.authorization_id or 0,
            now=NOW,
        )
        assert _authorize(session, terminal, token, _MEAL, capture=True).decision == "approved"

    def test_prescription_quantity_is_dispensed_once(self, session: Session) -> None:
        _, terminal, _ = make_merchant(session, category="pharmacy", licensed=True)
        funded = fund(
            session, amount_minor=100_000, benefit_type="medicine",
            prescription=[PrescriptionLine(atc="C09AA02", quantity=30)],
        )  # fmt: skip
        token = token_of(session, funded.voucher_id)
        line = {
            "sku": "enap",
            "category": "medicine",
            "atc": "C09AA02",
            "quantity": 20,
            "amount_minor": 2_000,
        }
        assert _authorize(session, terminal, token, [line], capture=True).decision == "approved"
        second = _authorize(session, terminal, token, [line], capture=True)
        assert (second.decision, second.approved_minor) == ("partly_approved", 1_000)
        third = _authorize(session, terminal, token, [line], capture=True)
        assert (third.decision, third.reason) == ("declined", "not_prescribed")

    def test_transit_pays_the_category_share_of_the_fare(self, session: Session) -> None:
        _, terminal, _ = make_merchant(session, category="transit")
        fare = [{"sku": "bus", "category": "fare", "quantity": 1, "amount_minor": 150_00}]
        pensioner = fund(
            session, amount_minor=10_000_00, benefit_type="transit", fare_category="pensioner"
        )
        student = fund(
            session, amount_minor=10_000_00, benefit_type="transit", fare_category="student"
        )
        full = _authorize(
            session, terminal, token_of(session, pensioner.voucher_id), fare, capture=True
        )
        half = _authorize(
            session, terminal, token_of(session, student.voucher_id), fare, capture=True
        )
        assert (full.decision, full.approved_minor) == ("approved", 150_00)
        assert (half.decision, half.approved_minor, half.reason) == (
            "partly_approved", 75_00, "partial_coverage",
        )  # fmt: skip


class TestActivate:
    def test_gas_needs_the_utility_account_inside_days_7_to_29(self, session: Session) -> None:
        funded = fund(session, amount_minor=5_000, benefit_type="gas")
        with pytest.raises(ActivationRefused) as early:
            activate(
                session,
                funded.voucher_id,
                now=datetime(2026, 3, 6, tzinfo=UTC),
                utility_account="1234567",
            )
        assert early.value.code == "activation_outside_window"
        with pytest.raises(ActivationRefused) as missing:
            activate(session, funded.voucher_id)
        assert missing.value.code == "utility_account_required"
        activate(
            session,
            funded.voucher_id,
            now=datetime(2026, 3, 29, tzinfo=UTC),
            utility_account="1234567",
        )
        wallet = voucher_service.citizen_wallet(
            session, person_id=ledger_repository.account_by_id(session, funded.account_id).person_id
        )
        assert wallet.vouchers[0].status == "activated"


class TestExpiry:
    def test_unspent_value_returns_to_the_program_once(self, session: Session) -> None:
        _, terminal, _ = make_merchant(session)
        voucher_id, token, account = _food(session, 10_000)
        _authorize(session, terminal, token, food_items(3_000), capture=True)
        open_hold = _authorize(session, terminal, token, food_items(1_000))
        after_month = datetime(2026, 4, 1, 1, tzinfo=UTC)
        result = voucher_service.expire_due(session, now=after_month)
        assert (result.vouchers_expired, result.returned_minor, result.holds_expired) == (
            1,
            7_000,
            1,
        )
        assert _balance(session, account) == (0, 0)
        assert voucher_service.expire_due(session, now=after_month).returned_minor == 0
        with pytest.raises(HoldNotOpen):
            redemption_service.capture(
                session, terminal=terminal, idempotency_key="late",
                hold_id=open_hold.authorization_id or 0, amount_minor=None, now=after_month,
            )  # fmt: skip
        stats = {(row.type, row.status): row for row in voucher_service.statistics(session)}
        assert stats[("food", "expired")].vouchers == 1
        assert wallet_service.check(session).ok
        assert voucher_id


class TestGasExpiry:
    def test_unactivated_gas_lapses_after_the_29th_activated_lasts_the_month(
        self, session: Session
    ) -> None:
        idle = fund(session, amount_minor=5_000, benefit_type="gas")
        used = fund(session, amount_minor=5_000, benefit_type="gas")
        activate(session, used.voucher_id, utility_account="1234567")
        result = voucher_service.expire_due(session, now=datetime(2026, 3, 30, 1, tzinfo=UTC))
        assert (result.vouchers_expired, result.returned_minor) == (1, 5_000)
        assert _balance(session, idle.account_id) == (0, 0)
        assert _balance(session, used.account_id) == (5_000, 0)


class TestCashBalance:
    def test_cash_pays_any_item_at_accepting_merchants_but_not_at_a_museum(
        self, session: Session
    ) -> None:
        _, pharmacy, _ = make_merchant(session, category="pharmacy", licensed=True)
        _, museum, _ = make_merchant(session, category="museum")
        funded = fund(session, amount_minor=10_000, benefit_type="cash")
        token = token_of(session, funded.voucher_id)
        anything = [{"sku": "soap", "category": "other", "quantity": 1, "amount_minor": 700}]
        assert _authorize(session, pharmacy, token, anything, capture=True).decision == "approved"
        refused = _authorize(session, museum, token, anything, capture=True)
        assert (refused.decision, refused.reason) == ("declined", "merchant_category_not_allowed")


class TestSettlementCheck:
    def test_an_issued_statement_that_no_longer_matches_the_ledger_is_reported(
        self, session: Session
    ) -> None:
        merchant_id, terminal, _ = make_merchant(session)
        _, token, _ = _food(session)
        sale = _authorize(session, terminal, token, food_items(4_000), capture=True)
        totals, text = redemption_service.issue_settlement(
            session, merchant_id=merchant_id, day_on=NOW.date(), now=NOW + timedelta(days=1)
        )
        assert totals.net_minor == 4_000
        assert text.splitlines()[-1] == "TOTAL,net,,,4000"
        assert wallet_service.check(session).ok
        # A refund stamped on that day (only a clock set back can do this) changes the ledger
        # under the issued statement.
        redemption_service.refund(
            session, terminal=terminal, idempotency_key="late", hold_id=sale.authorization_id or 0,
            amount_minor=1_000, now=NOW + timedelta(hours=1),
        )  # fmt: skip
        problems = wallet_service.check(session).problems
        assert any("statement 4000 != ledger 3000" in p for p in problems)
