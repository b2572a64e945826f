"""The population generator without a store: realism, determinism, ИИН serials, row checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, date, datetime, time

import numpy as np
import pytest

from socialcard.core.clock import travel_to
from socialcard.registry.identifiers import iin_check_digit, make_iin, validate_iin
from socialcard.registry.population.errors import GenerationError
from socialcard.registry.population.generator import (
    NONE_DAY,
    NONE_INT,
    Digest,
    Tables,
    age_years,
)
from socialcard.registry.population.identity import SerialAllocator
from socialcard.registry.population.loader import iter_tables
from socialcard.registry.validation_columnar import check_scalar, check_vectorised

AS_OF = date(2025, 6, 30)
TODAY = date(2025, 7, 1)


def _tables(families: int, seed: int = 11, batch_size: int = 100_000) -> Tables:
    return Tables.concat(
        list(iter_tables(families=families, seed=seed, as_of=AS_OF, batch_size=batch_size))
    )


def _digest(families: int, seed: int, batch_size: int = 50_000) -> str:
    digest = Digest()
    for tables in iter_tables(families=families, seed=seed, as_of=AS_OF, batch_size=batch_size):
        digest.update(tables)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def population() -> Tables:
    return _tables(2000)


class TestRealism:
    def test_family_sizes_are_1_to_10(self, population: Tables) -> None:
        sizes = np.bincount(population.member_family, minlength=population.families)
        assert sizes.min() >= 1
        assert sizes.max() <= 10
        assert 3.0 <= sizes.mean() <= 3.7

    def test_share_of_families_with_four_or_more_minors_is_plausible(
        self, population: Tables
    ) -> None:
        alive = population.death_on == NONE_DAY
        minor = (age_years(population.birth_on, AS_OF) < 18) & alive
        minors = np.bincount(population.member_family, weights=minor, minlength=population.families)
        assert 0.04 <= (minors >= 4).mean() <= 0.09

    def test_share_of_families_without_income_is_plausible(self, population: Tables) -> None:
        earning = np.zeros(population.persons, dtype=bool)
        earning[population.fact_person[population.fact_kind == "income"]] = True
        per_family = np.bincount(
            population.member_family, weights=earning, minlength=population.families
        )
        assert 0.07 <= (per_family == 0).mean() <= 0.17

    def test_about_four_percent_have_a_disability(self, population: Tables) -> None:
        share = len(set(population.fact_person[population.fact_kind == "disability"].tolist()))
        assert 0.025 <= share / population.persons <= 0.06

    def test_pensions_go_to_people_past_retirement_age(self, population: Tables) -> None:
        pensioners = population.fact_person[population.fact_kind == "pension"]
        years = age_years(population.birth_on[pensioners], AS_OF)
        women = population.sex[pensioners] == "F"
        # Men at 63, women at 61, mothers of five or more at 53.
        assert (years[~women] >= 63).all()
        assert (years[women] >= 53).all()
        assert (population.fact_quantity[population.fact_kind == "pension"] != NONE_INT).all()

    def test_wages_are_skewed_and_in_tiyn(self, population: Tables) -> None:
        wages = population.fact_amount[population.fact_detail == "wages"]
        assert (wages % 100 == 0).all()
        assert np.mean(wages) > np.median(wages)  # a long right tail
        assert 150_000_00 <= np.median(wages) <= 350_000_00

    def test_every_kind_of_fact_appears(self, population: Tables) -> None:
        kinds = set(population.fact_kind.tolist())
        assert kinds >= {"income", "pension", "disability", "study", "property", "loan", "birth"}
        details = set(population.fact_detail.tolist())
        assert {"school", "university", "consumer", "mortgage", "kumis_alka"} <= details

    def test_names_are_kazakh_and_russian(self, population: Tables) -> None:
        surnames = set(population.last_name.tolist())
        assert surnames & {"Ахметов", "Ахметова", "Жумабаев", "Жумабаева", "Оспанов", "Оспанова"}
        assert surnames & {"Иванов", "Иванова", "Смирнов", "Смирнова", "Попов", "Попова"}
        assert set(population.language.tolist()) == {"kk", "ru", "en"}

    def test_births_are_within_the_last_year(self, population: Tables) -> None:
        births = population.fact_kind == "birth"
        as_of = (AS_OF - date(1970, 1, 1)).days
        assert (population.fact_valid_from[births] > as_of - 366).all()


class TestDeterminism:
    def test_same_seed_and_count_give_the_same_rows(self) -> None:
        assert _digest(1200, seed=5) == _digest(1200, seed=5)

    def test_another_seed_gives_other_rows(self) -> None:
        assert _digest(1200, seed=5) != _digest(1200, seed=6)

    def test_the_chunk_size_does_not_change_the_rows(self) -> None:
        assert _digest(6100, seed=5, batch_size=50_000) == _digest(6100, seed=5, batch_size=777)


class TestSerialAllocator:
    def test_serials_start_above_the_highest_in_the_store(self) -> None:
        born = date(1990, 5, 17)
        taken = make_iin(born, "M", 40)
        assert taken is not None
        allocator = SerialAllocator([(taken[:7], 40)])
        days = np.full(3, (born - date(1970, 1, 1)).days, dtype=np.int64)
        ids = allocator.assign(days, np.zeros(3, dtype=bool))
        assert all(int(i[7:11]) > 40 for i in ids)
        assert len(set(ids)) == 3
        for value in ids:
            assert validate_iin(value).birth_on == born

    def test_a_full_date_falls_back_to_free_serials_below(self) -> None:
        born = date(1990, 5, 17)
        prefix = (make_iin(born, "F", 0) or "")[:7]
        used = {0, 1, 2, 9990}
        allocator = SerialAllocator([(prefix, 9990)], used_serials=lambda _: used)
        days = np.full(8, (born - date(1970, 1, 1)).days, dtype=np.int64)
        ids = allocator.assign(days, np.ones(8, dtype=bool))
        serials = [int(i[7:11]) for i in ids]
        assert len(set(ids)) == 8
        assert not set(serials) & used
        assert all(validate_iin(i).sex == "F" for i in ids)

    def test_an_exhausted_date_fails_clearly(self) -> None:
        allocator = SerialAllocator()
        days = np.full(5001, 7000, dtype=np.int64)
        with pytest.raises(GenerationError, match="no free ИИН serial"):
            allocator.assign(days, np.zeros(5001, dtype=bool))


Mutation = Callable[[Tables], tuple[str, int]]


def _set(column: str, row: int, value: object) -> Mutation:
    def mutate(tables: Tables) -> tuple[str, int]:
        getattr(tables, column)[row] = value
        table = "fact" if column.startswith("fact_") else "person"
        if column in ("role", "from_on", "until_on"):
            table = "member"
        return table, row

    return mutate


def _first(tables: Tables, mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _child_older_than_head(tables: Tables) -> tuple[str, int]:
    child = _first(tables, tables.role == "child")
    head = _first(
        tables, (tables.role == "head") & (tables.member_family == tables.member_family[child])
    )
    # Same birth date as the head (and a matching ИИН, so only the family rule breaks).
    tables.birth_on[child] = tables.birth_on[head]
    number = tables.national_id[head][:7] + "9999"
    check = iin_check_digit(number)
    if check is None:  # 9999 has no check digit for this date: 9998 then has one
        number = number[:10] + "8"
        check = iin_check_digit(number)
    assert check is not None
    tables.national_id[child] = number + str(check)
    return "member", child


def _duplicate_person(tables: Tables) -> tuple[str, int]:
    tables.national_id[5] = tables.national_id[4]
    return "member", 5


def _duplicate_fact(tables: Tables) -> tuple[str, int]:
    for column in ("fact_person", "fact_kind", "fact_detail", "fact_source", "fact_valid_from"):
        getattr(tables, column)[4] = getattr(tables, column)[3]
    return "fact", 4


def _copy(tables: Tables) -> Tables:
    return Tables(**{f.name: getattr(tables, f.name).copy() for f in dataclasses.fields(tables)})


class TestRowChecks:
    """The vectorised checks and the importers' own validators reach the same verdicts."""

    def test_generated_rows_pass_both(self) -> None:
        tables = _tables(300, seed=3)
        assert check_vectorised(tables, today=TODAY) == []
        assert check_scalar(tables, today=TODAY) == []

    @pytest.mark.parametrize(
        "as_of", [date(2026, 12, 1), date(2026, 12, 7), date(2027, 2, 28), date(2028, 2, 29)]
    )
    def test_rows_of_any_day_of_a_month_pass(self, as_of: date) -> None:
        # Monthly facts (contributions from a job's first whole month, job losses this month)
        # must never begin after the reference day, whichever day of the month it is.
        with travel_to(datetime.combine(as_of, time(12), tzinfo=UTC), frozen=True):
            tables = Tables.concat(
                list(iter_tables(families=2_000, seed=1, region="750000000", as_of=as_of))
            )
        assert check_vectorised(tables, today=as_of) == []

    @pytest.mark.parametrize(
        "mutate",
        [
            _set("national_id", 3, "12345678901"),
            _set("national_id", 4, "900215300028"),  # wrong check digit
            _set("birth_on", 5, (date(1950, 1, 1) - date(1970, 1, 1)).days),
            _set("sex", 6, "X"),
            _set("last_name", 7, "Ива4нов"),
            _set("first_name", 8, " Иван"),
            _set("first_name", 9, None),
            _set("patronymic", 10, ""),
            _set("phone", 11, "8 701 123"),
            _set("phone", 12, "+7701 234 5678"),
            _set("language", 12, "de"),
            _set("region_kato", 13, "990000000"),
            _set("address", 14, "x" * 301),
            _set("death_on", 15, (date(1800, 1, 1) - date(1970, 1, 1)).days),
            _set("death_on", 16, (date(2030, 1, 1) - date(1970, 1, 1)).days),
            _set("role", 17, "cousin"),
            _set("from_on", 18, (date(2030, 1, 1) - date(1970, 1, 1)).days),
            _set("until_on", 19, (date(1901, 1, 1) - date(1970, 1, 1)).days),
            _set("fact_detail", 3, "lottery"),
            _set("fact_qualifier", 4, "sometimes"),
            _set("fact_valid_from", 5, (date(2030, 1, 1) - date(1970, 1, 1)).days),
            _set("fact_valid_until", 6, (date(1901, 1, 1) - date(1970, 1, 1)).days),
            _set("fact_kind", 7, "horoscope"),
            _set("fact_source", 8, ""),
            _child_older_than_head,
            _duplicate_person,
            _duplicate_fact,
        ],
    )
    def test_a_broken_row_is_caught_by_both(self, mutate: Mutation) -> None:
        tables = _copy(_tables(40, seed=3))
        table, row = mutate(tables)
        vector = {(p.table, p.row) for p in check_vectorised(tables, today=TODAY)}
        scalar = {(p.table, p.row) for p in check_scalar(tables, today=TODAY)}
        assert (table, row) in vector
        assert vector == scalar

    def test_an_odd_value_the_validators_accept_passes_both(self) -> None:
        # normalize_phone keeps a number written in other Unicode digits as it is.
        tables = _copy(_tables(40, seed=3))
        tables.phone[13] = "+7٠١٢٣٤٥٦٧٨٩"
        assert check_vectorised(tables, today=TODAY) == []
        assert check_scalar(tables, today=TODAY) == []

    @pytest.mark.parametrize(
        ("kind", "column", "value"),
        [
            ("income", "fact_amount", NONE_INT),
            ("income", "fact_amount", -5),
            ("loan", "fact_amount", 10**14),
            ("pension", "fact_quantity", NONE_INT),
            ("property", "fact_quantity", 101),
        ],
    )
    def test_amounts_and_quantities_are_checked_alike(
        self, kind: str, column: str, value: int
    ) -> None:
        tables = _copy(_tables(60, seed=4))
        row = _first(tables, tables.fact_kind == kind)
        getattr(tables, column)[row] = value
        vector = {(p.table, p.row) for p in check_vectorised(tables, today=TODAY)}
        scalar = {(p.table, p.row) for p in check_scalar(tables, today=TODAY)}
        assert vector == scalar == {("fact", row)}
