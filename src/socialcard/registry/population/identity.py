"""Vectorised ИИН construction and the serial allocator that keeps them unique in a store.

A ИИН is YYMMDD, a century-and-sex digit, a 4-digit serial and a check digit (see
socialcard.registry.identifiers). Serials are handed out per (birth date, sex) in *pairs*:
slot j is serial 2j, or 2j+1 when 2j admits no check digit. That second choice always works:
the last serial digit has weight 11 in the first pass (so the first sum does not change) and
weight 2 in the second (so the second sum moves by 2 and cannot be 10 for both).

The allocator starts above the highest serial already used in the store for each (date, sex),
so repeated runs with different seeds never collide; should a (date, sex) run out of slots, it
falls back to the lowest free serials, read from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date

import numpy as np
from numpy.typing import NDArray

from socialcard.registry.identifiers import iin_check_digit
from socialcard.registry.population.errors import GenerationError

SLOTS = 5000  # serial pairs per (birth date, sex)
_DAY_1900 = int(np.datetime64("1900-01-01", "D").astype(np.int64))
_DAY_2100 = int(np.datetime64("2100-01-01", "D").astype(np.int64))
_W1 = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], dtype=np.int64)
_W2 = np.array([3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2], dtype=np.int64)

UsedSerials = Callable[[str], Iterable[int]]


def ymd(days: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Year, month and day of days since 1970-01-01."""
    d = days.astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    years = months.astype("datetime64[Y]")
    year = years.astype(np.int64) + 1970
    month = (months - years.astype("datetime64[M]")).astype(np.int64) + 1
    day = (d - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


def _prefix_digits(
    birth_days: NDArray[np.int64], female: NDArray[np.bool_]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The first seven digits as a number, and their weighted sums for both passes."""
    year, month, day = ymd(birth_days)
    century = (year // 100 - 18) * 2 + 1 + female.astype(np.int64)
    digits = np.stack(
        [(year % 100) // 10, year % 10, month // 10, month % 10, day // 10, day % 10, century],
        axis=1,
    )
    prefix = ((year % 100) * 10000 + month * 100 + day) * 10 + century
    sums = np.stack([digits @ _W1[:7], digits @ _W2[:7]], axis=1)
    return prefix, sums


def build_iins(
    birth_days: NDArray[np.int64], female: NDArray[np.bool_], slots: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """ИИН numbers (as integers; format with 12 digits) and serials for these slots."""
    prefix, sums = _prefix_digits(birth_days, female)
    serial = slots * 2
    s = np.stack([serial // 1000, serial // 100 % 10, serial // 10 % 10, serial % 10], axis=1)
    sum1 = (sums[:, 0] + s @ _W1[7:]) % 11
    sum2 = (sums[:, 1] + s @ _W2[7:]) % 11
    bad = (sum1 == 10) & (sum2 == 10)
    serial = serial + bad
    sum2 = np.where(bad, (sum2 + 2) % 11, sum2)
    check = np.where(sum1 == 10, sum2, sum1)
    return (prefix * 10000 + serial) * 10 + check, serial


def format_iins(numbers: NDArray[np.int64]) -> list[str]:
    """12-digit strings (the year may start with 0)."""
    return [f"{n:012d}" for n in numbers.tolist()]


class SerialAllocator:
    """Hands out ИИН serials per (birth date, sex) above those already used in the store."""

    def __init__(
        self,
        highest_used: Iterable[tuple[str, int]] = (),
        used_serials: UsedSerials | None = None,
    ) -> None:
        """`highest_used`: (first seven digits, highest serial) pairs already in the store;
        `used_serials(prefix7)`: every serial in use for that prefix (the slow fallback)."""
        self._next = np.zeros((_DAY_2100 - _DAY_1900) * 2, dtype=np.int64)
        self._used_serials = used_serials
        self._fallback_taken: dict[str, set[int]] = {}
        for prefix7, serial in highest_used:
            key = _key_of_prefix(prefix7)
            if key is not None:
                self._next[key] = max(self._next[key], serial // 2 + 1)
        self._base = self._next.copy()

    def assign(self, birth_days: NDArray[np.int64], female: NDArray[np.bool_]) -> list[str]:
        """National ids for these persons, in order, unique within the store and the run."""
        if len(birth_days) == 0:
            return []
        if birth_days.min() < _DAY_1900 or birth_days.max() >= _DAY_2100:
            raise GenerationError("birth dates must fall between 1900 and 2099 for a ИИН")
        keys = (birth_days - _DAY_1900) * 2 + female.astype(np.int64)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
        positions = np.arange(len(keys))
        rank_sorted = positions - np.maximum.accumulate(np.where(starts, positions, 0))
        rank = np.empty_like(rank_sorted)
        rank[order] = rank_sorted
        slots = self._next[keys] + rank
        unique_keys = sorted_keys[starts]
        counts = np.diff(np.r_[np.flatnonzero(starts), len(keys)])
        self._next[unique_keys] += counts
        numbers, _ = build_iins(birth_days, female, np.minimum(slots, SLOTS - 1))
        ids = format_iins(numbers)
        for i in np.flatnonzero(slots >= SLOTS).tolist():
            ids[i] = self._fallback(int(birth_days[i]), bool(female[i]))
        return ids

    def _fallback(self, birth_day: int, female: bool) -> str:
        # The pairs above the store's highest serial are used up: take the lowest free serial.
        born = date.fromordinal(date(1970, 1, 1).toordinal() + birth_day)
        prefix7 = f"{born:%y%m%d}{(born.year // 100 - 18) * 2 + 1 + female}"
        taken = self._fallback_taken.get(prefix7)
        if taken is None:
            taken = set(self._used_serials(prefix7)) if self._used_serials else set()
            # The fast path only hands out serials from the store's highest one upwards, so
            # everything from there on may be taken by this run.
            key = _key_of_prefix(prefix7)
            assert key is not None  # noqa: S101 - built from a valid date above
            taken.update(range(2 * int(self._base[key]), 10000))
            self._fallback_taken[prefix7] = taken
        for serial in range(10000):
            check = None if serial in taken else iin_check_digit(f"{prefix7}{serial:04d}")
            if check is not None:
                taken.add(serial)
                return f"{prefix7}{serial:04d}{check}"
        raise GenerationError(
            f"no free ИИН serial left for persons born on {born.isoformat()} in this store"
        )


def _key_of_prefix(prefix7: str) -> int | None:
    """The allocator key of a ИИН's first seven digits, or None if they are no valid date."""
    if len(prefix7) != 7 or not prefix7.isdigit() or prefix7[6] not in "123456":
        return None
    century = {"1": 1800, "2": 1800, "3": 1900, "4": 1900, "5": 2000, "6": 2000}[prefix7[6]]
    try:
        born = date(century + int(prefix7[:2]), int(prefix7[2:4]), int(prefix7[4:6]))
    except ValueError:
        return None
    day = born.toordinal() - date(1970, 1, 1).toordinal()
    if not _DAY_1900 <= day < _DAY_2100:
        return None
    return (day - _DAY_1900) * 2 + (1 if prefix7[6] in "246" else 0)
