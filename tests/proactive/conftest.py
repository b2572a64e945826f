"""Proactive test helpers: committed families that a campaign finds, and a clean config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from socialcard.app import create_app
from socialcard.core.db import session_scope
from socialcard.proactive import config as proactive_config
from socialcard.proactive import service
from socialcard.security import service as security_service
from tests.factories import make_family, make_person

REPO = Path(__file__).resolve().parents[2]
PERIOD = "2026-03"
LARGE = "kz.large_family"
LARGE_AMOUNT_4 = 6_933_000  # 16.03 МРП x 4 325 ₸ = 69 330 ₸ (REFERENCE.md §2 item 7, 2026)


@dataclass
class Household:
    family_id: int
    head_id: int
    child_ids: list[int]
    phone: str


_phones = iter(range(1_000_000, 9_999_999))


def add_large_family(
    children: int = 4,
    *,
    language: str = "ru",
    head_born: date = date(1985, 1, 1),
    child_births: list[date] | None = None,
) -> Household:
    """A committed family with a head and `children` minors (a large family from 4)."""
    phone = f"+7701{next(_phones):07d}"
    with session_scope() as session:
        head = make_person(session, birth_on=head_born, sex="F", phone=phone, language=language)
        births = child_births or [date(2012 + i, 5, 1) for i in range(children)]
        kids = [
            make_person(session, birth_on=born, phone=None, language=language) for born in births
        ]
        family = make_family(session, [(head, "head")] + [(k, "child") for k in kids])
        return Household(family.id, head.id, [k.id for k in kids], phone)


@pytest.fixture
def proactive_env(
    committed_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Committed store, the KZ pack, and a file gateway writing under tmp_path."""
    outbox = tmp_path / "sms.jsonl"
    monkeypatch.setenv("SOCIALCARD_PROACTIVE__PACK_PATH", str(REPO / "packs" / "kz"))
    monkeypatch.setenv("SOCIALCARD_PROACTIVE__OUTBOX_FILE", str(outbox))
    proactive_config.get_proactive_settings.cache_clear()
    yield outbox
    proactive_config.get_proactive_settings.cache_clear()


@pytest.fixture
def live_client(proactive_env: Path) -> Iterator[TestClient]:
    """The app on the committed store (each request commits, like production)."""
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


def api_key(role: str = "operator") -> dict[str, str]:
    """A committed API key's header."""
    with session_scope() as session:
        created = security_service.create_api_key(session, name=f"t-{role}", role=role)
    return {"X-API-Key": created.key}


def signed(payload: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    """A provider callback body and its signature header."""
    body = json.dumps(payload).encode()
    return body, {
        "X-Signature": service.webhook_signature(body),
        "Content-Type": "application/json",
    }
