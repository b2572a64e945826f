"""Fault injection for the crash tests: `SOCIALCARD_PROACTIVE__CRASH_AT=<point>[:<n>]` kills
the process with SIGKILL the n-th time (default first) it passes the named point."""

from __future__ import annotations

import os
import signal

_passes: dict[str, int] = {}


def crashpoint(name: str) -> None:
    """Die here (kill -9) when the environment names this point; otherwise do nothing."""
    wanted = os.environ.get("SOCIALCARD_PROACTIVE__CRASH_AT")
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
