"""Parent-child links: births with their parents, adoption and guardianship links, social
insurance contributions; unknown mothers and parent cycles go to the quarantine."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from socialcard.registry.ingestion import service
from socialcard.registry.models import Fact, Person, PersonLink
from tests.registry.factories_ingestion import iin, person_row

TODAY = date(2026, 11, 23)


def _submit(session: Session, source: str, rows: list[dict[str, Any]], key: str = "k1"):
    result, _ = service.submit_batch(session, source=source, rows=rows, batch_key=key)
    return result


def _persons(session: Session, *rows: dict[str, Any]) -> None:
    result = _submit(session, "persons", list(rows), key=f"persons-{rows[0]['national_id']}")
    assert result.rows_rejected == 0, result.rejected


def _id(session: Session, row: dict[str, Any]) -> int:
    return int(
        session.scalars(select(Person.id).where(Person.national_id == row["national_id"])).one()
    )


def _links(session: Session) -> set[tuple[int, int, str, str | None]]:
    return {
        (link.child_id, link.parent_id, link.relation, link.source)
        for link in session.scalars(select(PersonLink).where(PersonLink.superseded_at.is_(None)))
    }


def _family(session: Session) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    mother = person_row(birth_on=date(1990, 1, 5), sex="F")
    father = person_row(birth_on=date(1988, 6, 1), sex="M")
    child = person_row(birth_on=date(2026, 3, 2), sex="F")
    _persons(session, mother, father, child)
    return mother, father, child


class TestBirths:
    def test_a_birth_registers_the_mother_and_the_father(self, session: Session):
        mother, father, child = _family(session)

        result = _submit(
            session,
            "births",
            [
                {
                    "national_id": child["national_id"],
                    "mother_national_id": mother["national_id"],
                    "father_national_id": father["national_id"],
                    "valid_from": "2026-03-02",
                }
            ],
        )

        assert (result.rows_accepted, result.rows_rejected) == (1, 0)
        kid = _id(session, child)
        assert _links(session) == {
            (kid, _id(session, mother), "mother", "civil_registry"),
            (kid, _id(session, father), "father", "civil_registry"),
        }
        births = session.scalars(select(Fact).where(Fact.kind == "birth")).all()
        assert [b.person_id for b in births] == [kid]

    def test_a_birth_whose_mother_is_unknown_is_quarantined_and_good_rows_kept(
        self, session: Session
    ):
        mother, _, child = _family(session)
        twin = person_row(birth_on=date(2026, 3, 2), sex="M")
        _persons(session, twin)

        result = _submit(
            session,
            "births",
            [
                {
                    "national_id": child["national_id"],
                    "mother_national_id": iin(date(1991, 2, 2), "F"),
                    "valid_from": "2026-03-02",
                },
                {"national_id": twin["national_id"], "valid_from": "2026-03-02"},
                {
                    "national_id": twin["national_id"],
                    "mother_national_id": mother["national_id"],
                    "valid_from": "2026-03-02",
                },
            ],
        )

        assert (result.rows_accepted, result.rows_rejected) == (1, 2)
        rejected = [(r.row_number, r.field) for r in result.rejected]
        assert rejected == [(1, "mother_national_id"), (2, "mother_national_id")]
        assert "unknown person" in result.rejected[0].reason
        assert _links(session) == {
            (_id(session, twin), _id(session, mother), "mother", "civil_registry")
        }

    def test_a_mother_younger_than_the_child_is_quarantined(self, session: Session):
        _, _, child = _family(session)
        baby = person_row(birth_on=date(2026, 5, 1), sex="F")
        _persons(session, baby)

        result = _submit(
            session,
            "births",
            [
                {
                    "national_id": child["national_id"],
                    "mother_national_id": baby["national_id"],
                    "valid_from": "2026-03-02",
                }
            ],
        )

        assert result.rows_rejected == 1
        assert result.rejected[0].field == "mother_national_id"


class TestParentLinks:
    def test_adoption_and_guardianship_are_kept_with_their_source_and_dates(self, session: Session):
        mother, _, child = _family(session)
        aunt = person_row(birth_on=date(1980, 1, 1), sex="F")
        _persons(session, aunt)

        result = _submit(
            session,
            "parent_links",
            [
                {
                    "national_id": child["national_id"],
                    "parent_national_id": aunt["national_id"],
                    "relation": "guardian",
                    "valid_from": "2026-04-01",
                    "valid_until": "2026-10-01",
                },
                {
                    "national_id": child["national_id"],
                    "parent_national_id": mother["national_id"],
                    "relation": "adoptive_mother",
                    "valid_from": "2026-10-02",
                },
            ],
        )

        assert (result.rows_accepted, result.rows_rejected) == (2, 0)
        links = session.scalars(select(PersonLink).order_by(PersonLink.valid_from)).all()
        assert [(x.relation, x.valid_from, x.valid_until) for x in links] == [
            ("guardian", date(2026, 4, 1), date(2026, 10, 1)),
            ("adoptive_mother", date(2026, 10, 2), None),
        ]

    def test_a_link_that_makes_a_person_their_own_ancestor_is_quarantined(self, session: Session):
        grandmother = person_row(birth_on=date(1950, 1, 1), sex="F")
        mother = person_row(birth_on=date(1975, 1, 1), sex="F")
        child = person_row(birth_on=date(2000, 1, 1), sex="F")
        _persons(session, grandmother, mother, child)

        def link(child_row: dict[str, Any], parent_row: dict[str, Any]) -> dict[str, Any]:
            return {
                "national_id": child_row["national_id"],
                "parent_national_id": parent_row["national_id"],
                "relation": "guardian",
                "valid_from": child_row["birth_on"],
            }

        first = _submit(
            session, "parent_links", [link(mother, grandmother), link(child, mother)], key="a"
        )
        assert first.rows_rejected == 0
        # The grandmother as the child's ward: the child would be her own ancestor's parent.
        result = _submit(
            session,
            "parent_links",
            [link(grandmother, child), link(child, grandmother), link(mother, mother)],
            key="b",
        )

        assert (result.rows_accepted, result.rows_rejected) == (1, 2)
        assert [(r.row_number, r.field) for r in result.rejected] == [
            (1, "parent_national_id"),
            (3, "parent_national_id"),
        ]
        assert "cycle" in result.rejected[0].reason

    def test_a_cycle_within_one_batch_is_caught(self, session: Session):
        a = person_row(birth_on=date(1970, 1, 1), sex="F")
        b = person_row(birth_on=date(1971, 1, 1), sex="F")
        _persons(session, a, b)
        rows = [
            {
                "national_id": b["national_id"],
                "parent_national_id": a["national_id"],
                "relation": "guardian",
                "valid_from": "2000-01-01",
            },
            {
                "national_id": a["national_id"],
                "parent_national_id": b["national_id"],
                "relation": "guardian",
                "valid_from": "2000-01-01",
            },
        ]

        result = _submit(session, "parent_links", rows)

        assert (result.rows_accepted, result.rows_rejected) == (1, 1)
        assert result.rejected[0].row_number == 2
        assert "cycle" in result.rejected[0].reason

    def test_an_unknown_relation_is_quarantined(self, session: Session):
        mother, _, child = _family(session)
        result = _submit(
            session,
            "parent_links",
            [
                {
                    "national_id": child["national_id"],
                    "parent_national_id": mother["national_id"],
                    "relation": "aunt",
                    "valid_from": "2026-03-02",
                }
            ],
        )
        assert result.rejected[0].field == "relation"


class TestSocialInsurance:
    def test_contributions_are_monthly_facts(self, session: Session):
        worker = person_row()
        _persons(session, worker)

        result = _submit(
            session,
            "social_insurance",
            [
                {
                    "national_id": worker["national_id"],
                    "amount_minor": "1750000",
                    "valid_from": "2026-02-01",
                    "valid_until": "2026-02-28",
                },
                {
                    "national_id": worker["national_id"],
                    "amount_minor": "1750000",
                    "valid_from": "2026-03-15",
                },
                {"national_id": worker["national_id"], "valid_from": "2026-04-01"},
                {
                    "national_id": worker["national_id"],
                    "amount_minor": "1750000",
                    "valid_from": "2026-05-01",
                    "valid_until": "2026-05-30",
                },
            ],
        )

        assert (result.rows_accepted, result.rows_rejected) == (1, 3)
        assert [(r.row_number, r.field) for r in result.rejected] == [
            (2, "valid_from"),
            (3, "amount_minor"),
            (4, "valid_until"),
        ]
        fact = session.scalars(select(Fact).where(Fact.kind == "social_insurance")).one()
        assert (fact.detail, fact.source, fact.valid_from, fact.valid_until) == (
            "contribution",
            "gfss",
            date(2026, 2, 1),
            date(2026, 2, 28),
        )
