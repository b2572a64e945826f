"""Security test fixtures: the proactive flow's committed store (links and webhooks)."""

from __future__ import annotations

from tests.proactive.conftest import proactive_env

__all__ = ["proactive_env"]
