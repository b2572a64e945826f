"""The OpenAPI contract is true (issue 11, deliver 7): security schemes declared, every `$ref`
resolvable, every integer bounded, and schemathesis finds no server error and no answer the
document does not describe, on either store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from socialcard.app import create_app
from socialcard.core.db import run_before_commit
from socialcard.security import service as security_service
from tests.wallet.factories import activate, fund, make_merchant, token_of
from tests.wallet.server import free_port, start_server, stop_server

MAX_ID = 2**63 - 1
# What schemathesis checks: no 5xx, and every answer as documented (status, content type,
# headers, body schema); invalid input refused; auth not ignored; 405 with a true Allow.
# Not `positive_data_acceptance`: a schema-valid BIN with a wrong check digit, an unknown
# category or a period without rules is refused by the services with a documented 422.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
)
# Seconds of generated traffic per store: the run stays within a few minutes in the suite.
BUDGET = os.environ.get("SOCIALCARD_SCHEMATHESIS_SECONDS", "75")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    with TestClient(create_app()) as client:
        schema: dict[str, Any] = client.get("/openapi.json").json()
    return schema


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


class TestDocument:
    def test_every_ref_resolves(self, document: dict[str, Any]) -> None:
        refs = [n["$ref"] for _, n in _walk(document) if isinstance(n, dict) and "$ref" in n]
        assert refs
        for ref in refs:
            assert _resolve(document, ref) is not None, ref
        assert not [p for p, n in _walk(document) if isinstance(n, dict) and "$defs" in n]

    def test_security_schemes_are_declared_and_used(self, document: dict[str, Any]) -> None:
        schemes = document["components"]["securitySchemes"]
        assert schemes["ApiKey"] == {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "An API key.",
        }
        assert schemes["Bearer"]["scheme"] == "bearer"
        assert schemes["TerminalKey"]["name"] == "X-Terminal-Key"
        paths = document["paths"]
        assert {"ApiKey": []} in paths["/api/v1/wallet/merchants"]["post"]["security"]
        purchase = paths["/api/v1/business/authorizations"]["post"]
        assert {"TerminalKey": []} in purchase["security"]
        assert "security" not in paths["/health"]["get"]

    def test_every_integer_a_request_carries_is_bounded(self, document: dict[str, Any]) -> None:
        request_parts = []
        for path, item in document["paths"].items():
            for method, operation in item.items():
                request_parts.append((f"{method} {path}", operation.get("parameters", [])))
                request_parts.append((f"{method} {path}", operation.get("requestBody", {})))
        unbounded = []
        seen: set[str] = set()
        while request_parts:
            where, part = request_parts.pop()
            for at, node in _walk(part):
                if not isinstance(node, dict):
                    continue
                ref = node.get("$ref")
                if isinstance(ref, str) and ref not in seen:
                    seen.add(ref)
                    request_parts.append((ref, _resolve(document, ref)))
                if node.get("type") == "integer":
                    low = node.get("minimum", node.get("exclusiveMinimum"))
                    high = node.get("maximum", node.get("exclusiveMaximum"))
                    if low is None or high is None or high > MAX_ID or low < -MAX_ID - 1:
                        unbounded.append(f"{where}{at}")
        assert unbounded == []

    def test_every_operation_documents_its_errors(self, document: dict[str, Any]) -> None:
        for path, item in document["paths"].items():
            for method, operation in item.items():
                answers = operation["responses"]
                if path != "/health":
                    assert {"429", "503"} <= set(answers), (method, path)
                if "requestBody" in operation:
                    assert {"413", "422"} <= set(answers), (method, path)
                if operation.get("security"):
                    assert "401" in answers, (method, path)
                for status, answer in answers.items():
                    problem = answer.get("content", {}).get("application/problem+json")
                    if problem is not None:
                        assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}, (
                            method,
                            path,
                            status,
                        )

    def test_the_docs_pages_are_served_offline(self, document: dict[str, Any]) -> None:
        with TestClient(create_app()) as client:
            for page in ("/docs", "/redoc"):
                html = client.get(page).text
                assert "cdn." not in html
                for asset in ("/static-offline-docs/",):
                    assert asset in html
            assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
            assert client.get("/static-offline-docs/redoc.standalone.js").status_code == 200


@pytest.fixture
def fuzzed_server(committed_engine: Engine, database_url: str) -> Iterator[tuple[str, str, str]]:
    """A real server on a store with an admin key, a merchant terminal and a funded voucher
    (rate limits off: schemathesis sends thousands of requests from one address)."""
    with Session(committed_engine, expire_on_commit=False) as session:
        admin = security_service.create_api_key(session, name="fuzz", role="admin").key
        _, _, terminal = make_merchant(session)
        funded = fund(session, amount_minor=1_000_000)
        activate(session, funded.voucher_id)
        token_of(session, funded.voucher_id)
        run_before_commit(session)
        session.commit()
    port = free_port()
    saved = dict(os.environ)
    os.environ.update(
        SOCIALCARD_LIMITS__ADDRESS_RATE="0",
        SOCIALCARD_LIMITS__API_KEY_RATE="0",
        SOCIALCARD_LIMITS__TERMINAL_RATE="0",
    )
    try:
        server = start_server(database_url, port, workers=1)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        yield f"http://127.0.0.1:{port}", admin, terminal
    finally:
        stop_server(server)


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    fuzzed_server: tuple[str, str, str], tmp_path: Path
) -> None:
    base, admin, terminal = fuzzed_server
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{base}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--max-time",
        BUDGET,
        # One worker: hypothesis parsing its lambdas' source in two threads at once trips
        # CPython 3.11's "AST constructor recursion depth mismatch".
        "--workers",
        "1",
        # The credentials are the ones given below, not generated (a valid X-API-Key with a
        # made-up Authorization header is rightly accepted).
        "--generation-with-security-parameters",
        "false",
        "--seed",
        "20261130",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
        "-H",
        f"X-API-Key: {admin}",
        "-H",
        f"X-Terminal-Key: {terminal}",
    ]
    run = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=int(BUDGET) + 240,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-20_000:]
    assert "Tested:" in output
