"""Registry reads over HTTP: persons, families with current facts, search, audit, errors."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from socialcard.registry.models import Fact, FamilyMember, Person
from socialcard.registry.schemas import FactRead, PersonRead
from socialcard.security.models import AuditEvent
from tests.factories import make_fact, make_family, make_person


def _family(session: Session) -> tuple[int, list[int]]:
    mother = make_person(session, birth_on=date(1985, 3, 1), sex="F")
    father = make_person(session, birth_on=date(1983, 5, 2), sex="M", first_name="Ерлан")
    child = make_person(session, birth_on=date(2015, 9, 9), sex="M", first_name="Нурлан")
    family = make_family(session, [(mother, "head"), (father, "spouse"), (child, "child")])
    make_fact(session, father, amount_minor=300_000_00)
    # a correction from the same agency later in time supersedes by validity
    make_fact(session, father, amount_minor=320_000_00, valid_from=date(2025, 7, 1))
    make_fact(session, father, amount_minor=310_000_00, source="enpf")  # second agency kept
    make_fact(
        session,
        child,
        kind="disability",
        detail="child",
        qualifier="from_childhood",
        amount_minor=None,
        source="msek",
        valid_from=date(2022, 1, 1),
    )
    return family.id, [mother.id, father.id, child.id]


def _read_family(client: TestClient, headers: dict[str, str], family_id: int, **params: str) -> Any:
    """The body of a successful family read (purpose case_review unless given)."""
    response = client.get(
        f"/api/v1/families/{family_id}",
        params={"purpose": "case_review", **params},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return response.json()


class TestGetFamily:
    def test_returns_members_with_current_facts(
        self, client: TestClient, session: Session, operator_headers: dict[str, str]
    ) -> None:
        family_id, _person_ids = _family(session)
        body = _read_family(client, operator_headers, family_id, on="2025-08-01")
        assert [m["role"] for m in body["members"]] == ["head", "spouse", "child"]
        father_facts = body["members"][1]["facts"]
        assert sorted((f["source"], f["amount_minor"]) for f in father_facts) == [
            ("enpf", 310_000_00),
            ("sgd", 320_000_00),
        ]
        assert body["members"][2]["facts"][0]["detail"] == "child"

    def test_facts_follow_the_as_of_date(
        self, client: TestClient, session: Session, operator_headers: dict[str, str]
    ) -> None:
        family_id, _ = _family(session)
        body = _read_family(client, operator_headers, family_id, on="2025-03-01")
        sgd = [f for f in body["members"][1]["facts"] if f["source"] == "sgd"]
        assert [f["amount_minor"] for f in sgd] == [300_000_00]

    def test_every_member_read_is_audited(
        self, client: TestClient, session: Session, operator_headers: dict[str, str]
    ) -> None:
        family_id, person_ids = _family(session)
        client.get(
            f"/api/v1/families/{family_id}",
            params={"purpose": "citizen_inquiry"},
            headers=operator_headers,
        )
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.subject_type == "person").order_by(AuditEvent.id)
        ).all()
        assert [r.subject_id for r in rows] == person_ids
        assert {r.purpose for r in rows} == {"citizen_inquiry"}
        assert {r.actor_role for r in rows} == {"operator"}
        assert all(r.request_id for r in rows)

    def test_requires_a_purpose(
        self, client: TestClient, session: Session, operator_headers: dict[str, str]
    ) -> None:
        family_id, _ = _family(session)
        response = client.get(f"/api/v1/families/{family_id}", headers=operator_headers)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == "purpose"

    def test_unknown_family_is_404_problem(
        self, client: TestClient, operator_headers: dict[str, str]
    ) -> None:
        response = client.get(
            "/api/v1/families/999999", params={"purpose": "audit"}, headers=operator_headers
        )
        assert response.status_code == 404
        assert response.json()["code"] == "family_not_found"

    def test_needs_an_api_key_and_the_right_role(
        self, client: TestClient, session: Session, agency_headers: dict[str, str]
    ) -> None:
        family_id, _ = _family(session)
        url = f"/api/v1/families/{family_id}?purpose=audit"
        assert client.get(url).status_code == 401
        assert client.get(url, headers={"X-API-Key": "sc_wrong"}).status_code == 401
        response = client.get(url, headers=agency_headers)
        assert response.status_code == 403
        assert response.json()["code"] == "role_not_allowed"
        assert _person_reads(session) == 0

    def test_members_and_facts_carry_every_field_of_the_schema(
        self, client: TestClient, session: Session, operator_headers: dict[str, str]
    ) -> None:
        family_id, person_ids = _family(session)
        body = _read_family(client, operator_headers, family_id, on="2025-08-01")
        child = session.get(Person, person_ids[2])
        assert child is not None
        member = body["members"][2]
        assert member["person"] == PersonRead.model_validate(child).model_dump(mode="json")
        fact = session.scalars(select(Fact).where(Fact.person_id == child.id)).one()
        assert member["facts"] == [FactRead.model_validate(fact).model_dump(mode="json")]
        assert (member["role"], member["from_on"], member["until_on"]) == (
            "child",
            "2020-01-01",
            None,
        )
        assert body["members"][0]["facts"] == []
        assert (body["id"], body["as_of"]) == (family_id, "2025-08-01")

    def test_past_members_only_on_request_and_audited_as_listed(
        self, client: TestClient, session: Session, operator_headers: dict[str, str]
    ) -> None:
        family_id, person_ids = _family(session)
        left = session.scalars(
            select(FamilyMember).where(FamilyMember.person_id == person_ids[1])
        ).one()
        left.until_on = date(2024, 12, 31)
        session.flush()
        current = _read_family(client, operator_headers, family_id, purpose="audit")
        assert [m["person"]["id"] for m in current["members"]] == [person_ids[0], person_ids[2]]
        everyone = _read_family(
            client, operator_headers, family_id, purpose="audit", include_past="true"
        )
        assert [(m["person"]["id"], m["until_on"]) for m in everyone["members"]] == [
            (person_ids[0], None),
            (person_ids[1], "2024-12-31"),
            (person_ids[2], None),
        ]
        audited = session.scalars(
            select(AuditEvent.subject_id)
            .where(AuditEvent.subject_type == "person")
            .order_by(AuditEvent.id)
        ).all()
        assert audited == [person_ids[0], person_ids[2], *person_ids]

    def test_family_without_current_members_is_returned_empty(
        self, client: TestClient, session: Session, operator_headers: dict[str, str]
    ) -> None:
        family = make_family(session, [], region_kato="751110000")
        body = _read_family(client, operator_headers, family.id, purpose="audit")
        assert (body["ref"], body["region_kato"], body["members"]) == (
            family.ref,
            "751110000",
            [],
        )
        assert _person_reads(session) == 0


def _person_reads(session: Session) -> int:
    query = select(func.count()).where(AuditEvent.subject_type == "person")
    return int(session.scalar(query.select_from(AuditEvent)) or 0)


class TestGetPerson:
    def test_returns_the_person_with_family_and_history(
        self, client: TestClient, session: Session, operator_headers: dict[str, str]
    ) -> None:
        family_id, person_ids = _family(session)
        body = client.get(
            f"/api/v1/persons/{person_ids[1]}",
            params={"purpose": "case_review"},
            headers=operator_headers,
        ).json()
        assert body["family_id"] == family_id
        assert body["role"] == "spouse"
        history = client.get(
            f"/api/v1/persons/{person_ids[1]}/facts",
            params={"purpose": "case_review"},
            headers=operator_headers,
        ).json()
        assert len(history) == 3

    def test_malformed_id_is_422_not_500(
        self, client: TestClient, operator_headers: dict[str, str]
    ) -> None:
        response = client.get(
            "/api/v1/persons/abc", params={"purpose": "audit"}, headers=operator_headers
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "person_id"


class TestSearch:
    def test_by_national_id_name_and_region(
        self, client: TestClient, session: Session, operator_headers: dict[str, str]
    ) -> None:
        person = make_person(
            session,
            last_name="Жумабаев",
            region_kato="711110000",
            birth_on=date(1970, 1, 1),
            sex="M",
        )
        make_person(session, last_name="Жумабаева", region_kato="751110000")
        params = {"purpose": "case_review"}
        by_id = client.get(
            "/api/v1/persons",
            params={**params, "national_id": person.national_id},
            headers=operator_headers,
        ).json()
        assert [p["id"] for p in by_id["items"]] == [person.id]
        by_name = client.get(
            "/api/v1/persons", params={**params, "name": "жумаба"}, headers=operator_headers
        ).json()
        assert by_name["total"] == 2
        by_region = client.get(
            "/api/v1/persons",
            params={**params, "name": "жумаба", "region": "71"},
            headers=operator_headers,
        ).json()
        assert [p["id"] for p in by_region["items"]] == [person.id]

    def test_paginates(
        self, client: TestClient, session: Session, operator_headers: dict[str, str]
    ) -> None:
        for _ in range(5):
            make_person(session, last_name="Серикова")
        page = client.get(
            "/api/v1/persons",
            params={"purpose": "audit", "name": "Серикова", "size": 2, "page": 3},
            headers=operator_headers,
        ).json()
        assert page["total"] == 5
        assert len(page["items"]) == 1

    def test_bad_criteria_name_the_field(
        self, client: TestClient, operator_headers: dict[str, str]
    ) -> None:
        cases = [
            ({}, "national_id"),
            ({"national_id": "123"}, "national_id"),
            ({"region": "99"}, "region"),
            ({"region": "ab"}, "region"),
            ({"name": "Ab", "size": 1000}, "size"),
        ]
        for params, field in cases:
            response = client.get(
                "/api/v1/persons", params={"purpose": "audit", **params}, headers=operator_headers
            )
            assert response.status_code == 422, (params, response.text)
            assert response.json()["errors"][0]["field"] == field


def test_regions_are_listed(client: TestClient) -> None:
    regions = client.get("/api/v1/regions").json()
    assert len(regions) == 20
    assert {
        "kato": "710000000",
        "name_kk": "Астана",
        "name_ru": "Астана",
        "name_en": "Astana",
    } in regions


class TestNameSearchWildcards:
    def test_percent_and_underscore_are_letters_not_wildcards(
        self, client: TestClient, session: Session, operator_headers: dict[str, str]
    ) -> None:
        # Before: `%` or `__` matched every person of the region.
        make_person(session, last_name="Абаев")
        make_person(session, last_name="Ab_c")
        params = {"purpose": "case_review"}
        for name, expected in (("%%", 0), ("__", 0), ("%а", 0), ("ab_", 1), ("абае", 1)):
            found = client.get(
                "/api/v1/persons", params={**params, "name": name}, headers=operator_headers
            )
            assert found.status_code == 200, found.text
            assert found.json()["total"] == expected, name
