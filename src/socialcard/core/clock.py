"""The platform's one clock: timezone-aware UTC, settable for tests, demos and replays.

Every service, job and page asks this module for the time, never `datetime.now()`. The clock
runs from the real time unless it is set:

- `SOCIALCARD_CLOCK=2027-02-28T18:30:00+00:00` in the environment starts the clock at that
  instant when the process first asks for the time; it then runs on at the real rate, so a
  server started that way behaves as on that day. Child processes inherit the setting.
- `set_clock(at)` / `travel_to(at)` do the same in process; `freeze(at)` stops it at `at`.

An unparsable `SOCIALCARD_CLOCK` is an error at the first use, naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

CLOCK_ENV = "SOCIALCARD_CLOCK"


class ClockSettingError(ValueError):
    """The clock setting in the environment is not an ISO 8601 date or instant."""


class _ClockState:
    # Where the clock stands relative to the real time; `frozen` wins when set.
    __slots__ = ("frozen", "loaded", "offset")

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self.frozen: datetime | None = None
        self.loaded = False


_state = _ClockState()


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant (a date alone is its midnight UTC); a naive time is taken as UTC."""
    raw = text.strip()
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ClockSettingError(
            f"{CLOCK_ENV}={text!r} is not an ISO 8601 date or date-time "
            "(for example 2027-02-28 or 2027-02-28T18:30:00+00:00)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _load_environment() -> None:
    _state.loaded = True
    setting = os.environ.get(CLOCK_ENV, "").strip()
    if setting:
        _state.offset = parse_instant(setting) - datetime.now(UTC)


def utcnow() -> datetime:
    """Now, in UTC, timezone-aware, as the platform's clock reads."""
    if not _state.loaded:
        _load_environment()
    if _state.frozen is not None:
        return _state.frozen
    return datetime.now(UTC) + _state.offset


def today() -> date:
    """Today's date in UTC, by the platform's clock."""
    return utcnow().date()


def set_clock(at: datetime | None) -> None:
    """Move the clock to `at` and let it run on from there; None goes back to the real time."""
    _state.loaded = True
    _state.frozen = None
    _state.offset = timedelta(0) if at is None else _aware(at) - datetime.now(UTC)


def freeze(at: datetime | None = None) -> None:
    """Stop the clock at `at` (default: where it stands now)."""
    _state.frozen = _aware(at) if at is not None else utcnow()


def unfreeze() -> None:
    """Let a frozen clock run on from where it stopped."""
    if _state.frozen is not None:
        _state.offset = _state.frozen - datetime.now(UTC)
        _state.frozen = None


def advance(by: timedelta) -> None:
    """Move the clock forward (frozen or running)."""
    if not _state.loaded:
        _load_environment()
    if _state.frozen is not None:
        _state.frozen += by
    else:
        _state.offset += by


@contextmanager
def travel_to(at: datetime, *, frozen: bool = False) -> Iterator[None]:
    """Within the block the clock reads `at` (and runs on, unless frozen); restored after."""
    if not _state.loaded:
        _load_environment()
    saved = (_state.offset, _state.frozen)
    if frozen:
        freeze(at)
    else:
        set_clock(at)
    try:
        yield
    finally:
        _state.offset, _state.frozen = saved


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("the clock takes timezone-aware instants only")
    return at.astimezone(UTC)
