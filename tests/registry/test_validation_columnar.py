"""The column path of person validation agrees with the scalar validator.

The column path may decline a good row (the scalar validator then decides it) but must never
accept a row the scalar validator rejects, and must produce exactly its values.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from socialcard.core.db import is_sqlite
from socialcard.registry import validation_columnar as vc
from socialcard.registry.identifiers import iin_check_digit, make_iin
from socialcard.registry.ingestion import repository
from socialcard.registry.ingestion.repository import PersonLoad, prepare_persons, upsert_persons
from socialcard.registry.ingestion.sources import NUL_REASON, RawChunk, validate_chunk
from socialcard.registry.models import Person
from socialcard.registry.regions import REGIONS
from socialcard.registry.validation import RowError, validate_person

TODAY = date(2026, 11, 23)
FIELDS = (
    "national_id", "last_name", "first_name", "patronymic", "birth_on", "sex", "phone",
    "language", "region_kato", "address", "death_on",
)  # fmt: skip
NAMES = ["Ахметов", "Серикбаева", "Ким", "Нұрланұлы", "Öztürk", "Smith", "Ōta", "Ἀλέξανδρος"]
# Whitespace and look-alikes around values: ASCII, no-break, Unicode spaces, separators.
PADDING = [" ", "\t", "\n", "\u00a0", "\u2003", "\u3000", "\x1c", "\u2028", "\u200b", "\ufeff"]
# Characters a name may or may not hold: punctuation the scalar allows, digits, marks, letters
# of scripts old and new (U+0558 and U+1C89 are letters only in newer Unicode than Python's).
ODD_CHARS = [
    "-", "'", "’", ".", " ", "1", "\u0301", "\u0558", "\u1c89", "\u3042", "\U0001f600", "_",
    "ǅ", "ª", "\x00", "٣", "７",
]  # fmt: skip


def _row_tuple(table: Any, index: int) -> tuple[Any, ...]:
    return tuple(table.column(name)[index].as_py() for name in vc.PERSON_FIELDS)


def _scalar(row: dict[str, Any]) -> tuple[Any, ...] | None:
    try:
        return tuple(validate_person(row, today=TODAY))
    except RowError:
        return None


def _table(rows: list[dict[str, Any]]) -> Any:
    return pa.table(
        {name: pa.array([row.get(name) for row in rows], pa.string()) for name in FIELDS}
    )


def _check_agreement(rows: list[dict[str, Any]], table: Any | None = None) -> Any:
    """Every row the column path accepts is accepted by the scalar validator, same values."""
    table = _table(rows) if table is None else table
    result = vc.validate_persons(table, today=TODAY)
    assert len(result.accepted) == len(rows)
    assert result.rows.num_rows == int(result.accepted.sum())
    position = 0
    for index, row in enumerate(rows):
        if not result.accepted[index]:
            continue
        expected = _scalar(row)
        assert expected is not None, f"column path accepted a row the scalar rejects: {row!r}"
        assert _row_tuple(result.rows, position) == expected, row
        position += 1
    return result


# --- rows for the property ----------------------------------------------------------------


# Birth dates at and around the limits: today, tomorrow, 1900-01-01, leap days, the 1800s.
EDGE_DATES = [
    TODAY,
    TODAY + timedelta(days=1),
    date(1900, 1, 1),
    date(1899, 12, 31),
    date(2000, 2, 29),
    date(1904, 2, 29),
    date(1850, 6, 1),
    date(2099, 12, 31),
]


@st.composite
def good_rows(draw: st.DrawFn, *, any_date: bool = False) -> dict[str, Any]:
    """A row the scalar validator accepts (with `any_date`: consistent, but maybe too old or
    in the future)."""
    dates = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
    if any_date:
        dates = st.one_of(
            dates, st.sampled_from(EDGE_DATES), st.dates(date(1800, 1, 1), date(2099, 12, 31))
        )
    born = draw(dates)
    sex = draw(st.sampled_from("MF"))
    iin = None
    while iin is None:
        iin = make_iin(born, sex, draw(st.integers(0, 9999)))
    region = draw(st.sampled_from(sorted(REGIONS))) + draw(
        st.from_regex(r"[0-9]{7}", fullmatch=True)
    )
    return {
        "national_id": iin,
        "last_name": draw(st.sampled_from(NAMES)),
        "first_name": draw(st.sampled_from(NAMES)),
        "patronymic": draw(st.sampled_from([*NAMES, "", None])),
        "birth_on": born.isoformat(),
        "sex": sex,
        "phone": draw(st.sampled_from(["+77011234567", "+77770000000", "", None])),
        "language": draw(st.sampled_from(["kk", "ru", "en", "", None])),
        "region_kato": region,
        "address": draw(st.sampled_from(["ул. Абая 1, кв. 2", "Астана", "x" * 300, "", None])),
        "death_on": draw(st.sampled_from(["", None])),
    }


def _pad(draw: st.DrawFn, value: str) -> str:
    pad = draw(st.sampled_from(PADDING))
    return draw(st.sampled_from([pad + value, value + pad, pad + value + pad]))


def _mutate_iin(draw: st.DrawFn, value: str) -> Any:
    kind = draw(st.integers(0, 8))
    position = draw(st.integers(0, 11))
    if kind == 0:  # another digit somewhere (check digit, date, century)
        digit = draw(st.sampled_from("0123456789"))
        return value[:position] + digit + value[position + 1 :]
    if kind == 1:
        return _pad(draw, value)
    if kind == 2:
        return value[: draw(st.integers(0, 11))]
    if kind == 3:
        return value + draw(st.sampled_from("0123456789"))
    if kind == 4:  # a non-ASCII digit
        return value[:position] + draw(st.sampled_from("٣７५")) + value[position + 1 :]
    if kind == 5:  # an impossible date: month 00 or 13, day 00 or 32
        part = draw(st.sampled_from(["00", "13", "32"]))
        at = draw(st.sampled_from([2, 4]))
        return value[:at] + part + value[at + 2 :]
    if kind == 6:  # century digit 0, 1, 2, 7, 8 or 9
        return value[:6] + draw(st.sampled_from("012789")) + value[7:]
    return draw(st.sampled_from(["", None]))


def _mutate_name(draw: st.DrawFn, value: str | None) -> Any:
    base = value or "Ахметов"
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return _pad(draw, base)
    if kind == 1:
        at = draw(st.integers(0, len(base)))
        return base[:at] + draw(st.sampled_from(ODD_CHARS)) + base[at:]
    if kind == 2:
        return draw(st.sampled_from(["a" * 100, "a" * 101, "Я" * 100, "Я" * 101]))
    if kind == 3:
        return draw(st.text(max_size=6))
    if kind == 4:
        return draw(st.sampled_from(["", None, " ", "\u3000"]))
    return draw(st.sampled_from(ODD_CHARS))


def _mutate_date(draw: st.DrawFn, value: str, iin: str) -> Any:
    try:
        born = date.fromisoformat(value)
    except ValueError:  # the impossible dates drawn by person_rows
        born = date(1990, 2, 28)
    return draw(
        st.sampled_from(
            [
                value.replace("-", ""),
                value.replace("-", "/"),
                f"{born.year}-{born.month}-{born.day}",
                " " + value,
                value + "\n",
                (born + timedelta(days=1)).isoformat(),
                (born - timedelta(days=366)).isoformat(),
                "2099-01-01",
                "1899-12-31",
                f"18{iin[:2]}-{iin[2:4]}-{iin[4:6]}",
                "",
                None,
                "1990-02-30",
                "+1990-02-15",
                "１９９０-０２-１５",
            ]
        )
    )


MUTATIONS: dict[str, Any] = {
    "sex": ["m", "f", " M", "F ", "MF", "X", "", None, "М"],  # the last is Cyrillic Em
    "phone": [
        "87011234567",
        "8 701 123 45 67",
        "+7 701 123 45 67",
        "77011234567",
        "7011234567",
        "+7701123456",
        "+770112345678",
        "+8701123456",
        " +77011234567",
        "+7７０１１２３４５６７",
        "+7٣٣٣٣٣٣٣٣٣٣",
        "12345",
        "+77011234567\u00a0",
        "x" * 21,
        "",
    ],
    "language": ["KK", "de", " ru", "kk ", "kkk", "k", "\u3000", " "],
    "region_kato": [
        "990000000",
        "75111000",
        "7511100000",
        " 751110000",
        "75111000٣",
        "７51110000",
        "",
        None,
        "75 1110000",
    ],
    "death_on": ["2000-01-01", "1900-01-01", "2099-01-01", " ", "x", "2010-13-01"],
}


@st.composite
def person_rows(draw: st.DrawFn) -> dict[str, Any]:
    row = draw(good_rows(any_date=True))
    if draw(st.integers(0, 9)) == 0:
        # A ИИН with a good check digit for an impossible date, and that date as birth_on.
        yymmdd = draw(st.sampled_from(["900229", "000229", "010229", "000431", "991301", "990100"]))
        century = draw(st.sampled_from("3456"))
        first = yymmdd + century + row["national_id"][7:11]
        check = iin_check_digit(first)
        if check is not None:
            row["national_id"] = f"{first}{check}"
            year = ("19" if century in "34" else "20") + yymmdd[:2]
            row["birth_on"] = f"{year}-{yymmdd[2:4]}-{yymmdd[4:]}"
            row["sex"] = "M" if century in "35" else "F"
    original = dict(row)
    for field in draw(st.sets(st.sampled_from(FIELDS), max_size=3)):
        value = row[field]
        if field == "national_id":
            row[field] = _mutate_iin(draw, value)
        elif field in ("last_name", "first_name", "patronymic"):
            row[field] = _mutate_name(draw, value)
        elif field == "birth_on":
            row[field] = _mutate_date(draw, value, original["national_id"])
        elif field == "address":
            row[field] = draw(
                st.one_of(
                    st.text(max_size=5),
                    st.sampled_from(["x" * 301, "я" * 300, "", None]),
                    st.builds(lambda v, d: _pad(d, v), st.just("Алматы"), st.just(draw)),
                )
            )
        elif draw(st.booleans()):
            row[field] = draw(st.sampled_from(MUTATIONS[field]))
        else:
            row[field] = draw(st.one_of(st.none(), st.text(max_size=13)))
    return row


@pytest.mark.slow
class TestAgreesWithTheScalarValidator:
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(person_rows(), min_size=1, max_size=20))
    def test_accepted_rows_are_accepted_by_the_scalar_with_the_same_values(
        self, rows: list[dict[str, Any]]
    ) -> None:
        _check_agreement(rows)

    @settings(max_examples=100, deadline=None)
    @given(st.lists(good_rows(), min_size=1, max_size=10))
    def test_good_rows_in_the_usual_shape_take_the_column_path(
        self, rows: list[dict[str, Any]]
    ) -> None:
        result = _check_agreement(rows)
        assert result.accepted.all()

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.fixed_dictionaries(
                {name: st.one_of(st.none(), st.text(max_size=14)) for name in FIELDS}
            ),
            min_size=1,
            max_size=10,
        )
    )
    def test_arbitrary_text_is_never_accepted_wrongly(self, rows: list[dict[str, Any]]) -> None:
        _check_agreement(rows)


class TestColumnShapes:
    def test_a_mixed_table(self) -> None:
        good = {
            "national_id": "900215300027",
            "last_name": "Ахметов",
            "first_name": "Ерлан",
            "patronymic": "",
            "birth_on": "1990-02-15",
            "sex": "M",
            "phone": "+77011234567",
            "language": "",
            "region_kato": "751110000",
            "address": "Алматы, ул. Абая 1",
            "death_on": "",
        }
        rows = [
            good,
            {**good, "national_id": "900215300028"},  # check digit
            {**good, "phone": "8 701 123 45 67"},  # good, but normalised by the scalar
            {**good, "last_name": "Ахметов-Ким"},  # good, punctuation: scalar
            {**good, "last_name": " Ахметов"},  # good after strip: scalar
            {**good, "sex": "F"},  # does not match the ИИН
            {**good, "birth_on": "1990-02-16"},  # does not match the ИИН
            {**good, "region_kato": "990000000"},  # unknown region
            {**good, "death_on": "2020-01-01"},  # good, but a death date: scalar
            {**good, "patronymic": "Бекұлы", "language": "ru", "address": None, "phone": None},
        ]
        result = _check_agreement(rows)
        assert result.accepted.tolist() == [
            True, False, False, False, False, False, False, False, False, True,
        ]  # fmt: skip
        first, last = _row_tuple(result.rows, 0), _row_tuple(result.rows, 1)
        assert first == (
            "900215300027", "KZ", "Ахметов", "Ерлан", None, date(1990, 2, 15), "M",
            "+77011234567", "kk", "751110000", "Алматы, ул. Абая 1", None,
        )  # fmt: skip
        assert last[4] == "Бекұлы"
        assert last[7:11] == (None, "ru", "751110000", None)

    def test_missing_optional_columns_and_parquet_types(self) -> None:
        born = date(1985, 3, 10)
        iins = [make_iin(born, "F", serial) for serial in range(1, 40)]
        iin = next(value for value in iins if value is not None)
        table = pa.table(
            {
                "national_id": pa.array([iin, iin]).dictionary_encode(),
                "last_name": ["Ахметова", "Ахметова"],
                "first_name": ["Айгуль", "Айгуль"],
                "birth_on": pa.array([born, born + timedelta(days=1)], pa.date32()),
                "sex": ["F", "F"],
                "region_kato": ["751110000", "751110000"],
                "death_on": pa.nulls(2, pa.date32()),
            }
        )
        result = vc.validate_persons(table, today=TODAY)
        assert result.accepted.tolist() == [True, False]
        expected = validate_person(
            {"national_id": iin, "last_name": "Ахметова", "first_name": "Айгуль",
             "birth_on": born, "sex": "F", "region_kato": "751110000"},
            today=TODAY,
        )  # fmt: skip
        assert _row_tuple(result.rows, 0) == tuple(expected)

    def test_other_countries_and_unknown_types_go_to_the_scalar_validator(self) -> None:
        table = _table([{"national_id": "900215300027", "birth_on": "1990-02-15"}])
        assert not vc.validate_persons(table, today=TODAY, country="RU").accepted.any()
        odd = table.set_column(0, "national_id", pa.array([900215300027], pa.int64()))
        assert not vc.validate_persons(odd, today=TODAY).accepted.any()

    def test_every_character_at_either_end_of_an_address(self) -> None:
        chars = [chr(c) for c in range(1, sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
        for values in ([f"{c}x" for c in chars], [f"x{c}" for c in chars], chars):
            text = vc._Text(pa.array(values))
            kept = vc._unpadded(text)
            for value, ok in zip(values, kept.tolist(), strict=True):
                if ok:
                    assert value.strip() == value, repr(value)
        # The usual shapes are decided on their bytes, without the regex.
        usual = vc._Text(pa.array(["ул. Абая 1, кв. 2", "Астана", "7 Main St.", "Öz", "Ж"]))
        assert vc._plain_edges(usual).all()

    def test_every_character_in_a_name(self) -> None:
        chars = [chr(c) for c in range(1, sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
        for values in (chars, [f"Ab{c}" for c in chars]):
            accepted = vc._name_ok(vc._Text(pa.array(values)))
            for value, ok in zip(values, accepted.tolist(), strict=True):
                if ok:
                    assert value.isalpha(), repr(value)
                    assert value.strip() == value, repr(value)
        # Two-byte characters one lead byte at a time: a column's bytes decide whether the
        # (slower) check for characters pyarrow and Python disagree on is needed.
        for lead in range(0xC2, 0xE0):
            chars = [chr(((lead & 0x1F) << 6) | low) for low in range(64)]
            for values in (chars, [f"Ab{c}" for c in chars]):
                accepted = vc._name_ok(vc._Text(pa.array(values)))
                for value, ok in zip(values, accepted.tolist(), strict=True):
                    if ok:
                        assert value.isalpha(), repr(value)
        assert vc._name_ok(
            vc._Text(pa.array(["Ахметов", "Нұрланұлы", "Öztürk", "Ἀλέξανδρος"]))
        ).all()

    def test_tuples_round_trip_and_the_later_row_wins_when_prepared(self) -> None:
        row = tuple(validate_person(
            {"national_id": "900215300027", "last_name": "Ахметов", "first_name": "Ерлан",
             "birth_on": "1990-02-15", "sex": "M", "region_kato": "751110000"},
            today=TODAY,
        ))  # fmt: skip
        other = (*row[:2], "Иванов", *row[3:])
        first = ("900215300037", *row[1:])
        table = vc.person_table([2, 3, 5, 7], [row, first, other, row])
        assert vc.person_tuples(table) == [(2, row), (3, first), (5, other), (7, row)]
        load = prepare_persons(table, now=datetime.now(UTC), postgres=True)
        assert load.rows.column("row_number").to_pylist() == [7, 3]
        assert vc.person_tuples(load.rows) == [(7, row), (3, first)]
        assert load.binary_rows is not None


class TestValidateChunk:
    def test_same_outcome_as_row_by_row(self) -> None:
        good = {
            "national_id": "900215300027", "last_name": "Ахметов", "first_name": "Ерлан",
            "patronymic": "", "birth_on": "1990-02-15", "sex": "M", "phone": "",
            "language": "kk", "region_kato": "751110000", "address": "", "death_on": "",
        }  # fmt: skip
        rows = [
            good,
            dict.fromkeys(FIELDS, ""),  # a blank line: skipped
            {**good, "address": "a\x00b"},  # NUL: rejected before validation
            {**good, "national_id": "900215300037", "phone": "8 701 123 45 67"},
            {**good, "national_id": "900215300028"},
            {**good, "last_name": "Ахметов\x00"},
            {**good, "national_id": "900215300047", "first_name": "Ер-лан"},
        ]
        numbers = [10, 11, 12, 13, 14, 15, 16]
        chunk = RawChunk(numbers, None, None, _table(rows), [], check_types=False)
        validated = validate_chunk("persons", chunk, TODAY, "KZ")
        assert validated.valid == []
        assert validated.accepted == 3
        expected_valid = []
        expected_rejects = []
        for number, row in zip(numbers, rows, strict=True):
            if all(value == "" for value in row.values()):
                continue
            nul = next((name for name in FIELDS if "\x00" in (row[name] or "")), None)
            if nul is not None:
                expected_rejects.append((number, nul, NUL_REASON))
                continue
            try:
                expected_valid.append((number, tuple(validate_person(row, today=TODAY))))
            except RowError as exc:
                expected_rejects.append((number, exc.field, exc.reason))
        assert validated.valid_rows() == expected_valid
        assert [(r.row_number, r.field, r.reason) for r in validated.rejects] == expected_rejects

    @pytest.mark.parametrize("country", ["KZ", "RU"])
    def test_rows_sent_as_dicts_keep_the_row_path(self, country: str) -> None:
        rows = [{"national_id": "900215300027", "last_name": "Ахметов"}]
        chunk = RawChunk([1], rows, None, None, [], check_types=True)
        validated = validate_chunk("persons", chunk, TODAY, country)
        assert validated.persons is None
        assert validated.accepted == 0
        assert len(validated.rejects) == 1


class TestPersonWrites:
    """The person write path: the insert-only COPY and its fall back to the upsert."""

    @staticmethod
    def _load(session: Session, rows: list[tuple[Any, ...]], now: datetime) -> PersonLoad:
        table = vc.person_table(list(range(2, 2 + len(rows))), rows)
        return prepare_persons(table, now=now, postgres=not is_sqlite(session))

    @staticmethod
    def _row(national_id: str, **changes: Any) -> tuple[Any, ...]:
        base = {
            "national_id": national_id, "last_name": "Ахметов", "first_name": "Ерлан",
            "birth_on": "1990-02-15", "sex": "M", "region_kato": "751110000",
            "phone": "+77011234567",
        }  # fmt: skip
        return tuple(validate_person({**base, **changes}, today=TODAY))

    def test_new_persons_then_a_chunk_that_meets_known_ones(
        self, session: Session, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        first_now = datetime(2026, 1, 1, tzinfo=UTC)
        later_now = datetime(2026, 2, 1, tzinfo=UTC)
        known, other, new = "900215300027", "900215300037", "900215300047"
        load = self._load(session, [self._row(known), self._row(other)], first_now)
        assert upsert_persons(session, load, insert_first=True) is False
        # The sample misses the known person: the insert-only COPY meets it and is undone.
        monkeypatch.setattr(repository, "_any_known", lambda raw, ids: False)
        rows = [self._row(known, last_name="Akhmetov", phone=""), self._row(new)]
        met_known = upsert_persons(session, self._load(session, rows, later_now), insert_first=True)
        assert met_known is not is_sqlite(session)  # SQLite always takes the upsert
        stored = {
            p.national_id: p for p in session.scalars(select(Person).order_by(Person.national_id))
        }
        assert sorted(stored) == [known, other, new]
        assert stored[known].last_name == "Akhmetov"
        assert stored[known].phone == "+77011234567"  # an absent phone keeps the stored one
        assert stored[known].created_at == first_now
        assert stored[known].updated_at == later_now
        assert stored[other].updated_at == first_now
        assert stored[new].created_at == later_now

    def test_a_sample_that_finds_known_persons_goes_straight_to_the_upsert(
        self, session: Session
    ) -> None:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        upsert_persons(session, self._load(session, [self._row("900215300027")], now))
        again = self._load(session, [self._row("900215300027", first_name="Ерболат")], now)
        assert upsert_persons(session, again, insert_first=True) is not is_sqlite(session)
        person = session.scalars(select(Person)).one()
        assert person.first_name == "Ерболат"

    def test_without_binary_copy_the_rows_take_the_text_path(
        self, session: Session, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A PostgreSQL connection whose client encoding is not UTF-8 (and SQLite) gets tuples.
        monkeypatch.setattr(repository, "_is_utf8_postgres", lambda session, raw: False)
        now = datetime(2026, 1, 1, tzinfo=UTC)
        row = self._row("900215300027", patronymic="Бекұлы", address="Алматы")
        assert upsert_persons(session, self._load(session, [row], now), insert_first=True) is False
        person = session.scalars(select(Person)).one()
        stored = tuple(getattr(person, name) for name in vc.PERSON_FIELDS)
        assert stored == row
        assert person.created_at == now
