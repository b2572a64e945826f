"""The declared sources an agency may send, and the per-row validation of a chunk of their rows.

Each source is data: its fields (name, type, required), what the rows become (persons, family
memberships or facts of one kind) and the agency that usually sends it. `validate_chunk` is a
top-level, picklable function so chunks can be validated in worker processes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np

from socialcard.registry import validation, validation_columnar
from socialcard.registry.enums import DISABILITY_CAUSES, FACT_DETAILS, FactKind
from socialcard.registry.validation import RowError

# Row-level problems that are about the row as a whole rather than one column.
ROW_FIELD = "(row)"
# Neither store keeps a NUL character in text (PostgreSQL refuses it outright).
NUL_REASON = "contains a NUL character"
MAX_RAW_CHARS = 20_000
MAX_REASON_CHARS = 300
MAX_FIELD_CHARS = 60


class SourceKind(StrEnum):
    """What the rows of a source become."""

    PERSON = "person"
    MEMBER = "member"
    FACT = "fact"
    LINK = "link"


class FieldType(StrEnum):
    """The declared type of a column (CSV cells are text and are parsed by the validators)."""

    STRING = "string"
    DATE = "date"
    INTEGER = "integer"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One declared column of a source."""

    name: str
    type: FieldType
    required: bool
    description: str


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A declared source: its columns, what its rows become and its usual agency."""

    name: str
    kind: SourceKind
    default_agency: str
    description: str
    fields: tuple[FieldSpec, ...]
    fact_kind: FactKind | None = None
    field_names: frozenset[str] = field(init=False)
    required_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_names", frozenset(f.name for f in self.fields))
        object.__setattr__(self, "required_names", tuple(f.name for f in self.fields if f.required))


def _f(name: str, type_: FieldType, required: bool, description: str) -> FieldSpec:
    return FieldSpec(name, type_, required, description)


S, D, INT = FieldType.STRING, FieldType.DATE, FieldType.INTEGER
_NATIONAL_ID = _f("national_id", S, True, "national identifier (ИИН), checked with its check digit")

PERSON_FIELDS = (
    _NATIONAL_ID,
    _f("last_name", S, True, "family name"),
    _f("first_name", S, True, "given name"),
    _f("patronymic", S, False, "patronymic, if any"),
    _f("birth_on", D, True, "birth date YYYY-MM-DD; must match the ИИН"),
    _f("sex", S, True, "M or F; must match the ИИН"),
    _f("phone", S, False, "mobile number, +7 and 10 digits"),
    _f("language", S, False, "kk, ru or en (default kk)"),
    _f("region_kato", S, True, "9-digit KATO code of the place of residence"),
    _f("address", S, False, "postal address"),
    _f("death_on", D, False, "death date, if deceased"),
)

MEMBER_FIELDS = (
    _f("family_ref", S, True, "the civil registry's household key"),
    _f("region_kato", S, True, "9-digit KATO code of the household"),
    _NATIONAL_ID,
    _f("role", S, True, "head, spouse, child, parent or other"),
    _f("from_on", D, True, "date the membership began"),
    _f("until_on", D, False, "date it ended; a row with until_on closes the membership"),
)


def _fact_fields(kind: FactKind) -> tuple[FieldSpec, ...]:
    """The columns of a fact source: only those that mean something for the kind."""
    single_detail = len(FACT_DETAILS[kind]) == 1
    details = ", ".join(sorted(FACT_DETAILS[kind]))
    fields = [
        _NATIONAL_ID,
        _f("detail", S, not single_detail, f"one of: {details}"),
    ]
    if kind is FactKind.DISABILITY:
        fields.append(_f("qualifier", S, False, "cause: " + ", ".join(sorted(DISABILITY_CAUSES))))
    if kind is FactKind.STUDY:
        fields.append(_f("qualifier", S, False, "mode: full_time or part_time"))
    if kind is FactKind.SOCIAL_INSURANCE:
        fields.append(_f("amount_minor", INT, True, "contribution paid for the month, in tiyn"))
    if kind in (FactKind.INCOME, FactKind.LOAN):
        what = "monthly income" if kind is FactKind.INCOME else "outstanding principal"
        fields.append(_f("amount_minor", INT, True, f"{what} in tiyn (integer)"))
    if kind is FactKind.PROPERTY:
        fields.append(_f("amount_minor", INT, False, "assessed value in tiyn (integer)"))
    if kind in (FactKind.PENSION, FactKind.PROPERTY):
        what = "years of participation" if kind is FactKind.PENSION else "number of objects"
        fields.append(_f("quantity", INT, True, what))
    fields += [
        _f("valid_from", D, True, "date the fact holds from"),
        _f("valid_until", D, False, "date it holds until (open if empty)"),
    ]
    return tuple(fields)


def _fact_source(name: str, kind: FactKind, agency: str, description: str) -> SourceSpec:
    fields = _fact_fields(kind)
    if kind is FactKind.BIRTH:
        # A birth registers the child's mother and father (they must be known persons).
        fields += (
            _f("mother_national_id", S, True, "the mother's national identifier (ИИН)"),
            _f("father_national_id", S, False, "the father's national identifier, if registered"),
        )
    return SourceSpec(name, SourceKind.FACT, agency, description, fields, kind)


LINK_FIELDS = (
    _f("national_id", S, True, "the child's national identifier (ИИН)"),
    _f("parent_national_id", S, True, "the parent's or guardian's national identifier"),
    _f(
        "relation",
        S,
        True,
        "mother, father, adoptive_mother, adoptive_father or guardian",
    ),
    _f("valid_from", D, True, "date the link holds from (birth, adoption, appointment)"),
    _f("valid_until", D, False, "date it ended (adoption annulled, guardianship ended)"),
)


SOURCES: dict[str, SourceSpec] = {
    spec.name: spec
    for spec in (
        SourceSpec(
            "persons",
            SourceKind.PERSON,
            "civil_registry",
            "persons, upserted on national_id",
            PERSON_FIELDS,
        ),
        SourceSpec(
            "family_members",
            SourceKind.MEMBER,
            "civil_registry",
            "family memberships with roles; until_on closes one",
            MEMBER_FIELDS,
        ),
        _fact_source("incomes", FactKind.INCOME, "sgd", "monthly incomes"),
        _fact_source("unemployment", FactKind.UNEMPLOYMENT, "enbek", "registration as unemployed"),
        _fact_source("disability", FactKind.DISABILITY, "msek", "disability groups"),
        _fact_source("study", FactKind.STUDY, "edu", "enrolment in education"),
        _fact_source("awards", FactKind.AWARD, "awards", "state awards (e.g. Altyn Alka)"),
        _fact_source("pensions", FactKind.PENSION, "enpf", "retirement pensions"),
        _fact_source("property", FactKind.PROPERTY, "property_registry", "real estate, vehicles"),
        _fact_source("loans", FactKind.LOAN, "credit_bureau", "outstanding loans"),
        _fact_source(
            "births", FactKind.BIRTH, "civil_registry", "registered births with the parents"
        ),
        SourceSpec(
            "parent_links",
            SourceKind.LINK,
            "civil_registry",
            "parent-child links: births, adoptions and guardianships",
            LINK_FIELDS,
        ),
        _fact_source("deaths", FactKind.DEATH, "civil_registry", "registered deaths"),
        _fact_source(
            "social_insurance",
            FactKind.SOCIAL_INSURANCE,
            "gfss",
            "social insurance contributions, one row per person and month paid",
        ),
    )
}


class Reject(NamedTuple):
    """A rejected row, ready for the quarantine."""

    row_number: int
    field: str
    reason: str
    raw: str


class RawChunk(NamedTuple):
    """Rows as read, before validation: dict rows, JSON text lines or an Arrow table.

    `row_numbers[i]` is the number of the i-th row (line number for CSV and JSON Lines).
    `rejects` are rows the reader itself could not parse (wrong column count, bad JSON).
    """

    row_numbers: Sequence[int]
    rows: Sequence[Mapping[str, Any]] | None
    lines: Sequence[bytes] | None
    table: Any  # pyarrow.Table | None; typed loosely because pyarrow has no type stubs
    rejects: list[Reject]
    check_types: bool


class ValidatedChunk(NamedTuple):
    """The outcome of validating a chunk: typed rows (with their number) and rejects.

    Person rows read from a file come as columns instead: `persons` is then a pyarrow table
    (validation_columnar.PERSON_SCHEMA: row number and PersonRow fields, in row order) and
    `valid` is empty, so no Python object is built per row on the way to the store.
    """

    valid: list[tuple[int, tuple[Any, ...]]]
    rejects: list[Reject]
    seconds: float
    persons: Any = None  # pyarrow.Table | None

    @property
    def accepted(self) -> int:
        """How many rows passed validation."""
        return len(self.valid) + (self.persons.num_rows if self.persons is not None else 0)

    def valid_rows(self) -> list[tuple[int, tuple[Any, ...]]]:
        """Every valid row as (row number, tuple), in row order, whichever form it came in."""
        if self.persons is None:
            return self.valid
        return validation_columnar.person_tuples(self.persons)


def raw_json(row: Any) -> str:
    """The row as JSON for the quarantine, capped so one absurd row cannot bloat the table."""
    text = json.dumps(row, ensure_ascii=False, default=str)
    if len(text) > MAX_RAW_CHARS:
        text = json.dumps({"truncated": text[:MAX_RAW_CHARS]}, ensure_ascii=False)
    return text


def make_reject(row_number: int, field_name: str, reason: str, row: Any) -> Reject:
    # A NUL in a client's column name would make PostgreSQL refuse the quarantine row itself.
    field_name = field_name.replace("\x00", "\\x00")[:MAX_FIELD_CHARS]
    reason = reason.replace("\x00", "\\x00")[:MAX_REASON_CHARS]
    return Reject(row_number, field_name, reason, raw_json(row))


_JSON_TYPE_NAMES = {bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}


def _type_name(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def check_types(spec: SourceSpec, row: Mapping[str, Any]) -> None:
    """RowError for an unknown key or a value of the wrong JSON type (JSON Lines and the API).

    Strings are required for text columns: a number where a national id belongs would lose its
    leading zeros, so it is refused rather than guessed.
    """
    types = _FIELD_TYPES[spec.name]
    for key, value in row.items():
        declared = types.get(key)
        if declared is None:
            raise RowError(str(key), f"unknown column; {spec.name} accepts: {', '.join(types)}")
        if value is None:
            continue
        if isinstance(value, str):
            if "\x00" in value:
                raise RowError(str(key), NUL_REASON)
            continue
        if declared is FieldType.INTEGER and isinstance(value, int) and not isinstance(value, bool):
            continue
        if (
            declared is FieldType.DATE
            and isinstance(value, date)
            and not isinstance(value, datetime)
        ):
            continue
        expected = {
            FieldType.STRING: "a string",
            FieldType.DATE: "a date string YYYY-MM-DD",
            FieldType.INTEGER: "a whole number",
        }[declared]
        raise RowError(str(key), f"must be {expected}, got {_type_name(value)}")


_FIELD_TYPES: dict[str, dict[str, FieldType]] = {
    name: {f.name: f.type for f in spec.fields} for name, spec in SOURCES.items()
}


def validate_row(
    spec: SourceSpec, row: Mapping[str, Any], *, today: date, country: str
) -> tuple[Any, ...]:
    """One row through the registry's validators; RowError names the field and the reason."""
    if spec.kind is SourceKind.PERSON:
        return validation.validate_person(row, today=today, country=country)
    if spec.kind is SourceKind.MEMBER:
        return validation.validate_member(row, today=today, country=country)
    if spec.kind is SourceKind.LINK:
        return validation.validate_link(row, today=today, country=country)
    assert spec.fact_kind is not None  # noqa: S101 - every fact source declares its kind
    fact = validation.validate_fact(row, kind=spec.fact_kind.value, today=today, country=country)
    if spec.fact_kind is FactKind.BIRTH:
        mother = validation.validate_other_national_id(
            row, "mother_national_id", required=True, country=country
        )
        father = validation.validate_other_national_id(
            row, "father_national_id", required=False, country=country
        )
        for field_name, parent in (("mother_national_id", mother), ("father_national_id", father)):
            if parent == fact.national_id:
                raise RowError(field_name, "a person cannot be their own parent")
        return (*fact, mother, father)
    return fact


