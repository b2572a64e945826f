"""Name search: case-folded name columns, filled by every write path, searched by index."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session

from socialcard.core.migrate import upgrade
from socialcard.registry import repository
from socialcard.registry.folding import fold_array, fold_name, prefix_bounds
from socialcard.registry.ingestion import service as ingestion_service
from socialcard.registry.models import Person
from socialcard.registry.population.loader import generate_population
from tests.factories import make_person
from tests.fixtures.db import store_at_revision
from tests.registry.factories_ingestion import person_row, write_csv

TODAY = date(2026, 11, 23)


def _folded(session: Session, person_id: int) -> tuple[str, str]:
    row = session.execute(
        text("SELECT last_name_folded, first_name_folded FROM registry_person WHERE id = :id"),
        {"id": person_id},
    ).one()
    return row[0], row[1]


def _folded_by_iin(session: Session, national_id: str) -> tuple[str, str, str, str]:
    row = session.execute(
        text(
            "SELECT last_name, first_name, last_name_folded, first_name_folded"
            " FROM registry_person WHERE national_id = :n"
        ),
        {"n": national_id},
    ).one()
    return row[0], row[1], row[2], row[3]


def _search(session: Session, name: str, **kwargs: Any) -> tuple[list[int], int]:
    arguments: dict[str, Any] = {"national_id": None, "region_prefix": None, "offset": 0}
    arguments["limit"] = 50
    arguments.update(kwargs)
    rows, total = repository.search_persons(session, name=name, **arguments)
    return [p.id for p in rows], total


class TestFolding:
    def test_kazakh_and_russian_capitals_fold_to_their_small_letters(self) -> None:
        assert fold_name("ӘҒҚҢӨҰҮҺІЁ") == "әғқңөұүһіё"
        assert fold_name("Straße") == "strasse"

    def test_a_prefix_bounds_exactly_the_names_it_starts(self) -> None:
        low, high = prefix_bounds("ҚҰР")
        assert low <= "құрманов" < high
        assert low <= "құр" < high
        assert not (low <= "құс" < high)
        assert not (low <= "қу" < high)

    def test_columns_fold_like_single_names(self) -> None:
        import numpy as np
        import pyarrow as pa

        names = ["Әлиев", "ЁЛКИН", "Әлиев", "Ivanov"]
        assert list(fold_array(np.array(names, dtype=object))) == [fold_name(n) for n in names]
        assert fold_array(pa.array(names)).to_pylist() == [fold_name(n) for n in names]


class TestCaseInsensitiveSearch:
    @pytest.mark.parametrize(
        ("last_name", "first_name", "queries"),
        [
            ("Әбенова", "Айгүл", ["әбен", "ӘБЕН", "Әбенова", "айгү", "АЙГҮЛ"]),
            ("Құрманғазиев", "Ғалым", ["құрманғ", "ҚҰРМАНҒ", "ғал", "ҒАЛЫМ"]),
            ("Өмірзақов", "Ұлан", ["өмір", "ӨМІРЗАҚ", "ұла", "ҰЛАН"]),
            ("Үсенов", "Іңкәр", ["үсе", "ҮСЕН", "іңк", "ІҢКӘР"]),
            ("Һашимов", "Ёлдос", ["һаш", "ҺАШ", "ёлд", "ЁЛДОС"]),
            ("Ёлкин", "Пётр", ["ёлк", "ЁЛК", "пёт", "ПЁТР"]),
        ],
    )
    def test_any_case_finds_the_person(
        self, session: Session, last_name: str, first_name: str, queries: list[str]
    ) -> None:
        person = make_person(session, last_name=last_name, first_name=first_name)
        make_person(session, last_name="Иванова", first_name="Мария")
        for query in queries:
            assert _search(session, query) == ([person.id], 1), query

    def test_e_and_yo_stay_different_letters(self, session: Session) -> None:
        make_person(session, last_name="Ёлкина")
        assert _search(session, "елк") == ([], 0)

    def test_api_search_is_case_insensitive_in_kazakh(
        self, client: TestClient, session: Session, operator_headers: dict[str, str]
    ) -> None:
        person = make_person(session, last_name="ҚАСЫМОВА")
        found = client.get(
            "/api/v1/persons",
            params={"purpose": "case_review", "name": "қасым"},
            headers=operator_headers,
        ).json()
        assert [p["id"] for p in found["items"]] == [person.id]
        assert found["total"] == 1

    def test_pages_are_in_id_order_with_the_full_count(self, session: Session) -> None:
        ids = [make_person(session, last_name="Тоқтаров").id for _ in range(3)]
        ids += [make_person(session, first_name="Тоқтар").id for _ in range(2)]
        make_person(session, last_name="Тоқсанов")
        assert _search(session, "тоқт", limit=2) == (ids[:2], 5)
        assert _search(session, "тоқт", offset=4, limit=2) == (ids[4:], 5)
        assert _search(session, "тоқт", offset=5, limit=2) == ([], 5)

    def test_region_narrows_the_names(self, session: Session) -> None:
        here = make_person(session, last_name="Сейітов", region_kato="711110000")
        make_person(session, last_name="Сейітов", region_kato="751110000")
        assert _search(session, "сейіт", region_prefix="71") == ([here.id], 1)


class TestEveryWritePathFillsTheFoldedNames:
    def test_orm_insert_and_update(self, session: Session) -> None:
        person = make_person(session, last_name="ӘЛИЕВА", first_name="Ғалия")
        assert _folded(session, person.id) == ("әлиева", "ғалия")
        person.last_name = "Қожахметова"
        session.flush()
        assert _folded(session, person.id) == ("қожахметова", "ғалия")

    def test_batch_import_and_a_name_correction(self, session: Session) -> None:
        row = person_row(last_name="ЖҰМАБАЕВ", first_name="Ерлан")
        result, _ = ingestion_service.submit_batch(
            session, source="persons", rows=[row], batch_key="first"
        )
        assert result.rows_accepted == 1
        assert _folded_by_iin(session, row["national_id"])[2:] == ("жұмабаев", "ерлан")
        # A correction from the agency re-folds the names (the upsert path).
        ingestion_service.submit_batch(
            session,
            source="persons",
            rows=[dict(row, last_name="Жұмабай", first_name="ЕРЖАН")],
            batch_key="second",
        )
        assert _folded_by_iin(session, row["national_id"]) == (
            "Жұмабай",
            "ЕРЖАН",
            "жұмабай",
            "ержан",
        )
        assert _search(session, "ЖҰМАБАЙ")[1] == 1
        assert _search(session, "жұмабаев")[1] == 0

    def test_file_import(self, session: Session, tmp_path: Path) -> None:
        rows = [person_row(last_name="ӨТЕГЕНОВ"), person_row(first_name="ІЛИЯС")]
        path = write_csv(tmp_path / "persons.csv", rows)
        outcome = ingestion_service.import_file(session, source="persons", path=path, today=TODAY)
        assert outcome.result.rows_accepted == 2
        assert _folded_by_iin(session, rows[0]["national_id"])[2] == "өтегенов"
        assert _folded_by_iin(session, rows[1]["national_id"])[3] == "ілияс"

    def test_generated_population(self, committed_engine: Engine) -> None:
        generate_population(committed_engine, families=30, seed=3, as_of=date(2025, 6, 30))
        with committed_engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT last_name, first_name, last_name_folded, first_name_folded"
                    " FROM registry_person"
                )
            ).all()
        assert len(rows) > 30
        for last, first, last_folded, first_folded in rows:
            assert (last_folded, first_folded) == (fold_name(last), fold_name(first))


@pytest.fixture
def store_before_folding(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """A store of its own at the revision before the folded names."""
    with store_at_revision(backend, tmp_path, "folding_migration", "0702") as engine:
        yield engine


def test_the_migration_folds_the_names_already_stored(store_before_folding: Engine) -> None:
    names = [("ӘБІЛОВ", "Қайрат"), ("Ёлкин", "ҰЛАН"), ("Ёлкин", "Пётр")]
    with store_before_folding.begin() as conn:
        for number, (last, first) in enumerate(names):
            conn.execute(
                text(
                    "INSERT INTO registry_person (national_id, country, last_name, first_name,"
                    " birth_on, sex, language, region_kato, created_at, updated_at) VALUES"
                    " (:n, 'KZ', :last, :first, :born, 'M', 'kk', '751110000', :at, :at)"
                ),
                {
                    "n": f"85031030{number:04d}",
                    "last": last,
                    "first": first,
                    "born": date(1985, 3, 10),
                    "at": "2026-11-30 12:00:00",
                },
            )
        # A row that refers to a person: the migration must not copy the table (dropping it
        # would break this reference, as it did on a million-family store).
        conn.execute(
            text(
                "INSERT INTO registry_fact (person_id, kind, detail, valid_from, source,"
                " recorded_at) SELECT id, 'income', 'salary', :on, 'test', :at"
                " FROM registry_person"
            ),
            {"on": date(2026, 1, 1), "at": "2026-11-30 12:00:00"},
        )
    upgrade(store_before_folding)
    with Session(store_before_folding) as session:
        stored = session.execute(
            select(Person.last_name_folded, Person.first_name_folded).order_by(Person.id)
        ).all()
        assert [tuple(r) for r in stored] == [
            ("әбілов", "қайрат"),
            ("ёлкин", "ұлан"),
            ("ёлкин", "пётр"),
        ]
        assert _search(session, "ЁЛК")[1] == 2


def test_sqlite_plan_reads_the_name_indexes(session: Session, backend: str) -> None:
    """The search's own statements (count and page) range over both name indexes."""
    if backend != "sqlite":
        pytest.skip("SQLite's query plan")
    make_person(session, last_name="Ахметова")
    statements: list[tuple[str, Any]] = []
    connection = session.connection()

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", capture)
    try:
        _search(session, "ахм")
    finally:
        event.remove(connection, "before_cursor_execute", capture)
    searches = [(s, p) for s, p in statements if "last_name_folded >=" in s]
    assert len(searches) == 2  # the count and the page's ids
    raw = connection.connection.driver_connection
    assert raw is not None
    for statement, parameters in searches:
        plan = raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
        details = " | ".join(str(row[-1]) for row in plan)
        assert "ix_registry_person_last_name_folded" in details, details
        assert "ix_registry_person_first_name_folded" in details, details
        assert "SCAN registry_person" not in details, details


def test_postgres_can_range_over_the_name_indexes(session: Session, backend: str) -> None:
    """With the "C" collation a prefix range is an index range whatever the database's locale
    (sequential scans are switched off so that a small table still shows the usable plan)."""
    if backend != "postgres":
        pytest.skip("PostgreSQL's query plan")
    make_person(session, last_name="Ахметова")
    low, high = prefix_bounds("ахм")
    session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = session.execute(
        text(
            "EXPLAIN SELECT count(id) FROM registry_person"
            " WHERE (last_name_folded >= :l AND last_name_folded < :h)"
            " OR (first_name_folded >= :l AND first_name_folded < :h)"
        ),
        {"l": low, "h": high},
    ).all()
    details = " | ".join(str(row[0]) for row in plan)
    assert "ix_registry_person_last_name_folded" in details, details
    assert "ix_registry_person_first_name_folded" in details, details
