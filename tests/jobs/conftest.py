"""Jobs tests run on the committed store with the proactive fixtures (families a campaign
finds, the KZ pack, a file gateway)."""

from __future__ import annotations

from tests.proactive.conftest import live_client, proactive_env

__all__ = ["live_client", "proactive_env"]
