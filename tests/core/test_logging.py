"""Error logs: a bounded plain traceback, never the local variables of the failing frames."""

from __future__ import annotations

import json

import pytest
import structlog

from socialcard.core.logging import MAX_TRACEBACK_LINES, configure_logging, get_logger


def _fail(depth: int, secret: str) -> None:
    if depth:
        _fail_again(depth - 1, secret)  # two functions in turn: no "repeated" collapsing
    raise ValueError("boom")


def _fail_again(depth: int, secret: str) -> None:
    _fail(depth, secret)


@pytest.mark.parametrize("as_json", [True, False])
def test_an_error_log_is_bounded_and_shows_no_locals(
    capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    configure_logging("INFO", json=as_json)
    try:
        try:
            _fail(200, secret="IIN " + "8801" + "01300123")
        except ValueError:
            get_logger("test").exception("unexpected_error", request_id="r1")
        err = capsys.readouterr().err
    finally:
        structlog.reset_defaults()
    assert "880101300123" not in err
    assert "ValueError: boom" in err
    assert "lines cut" in err
    if as_json:
        record = json.loads(err.strip().splitlines()[-1])
        assert record["event"] == "unexpected_error"
        assert len(record["exception"].splitlines()) == MAX_TRACEBACK_LINES + 1
    else:
        assert len(err.splitlines()) < MAX_TRACEBACK_LINES + 10
