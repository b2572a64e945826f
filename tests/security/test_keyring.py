"""No running server uses a secret written in the source: the first start of a store generates
its keyring (owner-only, logged), production refuses to start without explicit secrets, and
keys rotate by id without breaking what was signed under the older ones."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from fastapi.testclient import TestClient
from sqlalchemy import select

from socialcard.app import create_app
from socialcard.core.clock import utcnow
from socialcard.core.config import SecuritySettings, Settings, get_settings
from socialcard.core.db import session_scope
from socialcard.proactive import jobs, links
from socialcard.proactive import service as proactive_service
from socialcard.proactive.errors import InvalidLink
from socialcard.proactive.models import Consent, Offer
from socialcard.security import keyring
from socialcard.security import service as security_service
from socialcard.security.errors import InvalidApiKey
from socialcard.security.keyring import SecretsError
from tests.proactive.conftest import LARGE, PERIOD, add_large_family

ROOT = Path(__file__).resolve().parents[2]
# What the source used to hold (finding 1): never a key anything verifies with.
OLD_LINK_SECRET = b"dev-only-secret-change-me"
OLD_WEBHOOK_SECRET = b"dev-webhook-secret"


def _settings(tmp_path: Path, **values: object) -> Settings:
    base: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path / 'store.db'}",
        "secret_key": None,
        "security": SecuritySettings(),
    }
    return Settings(**{**base, **values})  # type: ignore[arg-type]


@pytest.fixture
def fresh_keyring() -> Iterator[None]:
    keyring.clear_keyring_cache()
    yield
    keyring.clear_keyring_cache()
    get_settings.cache_clear()


class TestFirstStart:
    def test_generates_a_keyring_beside_the_store_owner_only_and_says_so(
        self, tmp_path: Path
    ) -> None:
        settings = _settings(tmp_path)
        with structlog.testing.capture_logs() as logs:
            ring = keyring.load_keyring(settings)
        path = tmp_path / "store.keyring.json"
        assert (ring.source, ring.path) == ("generated", path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert set(keyring.PURPOSES) <= set(ring.sets)
        assert [e["event"] for e in logs] == ["secrets_generated"]
        assert logs[0]["path"] == str(path)
        secrets_in_file = {k.secret for ks in ring.sets.values() for k in ks.keys}
        assert len(secrets_in_file) == len(keyring.PURPOSES)  # one random key per purpose
        assert all(len(secret) == 32 for secret in secrets_in_file)
        again = keyring.load_keyring(settings)
        assert again.keyset("consent_link").current == ring.keyset("consent_link").current

    def test_a_postgresql_store_keeps_its_keyring_outside_the_database(self) -> None:
        path = keyring.default_keyring_path("postgresql+psycopg://postgres@db.example:5432/sc")
        assert path == Path("var/keyring/postgresql-db.example-5432-sc.json")

    def test_a_keyring_readable_by_others_is_tightened_in_development(self, tmp_path: Path) -> None:
        settings = _settings(tmp_path)
        keyring.load_keyring(settings)
        path = tmp_path / "store.keyring.json"
        path.chmod(0o644)
        keyring.load_keyring(settings)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.slow
class TestProduction:
    def test_refuses_without_explicit_secrets(self, tmp_path: Path) -> None:
        with pytest.raises(SecretsError, match="production needs explicit secrets"):
            keyring.load_keyring(_settings(tmp_path, environment="production"))
        assert not (tmp_path / "store.keyring.json").exists()

    @pytest.mark.parametrize("secret", ["test-secret", "dev-only-secret-change-me", "short"])
    def test_refuses_a_public_or_short_master_secret(self, tmp_path: Path, secret: str) -> None:
        with pytest.raises(SecretsError, match="public or short"):
            keyring.load_keyring(_settings(tmp_path, environment="production", secret_key=secret))

    def test_accepts_an_explicit_keyring_file_only_when_owner_only(self, tmp_path: Path) -> None:
        path = tmp_path / "prod.keyring.json"
        keyring.write_keyring_file(path, keyring.new_keyring_data())
        security = SecuritySettings(secrets_file=path)
        ring = keyring.load_keyring(
            _settings(tmp_path, environment="production", security=security)
        )
        assert ring.source == "file"
        path.chmod(0o640)
        with pytest.raises(SecretsError, match="readable by others"):
            keyring.load_keyring(_settings(tmp_path, environment="production", security=security))

    def test_refuses_the_old_public_webhook_secret(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_keyring: None
    ) -> None:
        from socialcard.proactive import config as proactive_config

        monkeypatch.setenv("SOCIALCARD_ENVIRONMENT", "production")
        monkeypatch.setenv("SOCIALCARD_PROACTIVE__WEBHOOK_SECRET", "dev-webhook-secret")
        get_settings.cache_clear()
        proactive_config.get_proactive_settings.cache_clear()
        try:
            with pytest.raises(SecretsError, match="WEBHOOK_SECRET"):
                proactive_service.check_secrets()
        finally:
            proactive_config.get_proactive_settings.cache_clear()

    def test_the_server_does_not_start(self, tmp_path: Path) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SOCIALCARD_") or k == "SOCIALCARD_CLOCK"
        }
        env |= {
            "SOCIALCARD_ENVIRONMENT": "production",
            "SOCIALCARD_DATABASE_URL": f"sqlite:///{tmp_path / 'prod.db'}",
        }
        done = subprocess.run(
            [sys.executable, "-m", "socialcard.cli.main", "serve", "--port", "1"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2
        assert "production needs explicit secrets" in done.stderr
        with pytest.raises(SecretsError):
            keyring.load_keyring(_settings(tmp_path, environment="production"))


def _old_style_link(offer_id: int, expires: int) -> str:
    payload = f"{offer_id}.{expires}"
    digest = hmac.new(OLD_LINK_SECRET, b"consent-link:" + payload.encode(), hashlib.sha256)
    return f"{payload}.{base64.urlsafe_b64encode(digest.digest()).rstrip(b'=').decode()}"


def _forged_link(offer_id: int, expires: int) -> str:
    mac = hmac.new(OLD_LINK_SECRET, f"consent-link:{offer_id}.{expires}".encode(), hashlib.sha256)
    encoded = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
    return f"{offer_id}.{expires}.{keyring.keyset('consent_link').current.id}.{encoded}"


class TestNoSecretFromTheSource:
    """Finding 1: with no secret configured, a forged link or webhook signed with the secrets
    the source used to hold is refused, and nothing is decided for the citizen."""

    def test_forged_links_and_webhooks_are_refused(
        self,
        proactive_env: Path,
        monkeypatch: pytest.MonkeyPatch,
        database_url: str,
        fresh_keyring: None,
    ) -> None:
        household = add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        with session_scope() as session:
            offer_id = session.scalars(select(Offer.id)).one()
        monkeypatch.delenv("SOCIALCARD_SECRET_KEY")
        get_settings.cache_clear()
        keyring.clear_keyring_cache()
        path = keyring.default_keyring_path(database_url)
        path.unlink(missing_ok=True)
        try:
            with TestClient(create_app(), raise_server_exceptions=False) as client:
                assert path.exists()  # the store's own secrets, made at start
                expires = int((utcnow() + timedelta(days=1)).timestamp())
                for token in (_old_style_link(offer_id, expires), _forged_link(offer_id, expires)):
                    page = client.post(
                        f"/consent/{token}",
                        content="decision=agree",
                        headers={"Content-Type": "application/x-www-form-urlencoded"},
                    )
                    assert page.status_code == 403, token
                body = json.dumps({"id": "forged", "from": household.phone, "text": "1"}).encode()
                forged = hmac.new(OLD_WEBHOOK_SECRET, body, hashlib.sha256).hexdigest()
                reply = client.post(
                    "/api/v1/proactive/sms/inbound",
                    content=body,
                    headers={"X-Signature": forged, "Content-Type": "application/json"},
                )
                assert (reply.status_code, reply.json()["code"]) == (403, "bad_signature")
                genuine = links.make_token(offer_id, expires_at=utcnow() + timedelta(days=1))
                assert client.get(f"/consent/{genuine}").status_code == 200
            with session_scope() as session:
                assert session.scalars(select(Consent)).first() is None
        finally:
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".lock").unlink(missing_ok=True)


class TestRotation:
    def test_what_was_signed_under_an_older_key_verifies_until_it_is_retired(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_keyring: None
    ) -> None:
        path = tmp_path / "ring.json"
        keyring.write_keyring_file(path, keyring.new_keyring_data())
        monkeypatch.setenv("SOCIALCARD_SECURITY__SECRETS_FILE", str(path))
        get_settings.cache_clear()
        keyring.clear_keyring_cache()
        old_link = links.make_token(42, expires_at=utcnow() + timedelta(hours=1))
        old_id = old_link.split(".")[2]
        body = b'{"id": "r1", "from": "+77010000000", "text": "1"}'
        old_signature = proactive_service.webhook_signature(body)
        rotated = keyring.rotate("consent_link")
        keyring.rotate("sms_webhook")
        new_link = links.make_token(42, expires_at=utcnow() + timedelta(hours=1))
        assert new_link.split(".")[2] == rotated.id != old_id
        assert links.verify_token(old_link, now=utcnow()) == 42
        assert links.verify_token(new_link, now=utcnow()) == 42
        proactive_service.verify_webhook(body, old_signature)
        assert proactive_service.webhook_signature(body) != old_signature
        listed = {(k.purpose, k.id): k.current for k in keyring.describe()}
        assert listed[("consent_link", old_id)] is False
        assert listed[("consent_link", rotated.id)] is True
        with pytest.raises(SecretsError, match="current key"):
            keyring.retire("consent_link", rotated.id)
        keyring.retire("consent_link", old_id)
        with pytest.raises(InvalidLink):
            links.verify_token(old_link, now=utcnow())
        assert links.verify_token(new_link, now=utcnow()) == 42
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_an_api_key_issued_before_a_rotation_still_authenticates(
        self, session: object, monkeypatch: pytest.MonkeyPatch, fresh_keyring: None
    ) -> None:
        from sqlalchemy.orm import Session

        assert isinstance(session, Session)
        created = security_service.create_api_key(session, name="before", role="operator")
        # The master secret changes; the old one stays, to verify what it keyed.
        monkeypatch.setenv("SOCIALCARD_SECRET_KEY", "a-new-master-secret")
        monkeypatch.setenv("SOCIALCARD_SECRET_KEY_PREVIOUS", "test-secret")
        get_settings.cache_clear()
        keyring.clear_keyring_cache()
        security_service.clear_auth_cache()
        assert security_service.authenticate(session, raw_key=created.key).name == "before"
        later = security_service.create_api_key(session, name="after", role="operator")
        assert security_service.hash_key(later.key) != security_service.key_hashes(later.key)[1]
        monkeypatch.delenv("SOCIALCARD_SECRET_KEY_PREVIOUS")
        get_settings.cache_clear()
        keyring.clear_keyring_cache()
        security_service.clear_auth_cache()
        with pytest.raises(InvalidApiKey):
            security_service.authenticate(session, raw_key=created.key)

    def test_the_cli_rotates_and_shows_key_ids_never_secrets(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_keyring: None
    ) -> None:
        from typer.testing import CliRunner

        from socialcard.cli.main import app

        runner = CliRunner()
        path = tmp_path / "ops.keyring.json"
        made = runner.invoke(app, ["secrets", "init", "--file", str(path)])
        assert made.exit_code == 0, made.output
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        monkeypatch.setenv("SOCIALCARD_SECURITY__SECRETS_FILE", str(path))
        get_settings.cache_clear()
        keyring.clear_keyring_cache()
        rotated = runner.invoke(app, ["secrets", "rotate", "consent_link"])
        assert rotated.exit_code == 0, rotated.output
        shown = runner.invoke(app, ["secrets", "show"])
        assert shown.exit_code == 0
        data = json.loads(path.read_text())
        for entry in data["purposes"].values():
            for key in entry["keys"]:
                assert key["id"] in shown.stdout
                assert key["secret"] not in shown.stdout
        assert shown.stdout.count("consent_link") == 2
