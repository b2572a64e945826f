"""Root test configuration: the store switch (--db=sqlite|postgres) and shared fixtures."""

from __future__ import annotations

import os
import tempfile

# The test environment is chosen before the application is imported.
os.environ.setdefault("SOCIALCARD_LOG_JSON", "false")
os.environ.setdefault("SOCIALCARD_LOG_LEVEL", "WARNING")
os.environ.setdefault("SOCIALCARD_SECRET_KEY", "test-secret")
# The card issuer's keys live in a private directory; tests never write into ./var/keys.
os.environ.setdefault("SOCIALCARD_CARD__KEY_DIR", tempfile.mkdtemp(prefix="socialcard-card-keys-"))
os.environ.setdefault(
    "SOCIALCARD_CARD__REPLAY_FILE",
    os.path.join(tempfile.mkdtemp(prefix="socialcard-card-replay-"), "replay.bin"),
)

# No background audit sealer in the tests' apps: they seal when a test says so (the sealer
# itself is tested on a real server, tests/security/test_chain.py).
os.environ.setdefault("SOCIALCARD_SECURITY__AUDIT_SEAL_SECONDS", "0")

import pytest

pytest_plugins = ["tests.fixtures.db", "tests.fixtures.api"]


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Each test starts with empty rate-limit buckets (they live in the process)."""
    from socialcard.core import ratelimit

    ratelimit.reset_limiters()


def pytest_addoption(parser):  # type: ignore[no-untyped-def]
    parser.addoption(
        "--db",
        action="store",
        default=os.environ.get("SOCIALCARD_TEST_DB", "sqlite"),
        choices=("sqlite", "postgres"),
        help="which store the store-touching tests run on",
    )
