"""The HTTP gateway against a local provider (failures, slow answers), and the file gateway."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from socialcard.core.db import session_scope
from socialcard.proactive import jobs
from socialcard.proactive.config import ProactiveSettings
from socialcard.proactive.gateways import FileGateway, HttpGateway, OutgoingSms, RateLimiter
from socialcard.proactive.models import Message
from tests.proactive.conftest import LARGE, PERIOD, add_large_family, signed
from tests.proactive.provider import LocalProvider, ProviderState


def _settings(url: str, **overrides: object) -> ProactiveSettings:
    values: dict[str, object] = {
        "gateway": "http",
        "sms_url": url,
        "sms_backoff_seconds": 0.01,
        "sms_timeout_seconds": 1.0,
        "sms_max_attempts": 4,
        "sms_api_key": ProviderState().api_key,
        **overrides,
    }
    return ProactiveSettings(**values)  # type: ignore[arg-type]


def _sms(n: int) -> list[OutgoingSms]:
    return [OutgoingSms(key=f"k{i}", phone=f"+7701000{i:04d}", body="hello") for i in range(n)]


class TestHttpGateway:
    def test_sends_each_message_once_with_its_key(self) -> None:
        with LocalProvider() as provider:
            gateway = HttpGateway(_settings(provider.url))
            results = gateway.send_many(_sms(20))
            again = gateway.send_many(_sms(20))
            gateway.close()
        assert all(r.ok for r in results)
        assert [r.provider_id for r in again] == [r.provider_id for r in results]
        assert len(provider.state.sent) == 20

    def test_retries_failures_with_backoff(self) -> None:
        with LocalProvider(ProviderState(fail_first=2)) as provider:
            gateway = HttpGateway(_settings(provider.url))
            results = gateway.send_many(_sms(5))
            gateway.close()
        assert all(r.ok for r in results)
        assert all(provider.state.attempts[f"k{i}"] == 3 for i in range(5))
        assert len(provider.state.sent) == 5

    def test_gives_up_as_retryable_after_the_last_attempt(self) -> None:
        with LocalProvider(ProviderState(fail_first=10)) as provider:
            gateway = HttpGateway(_settings(provider.url, sms_max_attempts=3))
            [result] = gateway.send_many(_sms(1))
            gateway.close()
        assert not result.ok
        assert result.retryable
        assert result.error == "HTTP 503"

    def test_slow_answer_times_out_and_the_retry_does_not_send_twice(self) -> None:
        state = ProviderState(slow_first=0.6)
        with LocalProvider(state) as provider:
            gateway = HttpGateway(_settings(provider.url, sms_timeout_seconds=0.2))
            [result] = gateway.send_many(_sms(1))
            gateway.close()
        assert result.ok
        assert state.attempts["k0"] >= 2
        assert len(state.sent) == 1

    def test_rejected_number_is_a_final_failure(self) -> None:
        state = ProviderState(reject_numbers={"+77010000000"})
        with LocalProvider(state) as provider:
            gateway = HttpGateway(_settings(provider.url))
            [result] = gateway.send_many(_sms(1))
            gateway.close()
        assert (result.ok, result.retryable, result.error) == (False, False, "HTTP 400")
        assert state.attempts["k0"] == 1

    def test_batches_keep_per_message_keys_and_retry_failed_items(self) -> None:
        state = ProviderState(fail_first=1, reject_numbers={"+77010000003"})
        with LocalProvider(state) as provider:
            gateway = HttpGateway(_settings(provider.url, sms_batch_size=4))
            first = gateway.send_many(_sms(10))
            retried = [r.key for r in first if r.retryable]
            second = gateway.send_many([m for m in _sms(10) if m.key in retried])
            again = gateway.send_many(_sms(10))
            gateway.close()
        assert [r.ok for r in first] == [False] * 10
        assert [r.key for r in first if not r.retryable] == []
        rejected = [r.key for r in second if not r.ok]
        assert rejected == ["k3"]
        assert len(state.sent) == 9
        assert sum(r.ok for r in again) == 9

    def test_rate_limit_holds(self) -> None:
        limiter = RateLimiter(200, burst=1)
        started = time.perf_counter()
        for _ in range(41):
            limiter.acquire()
        assert time.perf_counter() - started >= 0.18


class TestFileGateway:
    def test_a_new_gateway_on_the_same_file_does_not_write_a_key_twice(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "out.jsonl"
        FileGateway(path).send_many(_sms(3))
        FileGateway(path).send_many(_sms(5))
        assert len(path.read_text(encoding="utf-8").splitlines()) == 5


class TestDispatchOverHttp:
    def test_failed_sends_wait_and_receipts_mark_delivery(
        self, live_client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for _ in range(3):
            add_large_family(4)
        jobs.run_campaign(program_id=LARGE, period=PERIOD)
        state = ProviderState(fail_first=10)
        with LocalProvider(state) as provider:
            gateway = HttpGateway(_settings(provider.url, sms_max_attempts=2))
            failed = jobs.dispatch(gateway=gateway)
            state.fail_first = 0
            retry_now = jobs.dispatch(gateway=gateway)
            with session_scope() as session:
                for message in session.scalars(select(Message)):
                    message.next_attempt_at = message.created_at  # the backoff has passed
            later = jobs.dispatch(gateway=gateway)
            gateway.close()
        assert failed == {"sent": 0, "failed": 3}
        assert retry_now == {"sent": 0, "failed": 0}
        assert later == {"sent": 3, "failed": 0}
        assert len(state.sent) == 3
        first = next(iter(state.sent.values()))
        assert first["callback_url"].endswith("/api/v1/proactive/sms/receipts")
        body, headers = signed({"id": first["id"], "status": "delivered"})
        response = live_client.post("/api/v1/proactive/sms/receipts", content=body, headers=headers)
        assert response.json() == {"recorded": True}
        unknown, headers = signed({"id": "nope", "status": "delivered"})
        response = live_client.post(
            "/api/v1/proactive/sms/receipts", content=unknown, headers=headers
        )
        assert response.json() == {"recorded": False}
        with session_scope() as session:
            statuses = sorted(m.status for m in session.scalars(select(Message)))
        assert statuses == ["delivered", "sent", "sent"]
