"""Ingestion service: batches, quarantine, upserts, fact history, families, events, files."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from socialcard.registry.ingestion import service
from socialcard.registry.ingestion.errors import (
    BatchFailed,
    BatchKeyConflict,
    FileRefused,
    InvalidBatch,
    TooManyRows,
    UnknownSource,
)
from socialcard.registry.models import (
    Batch,
    Event,
    Fact,
    Family,
    FamilyMember,
    Person,
    QuarantinedRow,
)
from tests.registry.factories_ingestion import (
    bad_check_digit,
    iin,
    income_row,
    many_person_rows,
    member_row,
    person_row,
    write_csv,
    write_jsonl,
    write_parquet,
)

TODAY = date(2026, 11, 23)


def _import(session: Session, source: str, path: Path, **kwargs: Any) -> service.ImportOutcome:
    return service.import_file(session, source=source, path=path, today=TODAY, **kwargs)


def _submit(session: Session, source: str, rows: list[dict[str, Any]], key: str = "k1", **kw: Any):
    return service.submit_batch(session, source=source, rows=rows, batch_key=key, **kw)


def _quarantine(session: Session, batch_id: int) -> list[tuple[int, str, str]]:
    rows = session.scalars(
        select(QuarantinedRow)
        .where(QuarantinedRow.batch_id == batch_id)
        .order_by(QuarantinedRow.row_number)
    )
    return [(r.row_number, r.field, r.reason) for r in rows]


def _count(session: Session, model: Any, *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _events(session: Session) -> list[tuple[str, int | None]]:
    return [(e.kind, e.person_id) for e in session.scalars(select(Event).order_by(Event.id))]


def _person(session: Session, national_id: str) -> Person:
    person = session.scalars(select(Person).where(Person.national_id == national_id)).one()
    return person


def _load_persons(session: Session, *rows: dict[str, Any], key: str = "persons-1") -> None:
    result, _ = _submit(session, "persons", list(rows), key=key)
    assert result.rows_rejected == 0, result.rejected


class TestImportPersons:
    def test_good_rows_land_and_bad_rows_are_quarantined(self, session: Session, tmp_path: Path):
        good = [person_row() for _ in range(3)]
        wrong_digit = person_row()
        wrong_digit["national_id"] = bad_check_digit(wrong_digit["national_id"])
        unknown_region = person_row(region_kato="990000000")
        future = person_row()
        future["birth_on"] = "2099-01-01"
        path = write_csv(
            tmp_path / "p.csv", [good[0], wrong_digit, good[1], unknown_region, future, good[2]]
        )

        outcome = _import(session, "persons", path)

        assert outcome.created
        result = outcome.result
        assert (result.rows_total, result.rows_accepted, result.rows_rejected) == (6, 3, 3)
        assert result.status == "loaded"
        quarantined = _quarantine(session, result.id)
        # Row numbers are line numbers: the header is line 1.
        assert [(n, f) for n, f, _ in quarantined] == [
            (3, "national_id"),
            (5, "region_kato"),
            (6, "birth_on"),
        ]
        assert "check digit" in quarantined[0][2]
        assert "unknown region" in quarantined[1][2]
        assert "future" in quarantined[2][2]
        raw = session.scalars(
            select(QuarantinedRow.raw).where(QuarantinedRow.row_number == 3)
        ).one()
        assert json.loads(raw)["national_id"] == wrong_digit["national_id"]
        for row in good:
            assert _person(session, row["national_id"]).last_name == row["last_name"]
        assert _count(session, Person) == 3

    def test_resent_file_changes_nothing_and_returns_the_first_result(
        self, session: Session, tmp_path: Path
    ):
        bad = person_row(region_kato="1")
        path = write_csv(tmp_path / "p.csv", [person_row(), bad])
        first = _import(session, "persons", path)
        events_before = _events(session)

        again = _import(session, "persons", path)

        assert not again.created
        assert again.result.id == first.result.id
        assert again.result.rows_accepted == first.result.rows_accepted == 1
        assert again.result.rows_rejected == 1
        assert _count(session, QuarantinedRow) == 1
        assert _count(session, Batch) == 1
        assert _events(session) == events_before

    def test_same_key_with_different_content_is_a_conflict(self, session: Session, tmp_path: Path):
        _import(session, "persons", write_csv(tmp_path / "a.csv", [person_row()]), batch_key="b1")
        other = write_csv(tmp_path / "b.csv", [person_row()])

        with pytest.raises(BatchKeyConflict, match="b1"):
            _import(session, "persons", other, batch_key="b1")

    def test_respelled_name_updates_the_person_instead_of_duplicating(self, session: Session):
        row = person_row(last_name="Ахметов")
        _submit(session, "persons", [row], key="first")

        respelled = dict(row, last_name="Akhmetov", phone="")
        result, created = _submit(session, "persons", [respelled], key="second")

        assert created
        assert result.rows_accepted == 1
        assert _count(session, Person, Person.national_id == row["national_id"]) == 1
        assert _person(session, row["national_id"]).last_name == "Akhmetov"

    def test_a_missing_optional_value_keeps_the_stored_one(self, session: Session):
        row = person_row(phone="+77011234567")
        _submit(session, "persons", [row], key="first")

        _submit(session, "persons", [dict(row, phone="")], key="second")

        assert _person(session, row["national_id"]).phone == "+77011234567"

    def test_same_person_twice_in_one_file_keeps_the_later_row(
        self, session: Session, tmp_path: Path
    ):
        row = person_row(first_name="Нурлан")
        path = write_csv(tmp_path / "p.csv", [row, dict(row, first_name="Нурлaн-Updated")])

        result = _import(session, "persons", path).result

        assert result.rows_accepted == 2
        assert _person(session, row["national_id"]).first_name == "Нурлaн-Updated"

    def test_registering_persons_is_no_life_event(self, session: Session, tmp_path: Path):
        # Life events are births, deaths, disability, unemployment and family changes; a person
        # record arriving (or being corrected) is registry upkeep, not an event of their life.
        rows = [person_row() for _ in range(4)]
        _import(session, "persons", write_csv(tmp_path / "p.csv", rows))
        _submit(session, "persons", [dict(rows[0], last_name="Other")], key="update")
        assert _events(session) == []


class TestFileFormats:
    def test_missing_required_column_refuses_the_file(self, session: Session, tmp_path: Path):
        row = person_row()
        columns = [c for c in row if c not in ("sex", "birth_on")]
        path = write_csv(tmp_path / "p.csv", [row], columns)

        with pytest.raises(FileRefused, match="missing required columns: birth_on, sex"):
            _import(session, "persons", path)
        assert _count(session, Batch) == 0

    def test_unknown_column_refuses_the_file(self, session: Session, tmp_path: Path):
        path = write_csv(tmp_path / "p.csv", [dict(person_row(), shoe_size="42")])

        with pytest.raises(FileRefused, match="unknown columns: 'shoe_size'"):
            _import(session, "persons", path)

    def test_empty_file_is_refused(self, session: Session, tmp_path: Path):
        path = tmp_path / "p.csv"
        path.write_bytes(b"")

        with pytest.raises(FileRefused, match="empty"):
            _import(session, "persons", path)

    def test_header_only_file_is_refused(self, session: Session, tmp_path: Path):
        path = tmp_path / "p.csv"
        path.write_text(",".join(person_row()) + "\n")

        with pytest.raises(FileRefused, match="no data rows"):
            _import(session, "persons", path)
        assert _count(session, Batch) == 0

    def test_unknown_source_is_refused(self, session: Session, tmp_path: Path):
        with pytest.raises(UnknownSource, match="persons"):
            _import(session, "horoscopes", write_csv(tmp_path / "p.csv", [person_row()]))

    def test_unknown_extension_needs_a_format(self, session: Session, tmp_path: Path):
        path = write_csv(tmp_path / "p.txt", [person_row()])
        with pytest.raises(FileRefused, match="--format"):
            _import(session, "persons", path)

        assert _import(session, "persons", path, file_format="csv").result.rows_accepted == 1

    def test_malformed_csv_rows_are_quarantined_and_later_rows_keep_their_numbers(
        self, session: Session, tmp_path: Path
    ):
        rows = [person_row() for _ in range(3)] + [person_row(sex="X")]
        path = write_csv(tmp_path / "p.csv", rows)
        lines = path.read_text(encoding="utf-8").splitlines()
        # Line 3 loses a column; lines 4-5 are one record whose quote spans a line break.
        lines[2] = lines[2].rsplit(",", 1)[0]
        broken = [*lines[:3], 'x,"unclosed', 'y",z', *lines[3:]]
        path.write_text("\n".join(broken) + "\n", encoding="utf-8")

        result = _import(session, "persons", path).result

        assert result.rows_accepted == 2
        quarantined = _quarantine(session, result.id)
        assert [(n, f) for n, f, _ in quarantined] == [(3, "(row)"), (4, "(row)"), (7, "sex")]
        assert "values, the header has 11 columns" in quarantined[0][2]
        assert _count(session, Person) == 2

    def test_blank_lines_and_quoted_newlines_keep_line_numbers(
        self, session: Session, tmp_path: Path
    ):
        rows = [person_row(address="ул. Абая 1,\nкв. 2"), person_row(), person_row(sex="X")]
        path = write_csv(tmp_path / "p.csv", rows)
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        head, rest = text.split("\n", 1)
        path.write_text(head + "\n\n" + rest, encoding="utf-8")

        result = _import(session, "persons", path).result

        # header 1, blank 2, first row 3-4 (quoted newline), second 5, third 6
        assert _quarantine(session, result.id) == [(6, "sex", "must be M or F, got 'X'")]
        assert result.rows_total == 3

    def test_nul_characters_are_quarantined(self, session: Session, tmp_path: Path):
        path = write_csv(tmp_path / "p.csv", [person_row(), person_row(address="Абая\x00 1")])

        result = _import(session, "persons", path).result

        assert _quarantine(session, result.id) == [(3, "address", "contains a NUL character")]

    def test_jsonl_wrong_types_and_bad_lines_are_quarantined(
        self, session: Session, tmp_path: Path
    ):
        good = person_row()
        number_date = dict(person_row(), birth_on=19850310)
        number_id = dict(person_row(), national_id=850310300012)
        path = write_jsonl(
            tmp_path / "p.jsonl",
            [
                good,
                number_date,
                "not json",
                "[1, 2]",
                number_id,
                dict(person_row(), colour="red"),
                "",
            ],
        )

        result = _import(session, "persons", path).result

        assert result.rows_accepted == 1
        assert _quarantine(session, result.id) == [
            (2, "birth_on", "must be a date string YYYY-MM-DD, got number"),
            (3, "(row)", "line is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
            (4, "(row)", "line must be a JSON object, got array"),
            (5, "national_id", "must be a string, got number"),
            (6, "colour", _quarantine(session, result.id)[4][2]),
        ]
        assert "unknown column" in _quarantine(session, result.id)[4][2]

    def test_truncated_jsonl_line_is_quarantined(self, session: Session, tmp_path: Path):
        path = write_jsonl(tmp_path / "p.jsonl", [person_row(), person_row()])
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 20])

        result = _import(session, "persons", path).result

        assert (result.rows_accepted, result.rows_rejected) == (1, 1)
        assert _quarantine(session, result.id)[0][:2] == (2, "(row)")

    def test_parquet_rows_are_numbered_by_position(self, session: Session, tmp_path: Path):
        rows = [person_row(), person_row(sex="X"), person_row()]
        rows[0]["birth_on"] = date(1985, 3, 10)  # a native date column would be date32
        for row in rows[1:]:
            row["birth_on"] = date.fromisoformat(row["birth_on"])
        path = write_parquet(tmp_path / "p.parquet", rows)

        result = _import(session, "persons", path).result

        assert (result.rows_accepted, result.rows_rejected) == (2, 1)
        assert _quarantine(session, result.id)[0][:2] == (2, "sex")

    def test_parquet_column_of_the_wrong_type_refuses_the_file(
        self, session: Session, tmp_path: Path
    ):
        rows = [dict(person_row(), birth_on=19850310)]
        path = write_parquet(tmp_path / "p.parquet", rows)

        with pytest.raises(FileRefused, match="birth_on is int64, expected date"):
            _import(session, "persons", path)

    def test_truncated_parquet_is_refused(self, session: Session, tmp_path: Path):
        path = write_parquet(tmp_path / "p.parquet", [person_row() for _ in range(50)])
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

        with pytest.raises(FileRefused, match="not a readable Parquet file"):
            _import(session, "persons", path)
        assert _count(session, Person) == 0

    def test_large_file_is_streamed_in_chunks(self, session: Session, tmp_path: Path):
        rows = [
            person_row(birth_on=date(1950 + i % 60, 1 + i % 12, 1 + i % 28)) for i in range(30_000)
        ]
        rows[12_345]["sex"] = "?"
        path = write_csv(tmp_path / "big.csv", rows)
        progress: list[tuple[int, int, int]] = []

        outcome = _import(
            session, "persons", path, chunk_rows=5_000, progress=lambda *a: progress.append(a)
        )

        assert outcome.stats.chunks >= 6
        assert len(progress) == outcome.stats.chunks
        assert progress[-1][2] == 30_000
        result = outcome.result
        assert (result.rows_total, result.rows_accepted, result.rows_rejected) == (
            30_000,
            29_999,
            1,
        )
        assert _quarantine(session, result.id)[0][:2] == (12_345 + 2, "sex")
        assert _count(session, Person) == 29_999

    def test_each_chunk_is_handed_to_the_checkpoint(self, session: Session, tmp_path: Path):
        path = write_csv(tmp_path / "p.csv", [person_row() for _ in range(250)])
        calls: list[int] = []

        _import(session, "persons", path, chunk_rows=100, checkpoint=lambda: calls.append(1))

        assert len(calls) >= 3  # one per chunk, and one when the batch is finished

    def test_a_break_part_way_keeps_earlier_chunks_and_marks_the_batch_failed(
        self, session: Session, tmp_path: Path
    ):
        rows = many_person_rows(30_000)
        path = write_csv(tmp_path / "p.csv", rows)
        data = path.read_bytes()
        # Invalid UTF-8 near the end: pyarrow cannot decode that block at all.
        cut = len(data) - 200
        path.write_bytes(data[:cut] + b"\xff\xfe" + data[cut:])

        with pytest.raises(BatchFailed, match="marked failed") as raised:
            _import(session, "persons", path, chunk_rows=1_000)

        batch = session.scalars(select(Batch)).one()
        assert batch.status == "failed"
        assert "UTF8" in (batch.error or "")
        loaded = _count(session, Person)
        assert 0 < loaded < 30_000
        assert raised.value.details[0]["batch_id"] == batch.id

        fixed = write_csv(tmp_path / "fixed.csv", rows)
        result = _import(session, "persons", fixed).result
        assert result.rows_accepted == 30_000
        assert _count(session, Person) == 30_000
        # Re-running duplicated nobody, and person records raise no life events.
        assert _count(session, Event) == 0

    def test_worker_processes_give_the_same_result(self, session: Session, tmp_path: Path):
        rows = [person_row() for _ in range(600)]
        rows[10]["region_kato"] = "000000000"
        rows[500]["national_id"] = bad_check_digit(rows[500]["national_id"])
        path = write_csv(tmp_path / "p.csv", rows)

        outcome = _import(session, "persons", path, chunk_rows=100, workers=2)

        assert outcome.stats.workers == 2
        assert (outcome.result.rows_accepted, outcome.result.rows_rejected) == (598, 2)
        assert [n for n, _, _ in _quarantine(session, outcome.result.id)] == [12, 502]
        assert _count(session, Person) == 598


class TestFacts:
    def test_unknown_person_is_quarantined(self, session: Session):
        person = person_row()
        _load_persons(session, person)

        result, _ = _submit(
            session, "incomes", [income_row(person["national_id"]), income_row(iin())]
        )

        assert (result.rows_accepted, result.rows_rejected) == (1, 1)
        assert result.rejected[0].row_number == 2
        assert result.rejected[0].field == "national_id"
        assert "unknown person" in result.rejected[0].reason

    def test_two_agencies_keep_both_facts(self, session: Session):
        person = person_row()
        _load_persons(session, person)
        row = income_row(person["national_id"])

        _submit(session, "incomes", [row], key="a")
        _submit(session, "incomes", [dict(row, amount_minor="30000000")], key="a", agency="kgd")

        facts = session.scalars(select(Fact).order_by(Fact.source)).all()
        assert [(f.source, f.amount_minor, f.superseded_at) for f in facts] == [
            ("kgd", 30_000_000, None),
            ("sgd", 25_000_000, None),
        ]

    def test_a_correction_supersedes_the_old_fact_and_keeps_history(self, session: Session):
        person = person_row()
        _load_persons(session, person)
        row = income_row(person["national_id"])
        _submit(session, "incomes", [row], key="first")

        _submit(session, "incomes", [row], key="same-values")
        assert _count(session, Fact) == 1  # same key, same values: nothing new

        _submit(session, "incomes", [dict(row, amount_minor="26000000")], key="corrected")

        facts = session.scalars(select(Fact).order_by(Fact.id)).all()
        assert [f.amount_minor for f in facts] == [25_000_000, 26_000_000]
        assert facts[0].superseded_at is not None
        assert facts[1].superseded_at is None

    def test_types_and_shapes_are_checked(self, session: Session):
        person = person_row()
        _load_persons(session, person)
        nid = person["national_id"]

        result, _ = _submit(
            session,
            "incomes",
            [
                income_row(nid, amount_minor=12.5),
                income_row(nid, valid_from=20250101),
                income_row(nid, detail="lottery"),
                income_row(nid, valid_from="1970-01-01"),
            ],
        )

        assert [(r.row_number, r.field) for r in result.rejected] == [
            (1, "amount_minor"),
            (2, "valid_from"),
            (3, "detail"),
            (4, "valid_from"),
        ]
        assert "birth date" in result.rejected[3].reason

    def test_disability_and_unemployment_raise_events_once(self, session: Session):
        person = person_row()
        _load_persons(session, person)
        pid = _person(session, person["national_id"]).id
        before = len(_events(session))
        row = {
            "national_id": person["national_id"],
            "detail": "group_2",
            "valid_from": "2025-05-01",
        }

        _submit(session, "disability", [row], key="d1")
        _submit(
            session,
            "unemployment",
            [{"national_id": person["national_id"], "valid_from": "2025-06-01"}],
        )
        _submit(
            session, "disability", [dict(row, valid_until="2026-05-01")], key="d2"
        )  # correction

        assert _events(session)[before:] == [
            ("disability_assigned", pid),
            ("unemployment_registered", pid),
        ]

    def test_a_death_sets_the_date_and_closes_the_family_membership(self, session: Session):
        head, wife = person_row(), person_row(sex="F")
        _load_persons(session, head, wife)
        _submit(
            session,
            "family_members",
            [
                member_row(head["national_id"], "F-1", "head"),
                member_row(wife["national_id"], "F-1", "spouse"),
            ],
        )
        before = len(_events(session))

        result, _ = _submit(
            session, "deaths", [{"national_id": head["national_id"], "valid_from": "2026-02-03"}]
        )

        assert result.rows_accepted == 1
        person = _person(session, head["national_id"])
        assert person.death_on == date(2026, 2, 3)
        membership = session.scalars(
            select(FamilyMember).where(FamilyMember.person_id == person.id)
        ).one()
        assert membership.until_on == date(2026, 2, 3)
        assert _events(session)[before:] == [("death", person.id), ("family_changed", person.id)]

        resent, created = _submit(
            session,
            "deaths",
            [{"national_id": head["national_id"], "valid_from": "2026-02-03"}],
            key="again",
        )
        assert created
        assert resent.rows_accepted == 1
        assert len(_events(session)) == before + 2


class TestDeaths:
    def test_a_death_before_the_birth_is_quarantined_and_the_good_rows_kept(self, session: Session):
        young, old = person_row(birth_on=date(2001, 5, 5)), person_row(birth_on=date(1940, 1, 1))
        _load_persons(session, young, old)

        result, _ = _submit(
            session,
            "deaths",
            [
                {"national_id": young["national_id"], "valid_from": "2001-05-04"},
                {"national_id": old["national_id"], "valid_from": "2026-01-20"},
            ],
        )

        assert [(r.row_number, r.field) for r in result.rejected] == [(1, "valid_from")]
        assert "before the person's birth date (2001-05-05)" in result.rejected[0].reason
        assert result.rows_accepted == 1
        assert _person(session, young["national_id"]).death_on is None
        assert _person(session, old["national_id"]).death_on == date(2026, 1, 20)
        assert _quarantine(session, result.id)[0][:2] == (1, "valid_from")


class TestFamilyMembers:
    def _family(self, session: Session) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        head = person_row(birth_on=date(1980, 1, 1))
        spouse = person_row(birth_on=date(1982, 2, 2), sex="F")
        child = person_row(birth_on=date(2010, 3, 3), sex="F")
        _load_persons(session, head, spouse, child)
        return head, spouse, child

    def test_members_land_and_a_family_is_created(self, session: Session):
        head, spouse, child = self._family(session)

        result, _ = _submit(
            session,
            "family_members",
            [
                member_row(head["national_id"], "F-1", "head", region_kato="711110000"),
                member_row(spouse["national_id"], "F-1", "spouse"),
                member_row(child["national_id"], "F-1", "child"),
            ],
        )

        assert result.rows_accepted == 3
        family = session.scalars(select(Family)).one()
        assert (family.ref, family.region_kato) == ("F-1", "711110000")
        assert _count(session, FamilyMember, FamilyMember.family_id == family.id) == 3
        changes = list(
            session.scalars(select(Event).where(Event.kind == "family_changed").order_by(Event.id))
        )
        assert [e.person_id for e in changes] == [
            _person(session, r["national_id"]).id for r in (head, spouse, child)
        ]
        assert all(e.family_id == family.id for e in changes)

    def test_child_older_than_the_head_is_quarantined(self, session: Session):
        head, _, _ = self._family(session)
        old_child = person_row(birth_on=date(1970, 1, 1))
        _load_persons(session, old_child, key="old")

        result, _ = _submit(
            session,
            "family_members",
            [
                member_row(head["national_id"], "F-1", "head"),
                member_row(old_child["national_id"], "F-1", "child"),
            ],
        )

        assert [(r.row_number, r.field) for r in result.rejected] == [(2, "national_id")]
        assert "child is older" in result.rejected[0].reason

    def test_parent_younger_than_the_head_is_quarantined(self, session: Session):
        head, _, child = self._family(session)

        result, _ = _submit(
            session,
            "family_members",
            [
                member_row(head["national_id"], "F-1", "head"),
                member_row(child["national_id"], "F-1", "parent"),
            ],
        )

        assert [(r.row_number, r.field) for r in result.rejected] == [(2, "national_id")]
        assert "parent must be older" in result.rejected[0].reason

    def test_a_person_in_two_families_at_once_is_quarantined(self, session: Session):
        head, spouse, _ = self._family(session)
        _submit(
            session, "family_members", [member_row(head["national_id"], "F-1", "head")], key="m1"
        )

        result, _ = _submit(
            session,
            "family_members",
            [
                member_row(head["national_id"], "F-2", "head"),  # still open in F-1
                member_row(spouse["national_id"], "F-3", "head"),
                member_row(spouse["national_id"], "F-4", "head"),  # open earlier in this batch
            ],
            key="m2",
        )

        assert [(r.row_number, r.field) for r in result.rejected] == [
            (1, "family_ref"),
            (3, "family_ref"),
        ]
        assert "'F-1'" in result.rejected[0].reason
        assert "until_on" in result.rejected[0].reason
        assert "'F-3'" in result.rejected[1].reason

    def test_a_row_with_until_on_closes_the_membership_so_another_can_open(self, session: Session):
        head, _, _ = self._family(session)
        nid = head["national_id"]
        _submit(session, "family_members", [member_row(nid, "F-1", "head")], key="m1")

        result, _ = _submit(
            session,
            "family_members",
            [
                member_row(nid, "F-1", "head", until_on="2024-05-01"),
                member_row(nid, "F-2", "head", from_on="2024-05-01"),
            ],
            key="m2",
        )

        assert result.rows_rejected == 0
        pid = _person(session, nid).id
        memberships = session.scalars(
            select(FamilyMember).where(FamilyMember.person_id == pid).order_by(FamilyMember.id)
        ).all()
        assert [(m.until_on is None) for m in memberships] == [False, True]
        assert memberships[0].until_on == date(2024, 5, 1)

    def test_a_membership_overlapping_another_of_the_person_is_quarantined(self, session: Session):
        head, spouse, child = self._family(session)
        h, s, c = (p["national_id"] for p in (head, spouse, child))
        _submit(
            session,
            "family_members",
            [
                member_row(h, "F-1", "head", from_on="2020-01-01", until_on="2024-06-30"),
                member_row(s, "F-1", "spouse", from_on="2021-01-01"),
            ],
            key="m1",
        )

        result, _ = _submit(
            session,
            "family_members",
            [
                # Opens while an ended membership still ran.
                member_row(h, "F-2", "head", from_on="2024-03-01"),
                # A past membership that ends inside another past one.
                member_row(h, "F-3", "head", from_on="2018-01-01", until_on="2020-02-01"),
                # A past membership that ends after the current one began.
                member_row(s, "F-5", "head", from_on="2019-01-01", until_on="2022-01-01"),
                # Good: begins the day the other ended (a move).
                member_row(h, "F-2", "head", from_on="2024-06-30"),
                member_row(c, "F-1", "child", from_on="2021-01-01"),
                # Closed in this batch, then another opened before that end.
                member_row(s, "F-1", "spouse", from_on="2021-01-01", until_on="2025-12-31"),
                member_row(s, "F-7", "head", from_on="2025-06-01"),
            ],
            key="m2",
        )

        assert [(r.row_number, r.field) for r in result.rejected] == [
            (1, "from_on"),
            (2, "until_on"),
            (3, "until_on"),
            (7, "from_on"),
        ]
        assert "'F-1' from 2020-01-01 until 2024-06-30" in result.rejected[0].reason
        assert "one family at a time" in result.rejected[0].reason
        assert "'F-1' from 2021-01-01" in result.rejected[2].reason
        assert "until 2025-12-31" in result.rejected[3].reason
        assert result.rows_accepted == 3
        quarantined = session.scalars(
            select(QuarantinedRow.row_number).where(
                QuarantinedRow.field.in_(["from_on", "until_on"])
            )
        ).all()
        assert sorted(quarantined) == [1, 2, 3, 7]
        spans = session.execute(
            select(Family.ref, FamilyMember.from_on, FamilyMember.until_on)
            .join(Family, Family.id == FamilyMember.family_id)
            .where(FamilyMember.person_id == _person(session, h).id)
            .order_by(FamilyMember.from_on)
        ).all()
        assert [tuple(r) for r in spans] == [
            ("F-1", date(2020, 1, 1), date(2024, 6, 30)),
            ("F-2", date(2024, 6, 30), None),
        ]

    def test_unknown_person_is_quarantined(self, session: Session):
        result, _ = _submit(session, "family_members", [member_row(iin(), "F-1", "head")])

        assert [(r.row_number, r.field) for r in result.rejected] == [(1, "national_id")]
        assert _count(session, Family) == 0

    def test_resending_the_rows_in_a_new_batch_changes_nothing(self, session: Session):
        head, spouse, child = self._family(session)
        rows = [
            member_row(head["national_id"], "F-1", "head"),
            member_row(spouse["national_id"], "F-1", "spouse", until_on="2022-01-01"),
            member_row(child["national_id"], "F-1", "child"),
        ]
        _submit(session, "family_members", rows, key="m1")
        members, events = _count(session, FamilyMember), len(_events(session))

        result, created = _submit(session, "family_members", rows, key="m2")

        assert created
        assert result.rows_rejected == 0
        assert (_count(session, FamilyMember), len(_events(session))) == (members, events)


class TestSubmitBatch:
    def test_resend_returns_the_original_result_and_adds_no_events(self, session: Session):
        rows = [person_row(), person_row(sex="?")]
        first, created = _submit(session, "persons", rows)
        events = _events(session)

        again, created_again = _submit(session, "persons", rows)

        assert created
        assert not created_again
        assert again == first
        assert _events(session) == events

    def test_idempotency_header_can_carry_the_key(self, session: Session):
        result, created = service.submit_batch(
            session, source="persons", rows=[person_row()], batch_key=None, idempotency_key="h-1"
        )
        assert created
        assert result.batch_key == "h-1"

    def test_rejects_a_batch_without_key_rows_or_with_too_many_rows(self, session: Session):
        with pytest.raises(InvalidBatch, match="batch_key is required"):
            service.submit_batch(session, source="persons", rows=[person_row()], batch_key=None)
        with pytest.raises(InvalidBatch, match="at least one row"):
            _submit(session, "persons", [])
        with pytest.raises(TooManyRows):
            _submit(session, "persons", [{}] * (service.MAX_API_ROWS + 1))

    def test_same_key_different_rows_is_a_conflict(self, session: Session):
        _submit(session, "persons", [person_row()])
        with pytest.raises(BatchKeyConflict):
            _submit(session, "persons", [person_row()])
