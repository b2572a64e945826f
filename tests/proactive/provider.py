"""A small local SMS provider for tests and benchmarks: JSON over HTTP, idempotency keys,
scripted failures and slow answers. It is a real HTTP server on a free local port."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ProviderState:
    api_key: str = "dev-sms-key"
    fail_first: int = 0  # answer 503 to the first N attempts of each key
    slow_first: float = 0.0  # sleep this long on the first attempt of each key
    reject_numbers: set[str] = field(default_factory=set)  # answer 400 for these numbers
    attempts: dict[str, int] = field(default_factory=dict)
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> message (sent once)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: ProviderState

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to every keep-alive answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        state = self.state
        length = int(self.headers.get("Content-Length", "0"))
        payload = json.loads(self.rfile.read(length) or b"{}")
        if self.headers.get("Authorization") != f"Bearer {state.api_key}":
            self._answer(401, {"error": "bad key"})
            return
        if self.path == "/messages/batch":
            results = [self._accept(m["idempotency_key"], m) for m in payload["messages"]]
            self._answer(200, {"results": results})
            return
        key = self.headers.get("Idempotency-Key") or payload.get("idempotency_key")
        with state.lock:
            state.requests += 1
            attempt = state.attempts.get(key, 0) + 1
            state.attempts[key] = attempt
            known = state.sent.get(key)
        if known is not None:
            self._answer(200, {"id": known["id"], "duplicate": True})
            return
        if attempt == 1 and state.slow_first:
            time.sleep(state.slow_first)
        if attempt <= state.fail_first:
            self._answer(503, {"error": "try later"})
            return
        if payload.get("to") in state.reject_numbers:
            self._answer(400, {"error": "invalid number"})
            return
        message = {"id": uuid.uuid4().hex, **payload}
        with state.lock:
            # A concurrent twin of this key may have won the race: keep the first.
            message = state.sent.setdefault(key, message)
        self._answer(202, {"id": message["id"]})

    def _accept(self, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One message of a batch: its id, or the status it failed with."""
        state = self.state
        with state.lock:
            state.requests += 1
            attempt = state.attempts.get(key, 0) + 1
            state.attempts[key] = attempt
            known = state.sent.get(key)
            if known is not None:
                return {"idempotency_key": key, "id": known["id"]}
            if attempt <= state.fail_first:
                return {"idempotency_key": key, "status": 503}
            if payload.get("to") in state.reject_numbers:
                return {"idempotency_key": key, "status": 400}
            message = state.sent.setdefault(key, {"id": uuid.uuid4().hex, **payload})
        return {"idempotency_key": key, "id": message["id"]}


class LocalProvider:
    """Start with `with LocalProvider() as provider:`; `provider.url` is its base URL."""

    def __init__(self, state: ProviderState | None = None) -> None:
        self.state = state or ProviderState()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LocalProvider:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    """Run a provider in its own process (benchmarks): prints its URL, serves until killed."""
    import sys

    with LocalProvider() as provider:
        sys.stdout.write(provider.url + "\n")
        sys.stdout.flush()
        provider.thread.join()


if __name__ == "__main__":
    main()
