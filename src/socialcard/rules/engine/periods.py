"""Benefit periods (a calendar month or year) and the date windows built-ins use."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

PeriodKind = Literal["month", "year"]

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")


def add_months(day: date, months: int) -> date:
    """The same day `months` later (clamped to the month's end).

    >>> add_months(date(2024, 1, 31), 1)
    datetime.date(2024, 2, 29)
    >>> add_months(date(2026, 3, 1), -24)
    datetime.date(2024, 3, 1)
    """
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def add_years(day: date, years: int) -> date:
    """The same day `years` later; 29 February becomes 28 February in a common year.

    >>> add_years(date(2024, 2, 29), 1)
    datetime.date(2025, 2, 28)
    """
    return add_months(day, 12 * years)


@dataclass(frozen=True, order=True)
class Period:
    """A calendar month or year a benefit is evaluated for.

    >>> Period.parse("2026-03")
    Period(start=datetime.date(2026, 3, 1), kind='month')
    >>> Period.parse("2026-03").end
    datetime.date(2026, 3, 31)
    >>> str(Period.parse("2025"))
    '2025'
    """

    start: date
    kind: PeriodKind = "month"

    @classmethod
    def parse(cls, text: str) -> Period:
        """Read `YYYY-MM` (a month) or `YYYY` (a year); ValueError otherwise."""
        text = str(text).strip()
        if m := _MONTH.match(text):
            year, month = int(m.group(1)), int(m.group(2))
            if not 1 <= month <= 12:
                raise ValueError(f"bad month in period {text!r}")
            return cls(date(year, month, 1), "month")
        if m := _YEAR.match(text):
            return cls(date(int(m.group(1)), 1, 1), "year")
        raise ValueError(f"a period is YYYY-MM or YYYY, not {text!r}")

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        return cls(date(year, month, 1), "month")

    @property
    def end(self) -> date:
        """The last day of the period."""
        months = 1 if self.kind == "month" else 12
        return add_months(self.start, months) - timedelta(days=1)

    def as_kind(self, kind: PeriodKind) -> Period:
        """The period of `kind` that contains this period's start."""
        if kind == "month":
            return Period(self.start, "month")
        return Period(date(self.start.year, 1, 1), "year")

    def months_before(self, months: int) -> tuple[date, date]:
        """The window of `months` whole months that ends the day before the period starts.

        >>> Period.parse("2026-03").months_before(3)
        (datetime.date(2025, 12, 1), datetime.date(2026, 2, 28))
        """
        return add_months(self.start, -months), self.start - timedelta(days=1)

    def previous_quarter(self) -> tuple[date, date]:
        """The calendar quarter before the quarter the period starts in.

        >>> Period.parse("2026-02").previous_quarter()
        (datetime.date(2025, 10, 1), datetime.date(2025, 12, 31))
        """
        quarter_start = date(self.start.year, 3 * ((self.start.month - 1) // 3) + 1, 1)
        return add_months(quarter_start, -3), quarter_start - timedelta(days=1)

    def __str__(self) -> str:
        if self.kind == "month":
            return f"{self.start.year:04d}-{self.start.month:02d}"
        return f"{self.start.year:04d}"
