"""Settlement statements cover the local business day (Asia/Almaty, UTC+5), not the UTC day."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy.orm import Session

from socialcard.core.config import get_settings
from socialcard.wallet import service as wallet_service
from socialcard.wallet.business_day import business_day, day_bounds
from socialcard.wallet.redemption import service as redemption_service
from socialcard.wallet.redemption.schemas import AuthorizeRequest, ItemIn
from tests.wallet.factories import activate, food_items, fund, make_merchant, token_of

# Wednesday 11 March 2026: 18:59:59 UTC is 23:59:59 in Almaty, 19:00 UTC is midnight.
LAST_SECOND = datetime(2026, 3, 11, 18, 59, 59, tzinfo=UTC)
MIDNIGHT = datetime(2026, 3, 11, 19, 0, 0, tzinfo=UTC)


def _buy(session: Session, terminal: object, token: str, amount: int, at: datetime) -> None:
    items = [ItemIn.model_validate(item) for item in food_items(amount)]
    result = redemption_service.authorize(
        session,
        terminal=terminal,  # type: ignore[arg-type]
        idempotency_key=f"buy-{at.isoformat()}",
        request=AuthorizeRequest(token=token, items=items, capture=True),
        now=at,
    )
    assert result.captured_minor == amount


def test_a_purchase_just_before_local_midnight_settles_that_day(session: Session) -> None:
    merchant_id, terminal, _ = make_merchant(session)
    funded = fund(session, amount_minor=10_000)
    activate(session, funded.voucher_id, now=datetime(2026, 3, 11, 9, 0, tzinfo=UTC))
    token = token_of(session, funded.voucher_id)
    _buy(session, terminal, token, 1_500, LAST_SECOND)
    _buy(session, terminal, token, 2_500, MIDNIGHT)

    def net(day: date) -> int:
        return redemption_service.settlement(session, merchant_id=merchant_id, day_on=day).net_minor

    # Both are on 11 March in UTC; in Almaty the second is already 12 March.
    assert (net(date(2026, 3, 11)), net(date(2026, 3, 12))) == (1_500, 2_500)
    totals, text = redemption_service.issue_settlement(
        session,
        merchant_id=merchant_id,
        day_on=date(2026, 3, 12),
        now=datetime(2026, 3, 13, 0, 0, tzinfo=UTC),
    )
    assert totals.postings == 1
    assert text.splitlines()[-1] == "TOTAL,net,,,2500"
    assert wallet_service.check(session).ok


def test_the_business_time_zone_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert business_day(MIDNIGHT) == date(2026, 3, 12)
    monkeypatch.setenv("SOCIALCARD_WALLET__BUSINESS_TIMEZONE", "UTC")
    get_settings.cache_clear()
    try:
        assert business_day(MIDNIGHT) == date(2026, 3, 11)
        assert day_bounds(date(2026, 3, 11))[0] == datetime(2026, 3, 11, tzinfo=UTC)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_an_unknown_time_zone_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCIALCARD_WALLET__BUSINESS_TIMEZONE", "Mars/Olympus")
    get_settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="unknown time zone"):
            get_settings()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
