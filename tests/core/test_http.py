"""Errors are problem+json with field names; request ids are the server's; docs work offline."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_unknown_route_is_problem_json(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


def test_wrong_method_is_405_problem(client: TestClient) -> None:
    response = client.delete("/health")
    assert response.status_code == 405
    assert response.json()["status"] == 405


def test_request_ids_are_the_servers_own(client: TestClient) -> None:
    # A client's id is kept beside the server's (see tests/security), never used as it: the
    # audit log must not record an id the caller chose, repeated or forged.
    first = client.get("/health", headers={"X-Request-ID": "abc123"}).headers["x-request-id"]
    second = client.get("/health", headers={"X-Request-ID": "abc123"}).headers["x-request-id"]
    assert first != "abc123"
    assert len(first) == len(second) == 32
    assert first != second


def test_docs_are_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs").text
    assert "cdn.jsdelivr" not in page
    assert client.get("/openapi.json").json()["info"]["title"] == "socialcard"


def test_a_405_names_every_method_of_the_path(client: TestClient) -> None:
    # The consent page has a GET and a POST route; Starlette's 405 named only the first's.
    response = client.request("OPTIONS", "/consent/some-token")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["code"] == "method_not_allowed"
