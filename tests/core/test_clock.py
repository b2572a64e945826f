"""The settable clock: environment, in-process setting, freezing and travel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from socialcard.core import clock


@pytest.fixture(autouse=True)
def _restore_clock():  # type: ignore[no-untyped-def]
    saved = (clock._state.offset, clock._state.frozen, clock._state.loaded)
    yield
    clock._state.offset, clock._state.frozen, clock._state.loaded = saved


def test_environment_sets_the_start_and_the_clock_runs_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(clock.CLOCK_ENV, "2028-02-29T23:59:58Z")
    clock._state.loaded = False
    clock._state.frozen = None
    first = clock.utcnow()
    assert abs(first - datetime(2028, 2, 29, 23, 59, 58, tzinfo=UTC)) < timedelta(seconds=5)
    assert clock.utcnow() >= first
    assert first.tzinfo is not None


def test_a_date_alone_is_its_midnight_utc() -> None:
    assert clock.parse_instant("2026-12-31") == datetime(2026, 12, 31, tzinfo=UTC)
    assert clock.parse_instant("2026-12-31T23:30:00+05:00") == datetime(
        2026, 12, 31, 18, 30, tzinfo=UTC
    )


def test_a_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(clock.CLOCK_ENV, "next tuesday")
    clock._state.loaded = False
    clock._state.frozen = None
    with pytest.raises(clock.ClockSettingError, match=clock.CLOCK_ENV):
        clock.utcnow()


def test_freeze_advance_and_travel() -> None:
    at = datetime(2027, 1, 31, 18, 45, tzinfo=UTC)
    with clock.travel_to(at, frozen=True):
        assert clock.utcnow() == at
        assert clock.today().isoformat() == "2027-01-31"
        clock.advance(timedelta(hours=6))
        assert clock.utcnow() == at + timedelta(hours=6)
        clock.unfreeze()
        assert clock.utcnow() >= at + timedelta(hours=6)
    outside = clock.utcnow()
    assert abs(outside - datetime.now(UTC) - clock._state.offset) < timedelta(seconds=5)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set_clock(datetime(2026, 1, 1))  # noqa: DTZ001
