"""The well-being API: runs, counts, family lists, CSV, changes, cards; problems, never 5xx."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from socialcard.wellbeing.schemas import RunRead
from tests.wellbeing.conftest import Families
from tests.wellbeing.helpers import BOUNDARY_FAMILIES, HOME, couple

ScoreRun = Callable[..., RunRead]
BASE = "/api/v1/wellbeing"


@pytest.fixture
def run(score_run: ScoreRun, boundary_families: Families) -> RunRead:
    return score_run(boundary_families)


def audit_store_down(session: Session, backend: str) -> None:
    """Make every insert into the audit log fail (undone with the test's transaction)."""
    if backend == "postgres":
        session.execute(
            text(
                "CREATE FUNCTION sc_audit_down() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'audit store unavailable'; END $$"
            )
        )
        session.execute(
            text(
                "CREATE TRIGGER sc_audit_down BEFORE INSERT ON security_audit_event "
                "FOR EACH ROW EXECUTE FUNCTION sc_audit_down()"
            )
        )
    else:
        session.execute(
            text(
                "CREATE TRIGGER sc_audit_down BEFORE INSERT ON security_audit_event "
                "BEGIN SELECT RAISE(ABORT, 'audit store unavailable'); END"
            )
        )


def _problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    return body


class TestRuns:
    def test_get_run_with_level_counts(
        self, client: TestClient, operator_headers: dict[str, str], run: RunRead
    ) -> None:
        response = client.get(f"{BASE}/runs/{run.id}", headers=operator_headers)
        assert response.status_code == 200
        body = response.json()
        assert body["families"] == len(BOUNDARY_FAMILIES)
        assert [lv["level"] for lv in body["levels"]] == ["A", "B", "C", "E"]
        assert body["levels"][0]["name"]["ru"] == "а"

    def test_list_runs(
        self, client: TestClient, operator_headers: dict[str, str], run: RunRead
    ) -> None:
        response = client.get(f"{BASE}/runs", headers=operator_headers)
        assert response.status_code == 200
        assert run.id in [r["id"] for r in response.json()["items"]]

    def test_unknown_run_is_a_404_problem(
        self, client: TestClient, operator_headers: dict[str, str]
    ) -> None:
        body = _problem(client.get(f"{BASE}/runs/123456789", headers=operator_headers), 404)
        assert body["code"] == "wellbeing_run_not_found"

    def test_regions(
        self, client: TestClient, operator_headers: dict[str, str], run: RunRead
    ) -> None:
        response = client.get(f"{BASE}/runs/{run.id}/regions", headers=operator_headers)
        assert response.status_code == 200
        (region,) = response.json()
        assert region["region_kato"] == "751110000"
        assert region["families"] == len(BOUNDARY_FAMILIES)

    def test_needs_an_api_key(self, client: TestClient, run: RunRead) -> None:
        _problem(client.get(f"{BASE}/runs/{run.id}"), 401)

    def test_a_kiosk_may_not_read(self, client: TestClient, session: object, run: RunRead) -> None:
        from socialcard.security import service as security_service

        key = security_service.create_api_key(session, name="kiosk", role="kiosk")  # type: ignore[arg-type]
        _problem(client.get(f"{BASE}/runs/{run.id}", headers={"X-API-Key": key.key}), 403)


class TestFamilies:
    def test_lists_a_level_and_audits_it(
        self,
        client: TestClient,
        operator_headers: dict[str, str],
        auditor_headers: dict[str, str],
        run: RunRead,
    ) -> None:
        response = client.get(
            f"{BASE}/runs/{run.id}/families",
            params={"level": "A", "purpose": "case_review"},
            headers=operator_headers,
        )
        assert response.status_code == 200
        ids = [f["family_id"] for f in response.json()["items"]]
        assert ids == sorted(k for k, v in BOUNDARY_FAMILIES.items() if v[2] == "A")
        audit = client.get(
            "/api/v1/audit/events",
            params={"subject_type": "family", "subject_id": ids[0]},
            headers=auditor_headers,
        )
        assert audit.json()["items"][0]["action"] == "wellbeing.families.read"

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"level": "Z", "purpose": "case_review"}, "level"),
            ({"region": "abc", "purpose": "case_review"}, "region"),
            ({"purpose": "curiosity"}, "purpose"),
            ({}, "purpose"),
            ({"purpose": "case_review", "page": 0}, "page"),
            ({"purpose": "case_review", "size": 1000}, "size"),
            ({"purpose": "case_review", "level": "TOOLONG"}, "level"),
        ],
    )
    def test_bad_input_is_a_422_naming_the_field(
        self,
        client: TestClient,
        operator_headers: dict[str, str],
        run: RunRead,
        params: dict[str, object],
        field: str,
    ) -> None:
        body = _problem(
            client.get(f"{BASE}/runs/{run.id}/families", params=params, headers=operator_headers),
            422,
        )
        assert field in [e["field"] for e in body["errors"]]  # type: ignore[attr-defined]

    @pytest.mark.parametrize(
        "path",
        [
            "/runs/0/families?purpose=audit",
            "/runs/99999999999999999999999/families?purpose=audit",
            "/runs/abc/families?purpose=audit",
            "/runs/-1",
            "/families/99999999999999999999?purpose=audit",
            "/families/0?purpose=audit",
            "/families/5?purpose=audit&run_id=-3",
        ],
    )
    def test_garbage_never_gets_a_5xx(
        self, client: TestClient, operator_headers: dict[str, str], path: str
    ) -> None:
        response = client.get(BASE + path, headers=operator_headers)
        assert 400 <= response.status_code < 500
        assert response.headers["content-type"].startswith("application/problem+json")

    def test_csv_export_is_streamed_with_every_family(
        self, client: TestClient, operator_headers: dict[str, str], run: RunRead
    ) -> None:
        response = client.get(
            f"{BASE}/runs/{run.id}/families.csv",
            params={"purpose": "data_quality"},
            headers=operator_headers,
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert sorted(int(r["family_id"]) for r in rows) == sorted(BOUNDARY_FAMILIES)
        assert {r["level"] for r in rows} == {"A", "B", "C", "E"}

    def test_no_row_leaves_when_the_audit_cannot_be_written(
        self,
        client: TestClient,
        session: Session,
        backend: str,
        operator_headers: dict[str, str],
        run: RunRead,
    ) -> None:
        # A real failure of the store's audit table (a trigger refusing every insert): the
        # export must not deliver what it could not record.
        audit_store_down(session, backend)
        response = client.get(
            f"{BASE}/runs/{run.id}/families.csv",
            params={"purpose": "data_quality"},
            headers=operator_headers,
        )
        assert response.status_code == 500
        assert not response.headers["content-type"].startswith("text/csv")
        assert not any(f"\n{family_id}," in response.text for family_id in BOUNDARY_FAMILIES)

    def test_csv_export_with_a_bad_level_is_a_problem(
        self, client: TestClient, operator_headers: dict[str, str], run: RunRead
    ) -> None:
        _problem(
            client.get(
                f"{BASE}/runs/{run.id}/families.csv",
                params={"purpose": "audit", "level": "Q"},
                headers=operator_headers,
            ),
            422,
        )


class TestChangesAndCard:
    def test_changes_since_the_previous_run(
        self,
        client: TestClient,
        operator_headers: dict[str, str],
        score_run: ScoreRun,
        boundary_families: Families,
    ) -> None:
        first = score_run(boundary_families)
        second = score_run({**boundary_families, 3: couple(facts=[HOME])})
        response = client.get(
            f"{BASE}/runs/{second.id}/changes",
            params={"purpose": "case_review"},
            headers=operator_headers,
        )
        assert response.status_code == 200
        body = response.json()
        assert body["previous_run_id"] == first.id
        assert [(c["family_id"], c["from_level"], c["to_level"]) for c in body["items"]] == [
            (3, "B", "A")
        ]

    def test_family_card_in_three_languages(
        self, client: TestClient, operator_headers: dict[str, str], run: RunRead
    ) -> None:
        response = client.get(
            f"{BASE}/families/8", params={"purpose": "citizen_inquiry"}, headers=operator_headers
        )
        assert response.status_code == 200
        card = response.json()
        assert (card["level"]["code"], card["score"]) == ("A", 18)
        assert set(card["dimensions"][0]["title"]) == {"kk", "ru", "en"}
        held = [i["code"] for d in card["dimensions"] for i in d["indicators"] if i["holds"]]
        assert sorted(held) == ["has_vehicle", "owns_home", "student"]

    def test_family_card_unknown_family(
        self, client: TestClient, operator_headers: dict[str, str], run: RunRead
    ) -> None:
        body = _problem(
            client.get(
                f"{BASE}/families/424242", params={"purpose": "audit"}, headers=operator_headers
            ),
            404,
        )
        assert body["code"] == "wellbeing_family_not_scored"


class TestMethodologies:
    def test_lists_the_shipped_methodologies(
        self, client: TestClient, operator_headers: dict[str, str]
    ) -> None:
        response = client.get(f"{BASE}/methodologies", headers=operator_headers)
        assert response.status_code == 200
        ids = {m["id"]: m for m in response.json()}
        assert ids["kz.wellbeing.cks_2023"]["default"] is True
        assert len(ids["kz.wellbeing.scoring_2025"]["levels"]) == 6


class TestRoles:
    def test_a_policy_owner_sees_counts_but_not_families(
        self, client: TestClient, session: object, run: RunRead
    ) -> None:
        from socialcard.security import service as security_service

        key = security_service.create_api_key(session, name="policy", role="policy_owner")  # type: ignore[arg-type]
        headers = {"X-API-Key": key.key}
        assert client.get(f"{BASE}/runs/{run.id}/regions", headers=headers).status_code == 200
        _problem(
            client.get(
                f"{BASE}/runs/{run.id}/families", params={"purpose": "audit"}, headers=headers
            ),
            403,
        )
