"""SMS gateways: the file/console gateway of the embedded default and an HTTP provider gateway.

Both honour the message's idempotency key: the file gateway never writes a key twice, and the
HTTP gateway sends it to the provider (header `Idempotency-Key`), which answers a repeated key
with the first message's id instead of sending again. With the outbox's send-state machine
(queued -> sending -> sent) that makes a send safe to repeat after a crash at any point.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from socialcard.core.clock import utcnow
from socialcard.core.logging import get_logger
from socialcard.proactive.config import ProactiveSettings
from socialcard.proactive.errors import GatewayNotConfigured

log = get_logger(__name__)


@dataclass(frozen=True)
class OutgoingSms:
    """One message to hand to a gateway."""

    key: str
    phone: str
    body: str


@dataclass(frozen=True)
class SendResult:
    """What the gateway says about one message."""

    key: str
    ok: bool
    provider_id: str | None = None
    error: str | None = None
    retryable: bool = False
    delivered: bool = False  # final at once (the file gateway's "SMS centre" is the file)


class Gateway(Protocol):
    """Sends messages; must be safe to call again with the same keys."""

    name: str

    def send_many(self, messages: Sequence[OutgoingSms]) -> list[SendResult]: ...

    def close(self) -> None: ...


class FileGateway:
    """Appends each message as a JSON line to a file (the embedded default's "SMS centre")."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._keys: set[str] = set()
        if self.path.exists():
            with self.path.open(encoding="utf-8") as handle:
                for line in handle:
                    try:
                        self._keys.add(json.loads(line)["key"])
                    except (ValueError, KeyError):
                        continue  # a line torn by a crash: its message is sent again

    def send_many(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        results: list[SendResult] = []
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            at = utcnow().isoformat()
            for message in messages:
                if message.key not in self._keys:
                    record = {"key": message.key, "to": message.phone, "text": message.body}
                    handle.write(json.dumps({**record, "at": at}, ensure_ascii=False) + "\n")
                    self._keys.add(message.key)
                results.append(
                    SendResult(message.key, True, provider_id=f"file:{message.key}", delivered=True)
                )
            handle.flush()
        return results

    def close(self) -> None:
        return None


class RateLimiter:
    """A token bucket shared by the sending threads: at most `rate` sends per second."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate / 10)
        self._tokens = self.capacity
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
            time.sleep(wait)


_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class HttpGateway:
    """JSON over HTTP to an SMS provider: POST {url}/messages, retries with backoff, a rate
    limit, and delivery receipts posted back to our callback endpoint."""

    name = "http"

    def __init__(self, settings: ProactiveSettings, *, callback_url: str | None = None) -> None:
        self.settings = settings
        self.callback_url = callback_url or (
            settings.public_base_url.rstrip("/") + "/api/v1/proactive/sms/receipts"
        )
        if settings.sms_api_key is None:
            raise GatewayNotConfigured(
                "the HTTP SMS gateway needs the provider's key: "
                "set SOCIALCARD_PROACTIVE__SMS_API_KEY"
            )
        self.limiter = RateLimiter(settings.sms_rate_per_second)
        self.client = httpx.Client(
            base_url=settings.sms_url,
            timeout=settings.sms_timeout_seconds,
            headers={"Authorization": f"Bearer {settings.sms_api_key.get_secret_value()}"},
            limits=httpx.Limits(
                max_connections=settings.sms_concurrency,
                max_keepalive_connections=settings.sms_concurrency,
            ),
        )
        self.pool = ThreadPoolExecutor(
            max_workers=settings.sms_concurrency, thread_name_prefix="sms"
        )

    def send_one(self, message: OutgoingSms) -> SendResult:
        """Send one message, retrying transient failures with exponential backoff."""
        body = {
            "idempotency_key": message.key,
            "to": message.phone,
            "text": message.body,
            "callback_url": self.callback_url,
        }
        error = "not sent"
        for attempt in range(self.settings.sms_max_attempts):
            if attempt:
                time.sleep(min(self.settings.sms_backoff_seconds * 2 ** (attempt - 1), 5.0))
            self.limiter.acquire()
            try:
                response = self.client.post(
                    "/messages", json=body, headers={"Idempotency-Key": message.key}
                )
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}"
                continue
            if response.status_code in (200, 201, 202, 409):
                try:
                    provider_id = str(response.json()["id"])
                except (ValueError, KeyError, TypeError):
                    return SendResult(
                        message.key, False, error="bad provider answer", retryable=True
                    )
                return SendResult(message.key, True, provider_id=provider_id)
            error = f"HTTP {response.status_code}"
            if response.status_code not in _RETRYABLE_STATUS:
                return SendResult(message.key, False, error=error, retryable=False)
        log.warning("sms_send_failed", key=message.key, error=error)
        return SendResult(message.key, False, error=error, retryable=True)

    def send_batch(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        """Send up to `sms_batch_size` messages in one request (POST {url}/messages/batch);
        each keeps its own idempotency key, and the provider answers per message."""
        body = {
            "messages": [
                {
                    "idempotency_key": m.key,
                    "to": m.phone,
                    "text": m.body,
                    "callback_url": self.callback_url,
                }
                for m in messages
            ]
        }
        error = "not sent"
        for attempt in range(self.settings.sms_max_attempts):
            if attempt:
                time.sleep(min(self.settings.sms_backoff_seconds * 2 ** (attempt - 1), 5.0))
            for _ in messages:
                self.limiter.acquire()
            try:
                response = self.client.post("/messages/batch", json=body)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}"
                continue
            if response.status_code in (200, 201, 202):
                try:
                    answers = {str(a["idempotency_key"]): a for a in response.json()["results"]}
                except (ValueError, KeyError, TypeError):
                    error = "bad provider answer"
                    continue
                return [self._batch_result(m, answers.get(m.key)) for m in messages]
            error = f"HTTP {response.status_code}"
            if response.status_code not in _RETRYABLE_STATUS:
                return [SendResult(m.key, False, error=error) for m in messages]
        return [SendResult(m.key, False, error=error, retryable=True) for m in messages]

    @staticmethod
    def _batch_result(message: OutgoingSms, answer: dict[str, object] | None) -> SendResult:
        if answer is None:
            return SendResult(message.key, False, error="no answer for message", retryable=True)
        if answer.get("id"):
            return SendResult(message.key, True, provider_id=str(answer["id"]))
        status = answer.get("status")
        retryable = isinstance(status, int) and status in _RETRYABLE_STATUS
        return SendResult(message.key, False, error=f"HTTP {status}", retryable=retryable)

    def send_many(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        size = self.settings.sms_batch_size
        if size <= 1:
            return list(self.pool.map(self.send_one, messages))
        batches = [messages[i : i + size] for i in range(0, len(messages), size)]
        return [r for batch in self.pool.map(self.send_batch, batches) for r in batch]

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()


def make_gateway(settings: ProactiveSettings) -> Gateway:
    """The configured gateway."""
    if settings.gateway == "http":
        return HttpGateway(settings)
    return FileGateway(settings.outbox_file)
