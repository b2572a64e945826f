"""The wallet's business day: the local calendar day of `wallet.business_timezone`.

Merchants settle per local day (Kazakhstan has one time zone, UTC+5 since 2024-03-01), while
everything is stored in UTC; a purchase at 23:30 in Almaty belongs to that day's statement,
not to the next UTC day's.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from socialcard.core.config import get_settings


@lru_cache(maxsize=4)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def business_zone() -> ZoneInfo:
    """The configured business time zone (default Asia/Almaty)."""
    return _zone(get_settings().wallet.business_timezone)


def business_day(at: datetime) -> date:
    """The business day an instant falls on.

    >>> business_day(datetime(2026, 3, 11, 18, 59, tzinfo=UTC)).isoformat()
    '2026-03-11'
    >>> business_day(datetime(2026, 3, 11, 19, 0, tzinfo=UTC)).isoformat()
    '2026-03-12'
    """
    return at.astimezone(business_zone()).date()


def day_bounds(day_on: date) -> tuple[datetime, datetime]:
    """A business day as a half-open UTC interval [start, end).

    >>> [t.isoformat() for t in day_bounds(date(2026, 3, 12))]
    ['2026-03-11T19:00:00+00:00', '2026-03-12T19:00:00+00:00']
    """
    zone = business_zone()
    start = datetime.combine(day_on, time(0), tzinfo=zone)
    end = datetime.combine(day_on + timedelta(days=1), time(0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)
