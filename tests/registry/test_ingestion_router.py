"""Agency batch API: status codes, problem+json errors, resends and roles."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from socialcard.registry.ingestion import service
from tests.registry.factories_ingestion import bad_check_digit, iin, income_row, person_row

PROBLEM = "application/problem+json"
URL = "/api/v1/sources/persons/batches"


def _body(rows: list[dict[str, Any]], key: str = "batch-1", **extra: Any) -> dict[str, Any]:
    return {"batch_key": key, "rows": rows, **extra}


def _assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["detail"]
    if code is not None:
        assert problem["code"] == code
    return problem


class TestSubmitBatch:
    def test_creates_a_batch_and_lists_rejected_rows(
        self, client: TestClient, agency_headers: dict[str, str]
    ):
        bad = person_row()
        bad["national_id"] = bad_check_digit(bad["national_id"])
        rows = [person_row(), bad, person_row(region_kato="12")]

        response = client.post(URL, json=_body(rows), headers=agency_headers)

        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["rows_total"], body["rows_accepted"], body["rows_rejected"]) == (3, 1, 2)
        assert body["status"] == "loaded"
        assert body["agency"] == "civil_registry"
        assert [(r["row_number"], r["field"]) for r in body["rejected"]] == [
            (2, "national_id"),
            (3, "region_kato"),
        ]

    def test_resend_returns_200_with_the_original_result(
        self, client: TestClient, agency_headers: dict[str, str]
    ):
        rows = [person_row(), person_row(sex="?")]
        first = client.post(URL, json=_body(rows), headers=agency_headers)

        again = client.post(URL, json=_body(rows), headers=agency_headers)

        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json() == first.json()

    def test_same_key_different_content_is_409(
        self, client: TestClient, agency_headers: dict[str, str]
    ):
        client.post(URL, json=_body([person_row()]), headers=agency_headers)

        response = client.post(URL, json=_body([person_row()]), headers=agency_headers)

        _assert_problem(response, 409, "batch_key_conflict")

    def test_idempotency_key_header_is_accepted(
        self, client: TestClient, agency_headers: dict[str, str]
    ):
        headers = {**agency_headers, "Idempotency-Key": "idem-7"}
        response = client.post(URL, json={"rows": [person_row()]}, headers=headers)

        assert response.status_code == 201
        assert response.json()["batch_key"] == "idem-7"

    def test_unknown_source_is_404(self, client: TestClient, agency_headers: dict[str, str]):
        response = client.post(
            "/api/v1/sources/horoscopes/batches", json=_body([{}]), headers=agency_headers
        )

        problem = _assert_problem(response, 404, "unknown_source")
        assert "persons" in problem["detail"]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"batch_key": "k", "rows": "not a list"}, "rows"),
            ({"batch_key": "k", "rows": [1, 2]}, "rows.0"),
            ({"batch_key": "k"}, "rows"),
            ({"batch_key": "k k", "rows": [{}]}, "batch_key"),
            ({"batch_key": "k", "rows": [{}], "agency": "Bad Agency!"}, "agency"),
            ({"batch_key": "k", "rows": [{}], "colour": "red"}, "colour"),
        ],
    )
    def test_malformed_body_is_422_naming_the_field(
        self, client: TestClient, agency_headers: dict[str, str], body: dict[str, Any], field: str
    ):
        response = client.post(URL, json=body, headers=agency_headers)

        problem = _assert_problem(response, 422, "invalid_input")
        assert field in [e["field"] for e in problem["errors"]]

    def test_invalid_json_is_422(self, client: TestClient, agency_headers: dict[str, str]):
        response = client.post(
            URL,
            content=b'{"rows": [',
            headers={**agency_headers, "content-type": "application/json"},
        )

        _assert_problem(response, 422)

    def test_missing_key_and_empty_rows_are_422(
        self, client: TestClient, agency_headers: dict[str, str]
    ):
        missing = client.post(URL, json={"rows": [person_row()]}, headers=agency_headers)
        empty = client.post(URL, json=_body([]), headers=agency_headers)

        assert _assert_problem(missing, 422, "invalid_batch")["errors"][0]["field"] == "batch_key"
        assert _assert_problem(empty, 422, "invalid_batch")["errors"][0]["field"] == "rows"

    def test_too_many_rows_is_413(self, client: TestClient, agency_headers: dict[str, str]):
        rows = [{}] * (service.MAX_API_ROWS + 1)

        response = client.post(URL, json=_body(rows), headers=agency_headers)

        _assert_problem(response, 413, "too_many_rows")

    def test_odd_values_are_quarantined_not_500(
        self, client: TestClient, agency_headers: dict[str, str]
    ):
        rows: list[dict[str, Any]] = [
            {"national_id": {"nested": True}},
            {"national_id": None, "birth_on": [1]},
            {"national_id": "x" * 5000},
            {"": ""},
            {"national_id": "\u0000"},
            {"bad\u0000key": "x"},
            {**person_row(), "address": "ул. Абая\u0000"},
        ]

        response = client.post(URL, json=_body(rows), headers=agency_headers)

        assert response.status_code == 201, response.text
        assert response.json()["rows_rejected"] == len(rows)

    def test_without_key_is_401(self, client: TestClient):
        response = client.post(URL, json=_body([person_row()]))

        _assert_problem(response, 401)

    def test_with_a_wrong_key_is_401(self, client: TestClient):
        response = client.post(URL, json=_body([person_row()]), headers={"X-API-Key": "sc_nope"})

        _assert_problem(response, 401)

    @pytest.mark.parametrize("role_headers", ["operator_headers", "auditor_headers"])
    def test_other_roles_are_403(
        self, client: TestClient, role_headers: str, request: pytest.FixtureRequest
    ):
        headers = request.getfixturevalue(role_headers)

        response = client.post(URL, json=_body([person_row()]), headers=headers)

        _assert_problem(response, 403)

    def test_admin_may_not_send(self, client: TestClient, admin_headers: dict[str, str]):
        # An admin issues keys; data comes only from an agency's own key.
        response = client.post(URL, json=_body([person_row()]), headers=admin_headers)

        _assert_problem(response, 403, "role_not_allowed")


class TestReadBatches:
    def _batch(self, client: TestClient, headers: dict[str, str]) -> int:
        rows = [person_row(), person_row(sex="?"), person_row(region_kato="0"), person_row()]
        response = client.post(URL, json=_body(rows), headers=headers)
        assert response.status_code == 201
        return int(response.json()["id"])

    def test_operator_reads_a_batch(
        self,
        client: TestClient,
        agency_headers: dict[str, str],
        operator_headers: dict[str, str],
    ):
        batch_id = self._batch(client, agency_headers)

        response = client.get(f"{URL}/{batch_id}", headers=operator_headers)

        assert response.status_code == 200
        assert response.json()["rows_rejected"] == 2

    def test_quarantine_is_paginated_and_shows_the_row(
        self,
        client: TestClient,
        agency_headers: dict[str, str],
        operator_headers: dict[str, str],
    ):
        batch_id = self._batch(client, agency_headers)

        purpose = "purpose=data_quality"
        first = client.get(
            f"{URL}/{batch_id}/quarantine?size=1&{purpose}", headers=operator_headers
        )
        second = client.get(
            f"{URL}/{batch_id}/quarantine?size=1&page=2&{purpose}", headers=operator_headers
        )

        assert first.status_code == second.status_code == 200
        page = first.json()
        assert (page["total"], page["page"], page["size"]) == (2, 1, 1)
        item = page["items"][0]
        assert (item["row_number"], item["field"]) == (2, "sex")
        assert item["raw"]["sex"] == "?"
        assert second.json()["items"][0]["field"] == "region_kato"

    def test_batch_of_another_source_or_unknown_is_404(
        self, client: TestClient, agency_headers: dict[str, str]
    ):
        batch_id = self._batch(client, agency_headers)

        other = client.get(f"/api/v1/sources/incomes/batches/{batch_id}", headers=agency_headers)
        missing = client.get(f"{URL}/999999", headers=agency_headers)
        huge = client.get(f"{URL}/99999999999999999999999", headers=agency_headers)

        _assert_problem(other, 404, "batch_not_found")
        _assert_problem(missing, 404, "batch_not_found")
        _assert_problem(huge, 422)

    def test_bad_page_is_422(self, client: TestClient, agency_headers: dict[str, str]):
        batch_id = self._batch(client, agency_headers)

        response = client.get(f"{URL}/{batch_id}/quarantine?size=0", headers=agency_headers)

        _assert_problem(response, 422)

    def test_reading_needs_a_key(self, client: TestClient):
        _assert_problem(client.get(f"{URL}/1"), 401)


class TestListSources:
    def test_lists_declared_schemas(self, client: TestClient, operator_headers: dict[str, str]):
        response = client.get("/api/v1/sources", headers=operator_headers)

        assert response.status_code == 200
        sources = {s["name"]: s for s in response.json()}
        assert {"persons", "family_members", "incomes", "deaths", "loans"} <= set(sources)
        incomes = sources["incomes"]
        assert (incomes["kind"], incomes["fact_kind"], incomes["default_agency"]) == (
            "fact",
            "income",
            "sgd",
        )
        amount = next(f for f in incomes["fields"] if f["name"] == "amount_minor")
        assert (amount["type"], amount["required"]) == ("integer", True)

    def test_citizen_key_is_403(self, client: TestClient, session: Any):
        from tests.factories import make_person
        from tests.fixtures.api import citizen_headers_for

        headers = citizen_headers_for(session, make_person(session).id)

        _assert_problem(client.get("/api/v1/sources", headers=headers), 403)


def _agency_key(session: Any, agency: str, sources: list[str]) -> dict[str, str]:
    from socialcard.security import service as security_service

    created = security_service.create_api_key(
        session, name=agency, role="agency", agency=agency, sources=sources
    )
    return {"X-API-Key": created.key}


INCOMES = "/api/v1/sources/incomes/batches"


class TestAgencyKeys:
    """Finding 4: an agency key pushes only its own sources, under its own name, and reads
    only its own batches."""

    def test_provenance_comes_from_the_key_not_the_body(self, client: TestClient, session: Any):
        sgd = _agency_key(session, "sgd", ["incomes"])
        rows = [income_row(iin())]
        claimed = client.post(INCOMES, json=_body(rows, agency="enpf"), headers=sgd)
        _assert_problem(claimed, 403, "agency_mismatch")
        other_source = client.post(URL, json=_body([person_row()]), headers=sgd)
        problem = _assert_problem(other_source, 403, "source_not_allowed")
        assert problem["errors"][0]["field"] == "source"
        sent = client.post(INCOMES, json=_body(rows), headers=sgd)
        assert sent.status_code == 201, sent.text
        assert sent.json()["agency"] == "sgd"
        named = client.post(INCOMES, json=_body(rows, key="b2", agency="sgd"), headers=sgd)
        assert named.status_code == 201

    def test_deaths_are_pushed_only_by_a_key_bound_to_them(self, client: TestClient, session: Any):
        sgd = _agency_key(session, "sgd", ["incomes"])
        deaths = {"national_id": iin(), "valid_from": "2026-01-05"}
        response = client.post(
            "/api/v1/sources/deaths/batches",
            json=_body([deaths], agency="civil_registry"),
            headers=sgd,
        )
        assert response.status_code == 403

    def test_an_agency_reads_only_its_own_batches(
        self, client: TestClient, session: Any, agency_headers: dict[str, str]
    ):
        sent = client.post(URL, json=_body([person_row(sex="?")]), headers=agency_headers)
        batch_id = sent.json()["id"]
        sgd = _agency_key(session, "sgd", ["incomes", "persons"])
        for path in (f"{URL}/{batch_id}", f"{URL}/{batch_id}/quarantine"):
            _assert_problem(client.get(path, headers=sgd), 404, "batch_not_found")
        own = client.get(f"{URL}/{batch_id}/quarantine", headers=agency_headers)
        assert own.status_code == 200
        assert own.json()["items"][0]["raw"]["sex"] == "?"

    def test_operators_read_quarantined_rows_with_a_purpose_and_are_audited(
        self,
        client: TestClient,
        session: Any,
        agency_headers: dict[str, str],
        operator_headers: dict[str, str],
    ):
        from sqlalchemy import select

        from socialcard.security.models import AuditEvent

        sent = client.post(URL, json=_body([person_row(sex="?")]), headers=agency_headers)
        batch_id = sent.json()["id"]
        bare = client.get(f"{URL}/{batch_id}/quarantine", headers=operator_headers)
        assert _assert_problem(bare, 422)["errors"][0]["field"] == "purpose"
        read = client.get(
            f"{URL}/{batch_id}/quarantine?purpose=data_quality", headers=operator_headers
        )
        assert read.status_code == 200
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "ingestion.quarantine.read")
        ).all()
        assert [(e.subject_type, e.subject_id, e.purpose) for e in events] == [
            ("ingestion_batch", batch_id, "data_quality")
        ]