def _is_blank(row: Mapping[str, Any]) -> bool:
    # any() in C answers for nearly every row; the exact test runs only on rows of falsy values.
    if any(row.values()):
        return False
    return all(value is None or value == "" for value in row.values())


def _rows_with_nul(table: Any) -> dict[int, str]:
    """Row index -> the first text column holding a NUL character (vectorised: rare)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found: dict[int, str] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        if not any(map(validation_columnar.holds_byte, column.chunks, [0] * column.num_chunks)):
            continue  # a scan of the raw bytes answers for nearly every column
        mask = pc.match_substring(column, "\x00")
        if pc.any(mask).as_py():
            for index, hit in enumerate(mask.to_pylist()):
                if hit:
                    found.setdefault(index, name)
    return found


def _rows_of(chunk: RawChunk) -> tuple[list[tuple[int, Any]], list[Reject]]:
    """(row number, dict) pairs; JSON lines that are not JSON objects become rejects."""
    rejects = list(chunk.rejects)
    if chunk.table is not None:
        names = chunk.table.column_names
        columns = [column.to_pylist() for column in chunk.table.columns]
        table_pairs: list[tuple[int, Any]] = list(
            zip(
                chunk.row_numbers,
                (dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)),
                strict=True,
            )
        )
        with_nul = _rows_with_nul(chunk.table)
        if with_nul:
            for index, name in sorted(with_nul.items()):
                number, row = table_pairs[index]
                rejects.append(make_reject(number, name, NUL_REASON, row))
            table_pairs = [p for index, p in enumerate(table_pairs) if index not in with_nul]
        return table_pairs, rejects
    if chunk.rows is not None:
        return list(zip(chunk.row_numbers, chunk.rows, strict=True)), rejects
    assert chunk.lines is not None  # noqa: S101 - a chunk carries one of the three forms
    pairs: list[tuple[int, Any]] = []
    for number, line in zip(chunk.row_numbers, chunk.lines, strict=True):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            rejects.append(
                make_reject(
                    number,
                    ROW_FIELD,
                    f"line is not valid UTF-8 ({exc.reason})",
                    {"line": line.decode("utf-8", "replace")},
                )
            )
            continue
        if not text.strip():
            continue  # blank lines carry no row
        try:
            value = json.loads(text)
        except ValueError as exc:
            rejects.append(
                make_reject(number, ROW_FIELD, f"line is not valid JSON: {exc}", {"line": text})
            )
            continue
        if not isinstance(value, dict):
            rejects.append(
                make_reject(
                    number,
                    ROW_FIELD,
                    f"line must be a JSON object, got {_type_name(value)}",
                    {"line": text},
                )
            )
            continue
        pairs.append((number, value))
    return pairs, rejects


def validate_chunk(source: str, chunk: RawChunk, today: date, country: str) -> ValidatedChunk:
    """Validate every row of a chunk; runs in the importing process or in a worker process."""
    started = time.perf_counter()
    spec = SOURCES[source]
    if spec.kind is SourceKind.PERSON and chunk.table is not None:
        return _validate_person_table(spec, chunk, today, country, started)
    pairs, rejects = _rows_of(chunk)
    valid: list[tuple[int, tuple[Any, ...]]] = []
    append = valid.append
    skip_blank = chunk.table is not None
    for number, row in pairs:
        if skip_blank and _is_blank(row):
            continue  # an empty CSV line carries no data
        try:
            if chunk.check_types:
                check_types(spec, row)
            # A plain tuple pickles faster than the NamedTuple when sent back from a worker.
            append((number, tuple(validate_row(spec, row, today=today, country=country))))
        except RowError as exc:
            rejects.append(make_reject(number, exc.field, exc.reason, row))
    rejects.sort(key=lambda reject: reject.row_number)
    return ValidatedChunk(valid, rejects, time.perf_counter() - started)


def _table_rows(table: Any, indices: Sequence[int]) -> list[dict[str, Any]]:
    """Some rows of a table as dicts (what the scalar validators take)."""
    part = table.take(indices)
    names = part.column_names
    columns = [column.to_pylist() for column in part.columns]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _validate_person_table(
    spec: SourceSpec, chunk: RawChunk, today: date, country: str, started: float
) -> ValidatedChunk:
    """Person rows of a file: the column path decides most rows, the scalar validator the rest.

    Same outcome as validating each row with validate_person: rows with a NUL character are
    rejected first, blank rows are skipped, and every row the column path does not accept goes
    through the scalar validator, which accepts or rejects it with the field and the reason.
    """
    table = chunk.table
    count = table.num_rows
    numbers = np.asarray(chunk.row_numbers, dtype=np.int64)
    rejects = list(chunk.rejects)
    candidates = np.ones(count, dtype=np.bool_)
    with_nul = _rows_with_nul(table)
    if with_nul:
        indices = sorted(with_nul)
        candidates[indices] = False
        for index, row in zip(indices, _table_rows(table, indices), strict=True):
            rejects.append(make_reject(int(numbers[index]), with_nul[index], NUL_REASON, row))
    fast = validation_columnar.validate_persons(
        table, today=today, country=country, candidates=candidates
    )
    persons = validation_columnar.with_row_numbers(numbers[fast.accepted], fast.rows)
    rest = np.flatnonzero(candidates & ~fast.accepted)
    if rest.size:
        slow_numbers: list[int] = []
        slow_rows: list[tuple[Any, ...]] = []
        for index, row in zip(rest.tolist(), _table_rows(table, rest.tolist()), strict=True):
            if _is_blank(row):
                continue  # an empty CSV line carries no data
            number = int(numbers[index])
            try:
                slow_rows.append(tuple(validate_row(spec, row, today=today, country=country)))
                slow_numbers.append(number)
            except RowError as exc:
                rejects.append(make_reject(number, exc.field, exc.reason, row))
        if slow_rows:
            slow = validation_columnar.person_table(slow_numbers, slow_rows)
            persons = validation_columnar.concat_in_row_order(persons, slow)
    rejects.sort(key=lambda reject: reject.row_number)
    return ValidatedChunk([], rejects, time.perf_counter() - started, persons)
