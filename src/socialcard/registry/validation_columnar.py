"""Column-at-a-time forms of the row rules of `validation.py`, which stays their authority.

Two callers, one set of vectorised rules (the ИИН, dates, regions, languages, names):

- **File imports** (`validate_persons`): a pyarrow table of person columns as the file readers
  deliver them (text columns; Parquet may also carry real dates). It answers, for the whole
  table at once, which rows certainly pass every rule of `validation.validate_person`, with
  their typed values. It is conservative by construction: a row it cannot decide cheaply
  (surrounding whitespace, punctuation in a name, a phone to normalise, a death date, anything
  unusual) is simply not accepted here and goes through the scalar validator, which names the
  field and reason of a reject. For every row it accepts, the values are exactly the ones the
  scalar validator returns (tests/registry/test_validation_columnar.py checks that property on
  random rows). The rules are evaluated with pyarrow.compute and numpy on the raw bytes. Names
  are accepted only when every character is alphabetic for both Python and pyarrow (the check
  below compares their Unicode tables once per process, so a pyarrow built on a newer Unicode
  version cannot accept a letter Python does not know).
- **The population generator** (`check`): its typed columns (numpy arrays) checked for what
  `validate_person`, `validate_member`, `validate_fact` and `check_child_younger` accept *and
  leave unchanged* (a value the validators would normalise, such as a name with a trailing
  space, counts as a failure too: the importers would store something else). `check_scalar`
  calls those validators row by row; the tests prove both agree on generated rows and on rows
  broken on purpose. Any problem stops the load.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from socialcard.registry.enums import DISABILITY_CAUSES, FACT_DETAILS, STUDY_MODES, FactKind
from socialcard.registry.population.generator import (
    NONE_DAY,
    NONE_INT,
    Tables,
    iso_dates,
    optional_ints,
)
from socialcard.registry.regions import REGIONS, is_known_kato
from socialcard.registry.validation import (
    EARLIEST_BIRTH,
    LANGUAGES,
    MAX_AMOUNT_MINOR,
    NAME_PUNCTUATION,
    ROLES,
    FactRow,
    MemberRow,
    PersonRow,
    RowError,
    check_child_younger,
    normalize_phone,
    validate_fact,
    validate_member,
    validate_person,
)

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

PERSON_FIELDS: tuple[str, ...] = PersonRow._fields
# The typed rows of a person chunk: its row numbers, then PersonRow's fields in order.
PERSON_SCHEMA = pa.schema(
    [
        ("row_number", pa.int64()),
        ("national_id", pa.string()),
        ("country", pa.string()),
        ("last_name", pa.string()),
        ("first_name", pa.string()),
        ("patronymic", pa.string()),
        ("birth_on", pa.date32()),
        ("sex", pa.string()),
        ("phone", pa.string()),
        ("language", pa.string()),
        ("region_kato", pa.string()),
        ("address", pa.string()),
        ("death_on", pa.date32()),
    ]
)

_EPOCH = date(1970, 1, 1)
_NAME_MAX = 100
_ADDRESS_MAX = 300
# Names are decided here only for characters below U+3000 (Latin, Greek, Cyrillic, Kazakh and
# the other alphabets of the region); anything else goes to the scalar validator.
_NAME_CEILING = 0x3000
_KNOWN_REGION = np.array([f"{prefix:02d}" in REGIONS for prefix in range(100)], dtype=np.bool_)
_LANGUAGE_VALUES = pa.array(sorted(LANGUAGES))
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
# ИИН check digit weights: the first pass, and the second one used when the first gives 10.
_WEIGHTS_1 = np.arange(1, 12, dtype=np.int64)
_WEIGHTS_2 = np.array([3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2], dtype=np.int64)
# The century of the ИИН's 7th digit (1-2: 1800s, 3-4: 1900s, 5-6: 2000s; odd is male).
_CENTURY_BASE = np.array([0, 1800, 1800, 1900, 1900, 2000, 2000, 0, 0, 0], dtype=np.int64)


class PersonColumns(NamedTuple):
    """Which rows the column path accepts, and their typed values (PersonRow fields, in order)."""

    accepted: BoolArray
    rows: Any  # pyarrow.Table of the accepted rows, PERSON_SCHEMA without row_number


class _Undecidable(Exception):
    """A column of a type this path does not handle: every row goes to the scalar validator."""


def _re_char(code: int) -> str:
    return f"\\x{{{code:x}}}"


@functools.cache
def _letter_disagreements() -> tuple[int, ...]:
    """Code points below the name ceiling where Python and pyarrow differ on "alphabetic"."""
    codes = [c for c in range(1, _NAME_CEILING) if not 0xD800 <= c <= 0xDFFF]
    chars = [chr(c) for c in codes]
    arrow_alpha = pc.utf8_is_alpha(pa.array(chars)).to_pylist()
    return tuple(
        c for c, ch, alpha in zip(codes, chars, arrow_alpha, strict=True) if ch.isalpha() != alpha
    )


@functools.cache
def _untrusted_letters() -> str:
    """A regex matching a character the column path must not decide a name on."""
    pattern = f"[^{_re_char(1)}-{_re_char(_NAME_CEILING - 1)}]"
    disagree = _letter_disagreements()
    if disagree:
        pattern += "|[" + "".join(_re_char(c) for c in disagree) + "]"
    return pattern


@functools.cache
def _first_untrusted_byte() -> int:
    """Text whose bytes are all below this holds no untrusted character (no regex needed).

    UTF-8 lead bytes from 0xE0 start characters from U+0800 (up to the ceiling and beyond);
    a two-byte lead 0xC0 + k starts the characters U+0040 * k to U+0040 * k + 0x3F.
    """
    first = 0xE0
    for code in _letter_disagreements():
        first = min(first, 0xC0 + (code >> 6) if code >= 0x80 else 0)
    return first


@functools.cache
def _python_spaces() -> tuple[int, ...]:
    """The code points str.strip() removes, from this interpreter's own tables."""
    codes = np.arange(sys.maxunicode + 1, dtype=np.uint32)
    every_char = codes[(codes < 0xD800) | (codes > 0xDFFF)].tobytes().decode("utf-32-le")
    # re's \s on str is exactly str.isspace() (both use Py_UNICODE_ISSPACE), and much faster.
    return tuple(ord(ch) for ch in re.findall(r"\s", every_char))


@functools.cache
def _padded_pattern() -> str:
    """A regex matching text that starts or ends with a character str.strip() could remove.

    Python's whitespace plus every Unicode separator and control character for good measure.
    """
    spaces = "".join(_re_char(code) for code in _python_spaces())
    edge = f"[{spaces}\\p{{Z}}\\p{{Cc}}]"
    return rf"\A{edge}|{edge}\z"


@functools.cache
def _plain_edges_hold() -> bool:
    """Whether no whitespace is printable ASCII (0x21-0x7E) or two-byte from U+00C0 to U+07FF:
    then an edge character in those ranges is never stripped (see _plain_edges)."""
    return not any(0x21 <= c <= 0x7E or 0xC0 <= c <= 0x7FF for c in _python_spaces())


def _np(mask: Any) -> BoolArray:
    """A pyarrow boolean array (nulls as False) as a numpy array."""
    array: BoolArray = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
    return array


class _Text:
    """A string column with numpy views of its offsets and bytes."""

    def __init__(self, array: Any) -> None:
        self.array = array
        count = len(array)
        raw_offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)
        offsets: IntArray = raw_offsets[array.offset : array.offset + count + 1].astype(np.int64)
        self.starts = offsets[:-1]
        self.ends = offsets[1:]
        self.valid: BoolArray = (
            np.ones(count, dtype=np.bool_)
            if array.null_count == 0
            else array.is_valid().to_numpy(zero_copy_only=False)
        )
        # A null slot may still span bytes; a null is length 0 here.
        self.lengths: IntArray = np.where(self.valid, self.ends - self.starts, 0)
        data = array.buffers()[2]
        all_bytes = (
            np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
        )
        self.data: npt.NDArray[np.uint8] = all_bytes[offsets[0] : offsets[-1]]
        self.all_bytes = all_bytes

    @property
    def missing(self) -> BoolArray:
        """Null or the empty string: what the scalar validator reads as an absent value."""
        missing: BoolArray = self.lengths == 0
        return missing

    def fixed(self, ok: BoolArray, width: int) -> npt.NDArray[np.int64]:
        """Rows of exactly `width` bytes as an (n, width) matrix of byte values minus 48 (so
        ASCII digits read as 0-9); `ok` and the width are required of the rows used, others
        read as zeros and must be ignored by the caller."""
        use = ok & (self.lengths == width)
        filler = "0" * width
        fixed = pc.if_else(pa.array(use), self.array, filler).cast(pa.binary(width))
        data = np.frombuffer(fixed.buffers()[1], dtype=np.uint8)
        start = fixed.offset * width
        matrix = data[start : start + len(fixed) * width].reshape(len(fixed), width)
        return matrix.astype(np.int64) - 48

    def edge_bytes(self) -> tuple[IntArray, IntArray, IntArray]:
        """First, last and second-to-last byte of each row (-1 where there is none)."""
        size = len(self.all_bytes)

        def at(index: IntArray, needed: int) -> IntArray:
            values = self.all_bytes[np.clip(index, 0, max(size - 1, 0))] if size else 0
            byte: IntArray = np.where(self.lengths >= needed, values, -1).astype(np.int64)
            return byte

        return at(self.starts, 1), at(self.ends - 1, 1), at(self.ends - 2, 2)


def holds_byte(array: Any, byte: int) -> bool:
    """Whether the bytes of a string array's values (nulls included) contain `byte`; a fast
    scan of the raw data buffer, which is exact for a byte below 0x80 (no UTF-8 sequence
    holds one inside a longer character)."""
    offset_type = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(array.buffers()[1], dtype=offset_type)
    data = array.buffers()[2]
    if data is None or not len(array):
        return False
    start, end = int(offsets[array.offset]), int(offsets[array.offset + len(array)])
    values = np.frombuffer(data, dtype=np.uint8)[start:end]
    return bool((values == byte).any())


def _digits_ok(matrix: npt.NDArray[np.int64], positions: Sequence[int] | None = None) -> BoolArray:
    part = matrix if positions is None else matrix[:, list(positions)]
    ok: BoolArray = np.asarray(((part >= 0) & (part <= 9)).all(axis=1))
    return ok


def _text_column(table: Any, name: str, rows: int) -> Any:
    """A column as one string array; absent or all-null columns become nulls."""
    if name not in table.column_names:
        return pa.nulls(rows, pa.string())
    column = table.column(name)
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = kind.value_type
    if pa.types.is_null(kind):
        return pa.nulls(rows, pa.string())
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise _Undecidable(name)
    if pa.types.is_large_string(kind):
        column = column.cast(pa.string())
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _date_column(table: Any, name: str, rows: int) -> tuple[Any, bool]:
    """A date column as text, or as date32 when the file carries real dates (Parquet)."""
    if name in table.column_names:
        kind = table.column(name).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_date(kind):
            column = table.column(name).cast(pa.date32())
            return column.combine_chunks(), True
    return _text_column(table, name, rows), False


def _days_from_civil(year: IntArray, month: IntArray, day: IntArray) -> IntArray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days: IntArray = era * 146097 + doe - 719468
    return days


class IinColumns(NamedTuple):
    """validate_iin on a column: which rows hold a valid ИИН, and what it encodes."""

    valid: BoolArray
    year: IntArray
    month: IntArray
    day: IntArray
    born: IntArray  # days since 1970-01-01 (meaningful where valid)
    female: BoolArray


def iin_columns(digits: IntArray, fits: BoolArray) -> IinColumns:
    """The ИИН rules on an (n, 12) matrix of character values minus 48 (so digits read 0-9);
    `fits` marks the rows that are text of exactly 12 characters, the others are invalid."""
    valid = fits & _digits_ok(digits)
    century = digits[:, 6]  # the other values of an invalid row are never read as valid
    valid &= (century >= 1) & (century <= 6)
    year = _CENTURY_BASE[np.clip(century, 0, 9)] + digits[:, 0] * 10 + digits[:, 1]
    month = digits[:, 2] * 10 + digits[:, 3]
    day = digits[:, 4] * 10 + digits[:, 5]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _DAYS_IN_MONTH[np.clip(month, 0, 12)] + ((month == 2) & leap)
    valid &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
    first = digits[:, :11]
    check = (first @ _WEIGHTS_1) % 11
    check = np.where(check == 10, (first @ _WEIGHTS_2) % 11, check)
    valid &= (check != 10) & (check == digits[:, 11])
    born = _days_from_civil(year, month, day)
    return IinColumns(valid, year, month, day, born, century % 2 == 0)


def _at_most(text: _Text, limit: int) -> BoolArray:
    """At most `limit` characters (a character is at least one byte: count only when needed)."""
    short: BoolArray = text.lengths <= limit
    if short.all():
        return short
    return short | _np(pc.less_equal(pc.utf8_length(text.array), limit))


def _name_ok(text: _Text) -> BoolArray:
    """Entirely alphabetic for Python and pyarrow alike (so str.strip() keeps it and
    str.isalpha() is true), 1 to 100 characters."""
    ok = _np(pc.utf8_is_alpha(text.array)) & _at_most(text, _NAME_MAX)
    if text.data.size and int(text.data.max()) >= _first_untrusted_byte():
        ok &= ~_np(pc.match_substring_regex(text.array, _untrusted_letters()))
    return ok


def _plain_edges(text: _Text) -> BoolArray:
    """Non-empty text whose first and last characters str.strip() certainly keeps."""
    if not _plain_edges_hold():
        return np.zeros(len(text.lengths), dtype=np.bool_)
    first, last, before = text.edge_bytes()

    def printable(byte: IntArray) -> BoolArray:
        result: BoolArray = (byte >= 0x21) & (byte <= 0x7E)
        return result

    def two_byte_lead(byte: IntArray) -> BoolArray:  # U+00C0 to U+07FF
        result: BoolArray = (byte >= 0xC3) & (byte <= 0xDF)
        return result

    continuation = (last >= 0x80) & (last <= 0xBF)
    return (printable(first) | two_byte_lead(first)) & (
        printable(last) | (continuation & two_byte_lead(before))
    )


def _unpadded(text: _Text) -> BoolArray:
    """No character str.strip() would remove at either end (bytes first, a regex if needed)."""
    plain = _plain_edges(text)
    doubtful = ~plain & ~text.missing
    if not doubtful.any():
        return plain
    return plain | (doubtful & ~_np(pc.match_substring_regex(text.array, _padded_pattern())))


def _empty_to_null(column: Any, missing: BoolArray) -> Any:
    if not missing.any():
        return column
    return pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), column)


def validate_persons(
    table: Any, *, today: date, country: str = "KZ", candidates: BoolArray | None = None
) -> PersonColumns:
    """The rows of `table` that certainly pass validate_person, and their typed values.

    `candidates` restricts the rows considered (others are never accepted). Rows not accepted
    must go through validation.validate_person, which decides them.
    """
    rows = table.num_rows
    none = PersonColumns(np.zeros(rows, dtype=np.bool_), _empty_table())
    if rows == 0 or country != "KZ":
        return none
    try:
        return _validate(table, rows, today=today, country=country, candidates=candidates)
    except _Undecidable:
        return none


def _validate(
    table: Any, rows: int, *, today: date, country: str, candidates: BoolArray | None
) -> PersonColumns:
    national_id = _Text(_text_column(table, "national_id", rows))
    ok = national_id.lengths == 12
    if candidates is not None:
        ok &= candidates
    if not ok.any():
        return PersonColumns(ok, _empty_table())

    # ИИН: 12 ASCII digits, century digit, encoded date, check digit (validate_iin).
    iin = iin_columns(national_id.fixed(ok, 12), ok)
    # Centuries 1-2 (the 1800s) fail the EARLIEST_BIRTH rule below: left to the scalar's reason.
    ok = iin.valid
    year, month, day, born = iin.year, iin.month, iin.day, iin.born

    # birth_on: exactly the encoded date written YYYY-MM-DD, not in the future, not before 1900.
    birth_column, birth_is_date = _date_column(table, "birth_on", rows)
    if birth_is_date:
        stated = birth_column.cast(pa.int32()).fill_null(-(10**8)).to_numpy(zero_copy_only=False)
        ok &= stated.astype(np.int64) == born
    else:
        birth = _Text(birth_column)
        text = birth.fixed(ok, 10)
        ok &= (birth.lengths == 10) & _digits_ok(text, (0, 1, 2, 3, 5, 6, 8, 9))
        ok &= (text[:, 4] == ord("-") - 48) & (text[:, 7] == ord("-") - 48)
        stated_year = text[:, 0] * 1000 + text[:, 1] * 100 + text[:, 2] * 10 + text[:, 3]
        stated_month = text[:, 5] * 10 + text[:, 6]
        stated_day = text[:, 8] * 10 + text[:, 9]
        ok &= (stated_year == year) & (stated_month == month) & (stated_day == day)
    ok &= born <= (today - _EPOCH).days
    ok &= born >= (EARLIEST_BIRTH - _EPOCH).days

    # sex: M or F as written, matching the parity of the century digit.
    sex = _text_column(table, "sex", rows)
    ok &= np.where(iin.female, _np(pc.equal(sex, "F")), _np(pc.equal(sex, "M")))

    # Names: alphabetic through and through; the patronymic may be absent.
    names: dict[str, Any] = {}
    for field in ("last_name", "first_name", "patronymic"):
        name = _Text(_text_column(table, field, rows))
        good = _name_ok(name)
        column = name.array
        if field == "patronymic":
            good |= name.missing
            column = _empty_to_null(column, name.missing)
        ok &= good
        names[field] = column

    # phone: absent, or already +7 and 10 digits (others are normalised by the scalar path).
    phone = _Text(_text_column(table, "phone", rows))
    plus_seven = phone.fixed(ok, 12)
    ok &= phone.missing | (
        (phone.lengths == 12)
        & (plus_seven[:, 0] == ord("+") - 48)
        & (plus_seven[:, 1] == 7)
        & _digits_ok(plus_seven[:, 2:])
    )

    # language: absent (kk) or one of the languages as written.
    language = _Text(_text_column(table, "language", rows))
    ok &= language.missing | _np(pc.is_in(language.array, value_set=_LANGUAGE_VALUES))

    # region_kato: 9 ASCII digits under a known region.
    region = _Text(_text_column(table, "region_kato", rows))
    kato = region.fixed(ok, 9)
    prefix = np.clip(kato[:, 0] * 10 + kato[:, 1], 0, 99)
    ok &= (region.lengths == 9) & _digits_ok(kato) & _KNOWN_REGION[prefix]

    # address: absent, or at most 300 characters that str.strip() would leave as they are.
    address = _Text(_text_column(table, "address", rows))
    ok &= address.missing | (_at_most(address, _ADDRESS_MAX) & _unpadded(address))

    # death_on: only an absent one is decided here.
    death, death_is_date = _date_column(table, "death_on", rows)
    ok &= _np(pc.is_null(death)) if death_is_date else _Text(death).missing

    if not ok.any():
        return PersonColumns(ok, _empty_table())
    keep = pa.array(ok)
    accepted = int(ok.sum())
    typed = pa.Table.from_arrays(
        [
            national_id.array.filter(keep),
            pa.nulls(accepted, pa.string()).fill_null(country),
            names["last_name"].filter(keep),
            names["first_name"].filter(keep),
            names["patronymic"].filter(keep),
            pa.array(born[ok].astype(np.int32), pa.int32()).cast(pa.date32()),
            sex.filter(keep),
            _empty_to_null(phone.array, phone.missing).filter(keep),
            pc.if_else(pa.array(language.missing), "kk", language.array).filter(keep),
            region.array.filter(keep),
            _empty_to_null(address.array, address.missing).filter(keep),
            pa.nulls(accepted, pa.date32()),
        ],
        schema=_ROW_SCHEMA,
    )
    return PersonColumns(ok, typed)


_ROW_SCHEMA = pa.schema([PERSON_SCHEMA.field(name) for name in PERSON_FIELDS])


def _empty_table() -> Any:
    return _ROW_SCHEMA.empty_table()


def person_table(row_numbers: Sequence[int], rows: Sequence[Sequence[Any]]) -> Any:
    """PersonRow tuples (as the scalar validator returns them) as a PERSON_SCHEMA table."""
    columns: list[Any] = [list(row_numbers)]
    columns += (
        [list(values) for values in zip(*rows, strict=True)]
        if rows
        else [[] for _ in PERSON_FIELDS]
    )
    return pa.Table.from_arrays(
        [
            pa.array(values, field.type)
            for values, field in zip(columns, PERSON_SCHEMA, strict=True)
        ],
        schema=PERSON_SCHEMA,
    )


def with_row_numbers(row_numbers: Any, rows: Any) -> Any:
    """A table of typed rows (PersonColumns.rows) with their row numbers in front."""
    return rows.add_column(0, PERSON_SCHEMA.field("row_number"), pa.array(row_numbers, pa.int64()))


def concat_in_row_order(first: Any, second: Any) -> Any:
    """Two PERSON_SCHEMA tables as one, in row-number order."""
    both = pa.concat_tables([first, second])
    return both.take(pc.sort_indices(both.column("row_number")))


def person_tuples(table: Any) -> list[tuple[int, tuple[Any, ...]]]:
    """A PERSON_SCHEMA table back as (row number, PersonRow tuple) pairs."""
    columns = [table.column(name).to_pylist() for name in PERSON_SCHEMA.names]
    return [(values[0], tuple(values[1:])) for values in zip(*columns, strict=True)]


# --- Generated rows (the population generator) --------------------------------------------

Table = Literal["person", "member", "fact"]
Mode = Literal["vector", "scalar", "both"]
_EARLIEST = (EARLIEST_BIRTH - _EPOCH).days
# (needs amount, needs quantity, allowed qualifiers) per kind, as the importers require.
_SHAPE: dict[str, tuple[bool, bool, frozenset[str]]] = {
    "income": (True, False, frozenset()),
    "unemployment": (False, False, frozenset()),
    "disability": (False, False, DISABILITY_CAUSES),
    "study": (False, False, STUDY_MODES),
    "award": (False, False, frozenset()),
    "pension": (False, True, frozenset()),
    "property": (False, True, frozenset()),
    "loan": (True, False, frozenset()),
    "birth": (False, False, frozenset()),
    "death": (False, False, frozenset()),
    "social_insurance": (True, False, frozenset()),
}
assert set(_SHAPE) == {k.value for k in FactKind}  # noqa: S101 - a new kind needs a shape


@dataclass(frozen=True)
class Problem:
    """A generated row that the importers would reject (or store differently)."""

    table: Table
    row: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.table} row {self.row}: {self.field}: {self.reason}"


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def flag(self, table: Table, bad: NDArray[np.bool_], field: str, reason: str) -> None:
        for row in np.flatnonzero(bad).tolist():
            self.problems.append(Problem(table, row, field, reason))


def _memo(
    values: NDArray[np.object_] | Iterable[Any], ok: Callable[[Any], bool]
) -> NDArray[np.bool_]:
    """ok(value) per element, judged once per distinct value (most columns repeat a lot)."""
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    try:
        distinct = set(items)
    except TypeError:  # an unhashable value: judge one by one
        return np.fromiter((ok(v) for v in items), dtype=bool, count=len(items))
    if len(set(map(type, distinct))) > 2:
        # 1 == True == 1.0 share a set slot: judge by (type, value) when types are mixed.
        typed = [(type(v), v) for v in items]
        verdict = {key: ok(key[1]) for key in set(typed)}
        return np.fromiter(map(verdict.__getitem__, typed), dtype=bool, count=len(items))
    verdicts = {v: ok(v) for v in distinct}
    if all(verdicts.values()):
        return np.ones(len(items), dtype=bool)
    return np.fromiter(map(verdicts.__getitem__, items), dtype=bool, count=len(items))


def _codes_of(values: list[Any]) -> tuple[NDArray[np.int64], list[Any]]:
    """A small integer per distinct value, and the distinct values in code order."""
    distinct = list(set(values))
    codes = {v: i for i, v in enumerate(distinct)}
    return np.fromiter(map(codes.__getitem__, values), dtype=np.int64, count=len(values)), distinct


def _clean_text(value: Any, *, required: bool, max_len: int) -> bool:
    """What validation._text accepts and returns unchanged."""
    if value is None:
        return not required
    return isinstance(value, str) and value == value.strip() and 0 < len(value) <= max_len


def _clean_name(value: Any, *, required: bool) -> bool:
    """What validation._name accepts and returns unchanged."""
    if not _clean_text(value, required=required, max_len=100):
        return False
    return value is None or all(c.isalpha() or c in NAME_PUNCTUATION for c in value)


def _clean_phone(value: Any) -> bool:
    """What validation accepts as a phone and stores unchanged."""
    if not _clean_text(value, required=True, max_len=20):
        return False
    try:
        return bool(normalize_phone(value) == value)
    except ValueError:
        return False


def _codes(values: NDArray[np.object_], width: int) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """Rows whose value is a str of exactly `width` ASCII characters, and their code points."""
    items = values.tolist()
    n = len(items)
    if set(map(type, items)) <= {str}:
        is_str = np.ones(n, dtype=bool)
    else:
        is_str = np.fromiter((type(v) is str for v in items), dtype=bool, count=n)
        items = [v if type(v) is str else "" for v in items]
    text = np.array(items, dtype=str) if n else np.empty(0, dtype=f"U{width}")
    if text.dtype.itemsize < 4 * width:
        text = text.astype(f"U{width}")
    lengths = np.char.str_len(text)
    codes = text.view(np.uint32).reshape(n, -1)
    fits = is_str & (lengths == width) & (codes < 128).all(axis=1)
    return fits, codes[:, :width].astype(np.int64)


def _iin_rows(
    national_id: NDArray[np.object_],
) -> tuple[NDArray[np.bool_], NDArray[np.int64], NDArray[np.bool_]]:
    """(identifier valid, encoded birth day, encoded female) per row, as validate_iin decides."""
    fits, codes = _codes(national_id, 12)
    iin = iin_columns(codes - 48, fits)
    return iin.valid, np.where(iin.valid, iin.born, NONE_DAY), iin.female


def _repeats(values: NDArray[np.object_]) -> NDArray[np.bool_]:
    """True for every occurrence of a value after its first."""
    items = values.tolist()
    out = np.zeros(len(items), dtype=bool)
    if len(set(items)) == len(items):
        return out
    seen: set[Any] = set()
    for i, value in enumerate(items):
        out[i] = value in seen
        seen.add(value)
    return out


def check_vectorised(tables: Tables, *, today: date) -> list[Problem]:
    """Every problem the importers' validators would raise for these rows, found column-wise."""
    out = _Collector()
    t = (today - _EPOCH).days
    n = tables.persons

    # --- person ----------------------------------------------------------------------------
    id_ok, encoded_birth, encoded_female = _iin_rows(tables.national_id)
    out.flag("person", ~id_ok, "national_id", "is not a valid ИИН")
    for field, required in (("last_name", True), ("first_name", True), ("patronymic", False)):
        bad = ~_memo(getattr(tables, field), partial(_clean_name, required=required))
        out.flag("person", bad, field, "is not a clean name")
    birth = tables.birth_on
    out.flag("person", birth > t, "birth_on", "is in the future")
    out.flag("person", birth < _EARLIEST, "birth_on", "is before 1900-01-01")
    out.flag("person", id_ok & (encoded_birth != birth), "birth_on", "does not match the ИИН")
    sex = tables.sex
    sex_ok = _memo(sex, lambda v: v in ("M", "F"))
    out.flag("person", ~sex_ok, "sex", "must be M or F")
    female = sex == "F"
    out.flag("person", id_ok & sex_ok & (encoded_female != female), "sex", "does not match the ИИН")
    phone_present = np.fromiter((p is not None for p in tables.phone.tolist()), dtype=bool, count=n)
    fits, codes = _codes(tables.phone, 12)
    phone_ok = fits & (codes[:, 0] == ord("+")) & (codes[:, 1] == ord("7"))
    phone_ok &= ((codes[:, 2:] >= ord("0")) & (codes[:, 2:] <= ord("9"))).all(axis=1)
    # The rare rest (other digits, spaces, an 8 prefix): the importers' own rule decides.
    for row in np.flatnonzero(phone_present & ~phone_ok).tolist():
        phone_ok[row] = _clean_phone(tables.phone[row])
    out.flag("person", phone_present & ~phone_ok, "phone", "is not +7 and 10 digits")
    out.flag(
        "person",
        ~_memo(tables.language, lambda v: v in LANGUAGES),
        "language",
        "must be kk, ru or en",
    )
    region_ok = _memo(
        tables.region_kato, lambda v: _clean_text(v, required=True, max_len=9) and is_known_kato(v)
    )
    out.flag("person", ~region_ok, "region_kato", "unknown region")
    address_ok = _memo(tables.address, lambda v: _clean_text(v, required=False, max_len=300))
    out.flag("person", ~address_ok, "address", "is not clean text of at most 300 characters")
    death = tables.death_on
    dead = death != NONE_DAY
    out.flag("person", dead & (death > t), "death_on", "is in the future")
    out.flag("person", dead & (death < birth), "death_on", "is before birth_on")

    # --- member (row i is person i's membership) ------------------------------------------
    ref_ok = _memo(tables.family_ref, lambda v: _clean_text(v, required=True, max_len=40))
    kato_ok = _memo(
        tables.family_kato, lambda v: _clean_text(v, required=True, max_len=9) and is_known_kato(v)
    )
    fam = tables.member_family
    out.flag("member", ~ref_ok[fam], "family_ref", "is not clean text of at most 40 characters")
    out.flag("member", ~kato_ok[fam], "region_kato", "unknown region")
    out.flag("member", ~id_ok, "national_id", "is not a valid ИИН")
    role = tables.role
    out.flag("member", ~_memo(role, lambda v: v in ROLES), "role", "is not a known role")
    out.flag("member", tables.from_on > t, "from_on", "is in the future")
    closed = tables.until_on != NONE_DAY
    out.flag("member", closed & (tables.until_on < tables.from_on), "until_on", "is before from_on")
    # Cross-row: a child is younger than the head and the spouse; the head younger than a parent.
    f = tables.families
    heads = role == "head"
    head_count = np.bincount(fam[heads], minlength=f)
    out.flag("member", (head_count != 1)[fam] & heads, "role", "a family needs exactly one head")
    head_birth = np.full(f, NONE_DAY, dtype=np.int64)
    head_birth[fam[heads]] = birth[heads]
    spouses = role == "spouse"
    spouse_birth = np.full(f, NONE_DAY, dtype=np.int64)
    np.maximum.at(spouse_birth, fam[spouses], birth[spouses])  # the youngest spouse, if several
    # Like the importers, compare only within a family that has exactly one head.
    headed = (head_count == 1)[fam]
    children = headed & (role == "child")
    out.flag(
        "member",
        children & (birth <= head_birth[fam]),
        "national_id",
        "child is older than the head",
    )
    has_spouse = spouse_birth[fam] != NONE_DAY
    out.flag(
        "member",
        children & has_spouse & (birth <= spouse_birth[fam]),
        "national_id",
        "child is older than the spouse",
    )
    parents = headed & (role == "parent")
    out.flag(
        "member",
        parents & (head_birth[fam] <= birth),
        "national_id",
        "parent is younger than the head",
    )
    # One open membership per person: a national id appears once in a chunk.
    duplicate = _repeats(tables.national_id)
    out.flag("member", duplicate, "national_id", "appears more than once")

    # --- fact ------------------------------------------------------------------------------
    person = tables.fact_person
    out.flag("fact", ~id_ok[person], "national_id", "is not a valid ИИН")
    # Kinds, details, qualifiers and sources repeat a lot: judge each distinct combination once.
    kind_code, kinds = _codes_of(tables.fact_kind.tolist())
    detail_code, details = _codes_of(tables.fact_detail.tolist())
    qualifier_code, qualifiers = _codes_of(tables.fact_qualifier.tolist())
    source_code, sources = _codes_of(tables.fact_source.tolist())
    shapes = [_SHAPE.get(k) if isinstance(k, str) else None for k in kinds]
    pair_ok = np.array(
        [
            [s is not None and d in FACT_DETAILS[FactKind(k)] for d in details]
            for k, s in zip(kinds, shapes, strict=True)
        ],
        dtype=bool,
    ).reshape(len(kinds), len(details))[kind_code, detail_code]
    out.flag("fact", ~pair_ok, "detail", "is not a detail of this kind")
    qualifier_ok = np.array(
        [[q is None or (s is not None and q in s[2]) for q in qualifiers] for s in shapes],
        dtype=bool,
    ).reshape(len(kinds), len(qualifiers))[kind_code, qualifier_code]
    out.flag("fact", ~qualifier_ok, "qualifier", "is not allowed for this kind")
    needs_amount = np.array([s is not None and s[0] for s in shapes], dtype=bool)[kind_code]
    needs_quantity = np.array([s is not None and s[1] for s in shapes], dtype=bool)[kind_code]
    amount = tables.fact_amount
    has_amount = amount != NONE_INT
    out.flag("fact", needs_amount & ~has_amount, "amount_minor", "is required")
    out.flag(
        "fact",
        has_amount & ((amount < 0) | (amount > MAX_AMOUNT_MINOR)),
        "amount_minor",
        "is out of range",
    )
    quantity = tables.fact_quantity
    has_quantity = quantity != NONE_INT
    out.flag("fact", needs_quantity & ~has_quantity, "quantity", "is required")
    out.flag(
        "fact", has_quantity & ((quantity < 0) | (quantity > 100)), "quantity", "is out of range"
    )
    start = tables.fact_valid_from
    out.flag("fact", start > t, "valid_from", "is in the future")
    out.flag("fact", start < _EARLIEST, "valid_from", "is before 1900-01-01")
    until = tables.fact_valid_until
    out.flag("fact", (until != NONE_DAY) & (until < start), "valid_until", "is before valid_from")
    # Contributions cover whole months (validation._contribution_months).
    is_contribution = np.array([k == "social_insurance" for k in kinds], dtype=bool)[kind_code]
    first_day = start.astype("datetime64[D]").astype("datetime64[M]").astype("datetime64[D]")
    out.flag(
        "fact",
        is_contribution & (first_day.astype(np.int64) != start),
        "valid_from",
        "contributions cover whole months: start on the 1st",
    )
    next_day = (until + 1).astype("datetime64[D]")
    month_end = next_day.astype("datetime64[M]").astype("datetime64[D]") == next_day
    out.flag(
        "fact",
        is_contribution & (until != NONE_DAY) & ~month_end,
        "valid_until",
        "contributions cover whole months: end on a month's last day",
    )
    source_ok = np.array([_clean_text(v, required=True, max_len=40) for v in sources], dtype=bool)[
        source_code
    ]
    out.flag("fact", ~source_ok, "source", "is not clean text of at most 40 characters")
    # The live natural key (person, kind, detail, source, valid_from) is unique.
    label = (kind_code * len(details) + detail_code) * len(sources) + source_code
    labels = len(kinds) * len(details) * len(sources)
    if len(person):
        # One integer per natural key: person, (kind, detail, source), valid_from.
        span = int(start.max() - start.min()) + 1
        key = (person * labels + label) * span + (start - start.min())
        _, first_fact = np.unique(key, return_index=True)
        repeated = np.ones(len(person), dtype=bool)
        repeated[first_fact] = False
        out.flag("fact", repeated, "valid_from", "repeats a live fact of the same source")
    return out.problems


def _person_rows(tables: Tables) -> list[dict[str, Any]]:
    columns = {
        "national_id": tables.national_id,
        "last_name": tables.last_name,
        "first_name": tables.first_name,
        "patronymic": tables.patronymic,
        "birth_on": iso_dates(tables.birth_on),
        "sex": tables.sex,
        "phone": tables.phone,
        "language": tables.language,
        "region_kato": tables.region_kato,
        "address": tables.address,
        "death_on": iso_dates(tables.death_on),
    }
    keys = list(columns)
    return [
        dict(zip(keys, row, strict=True))
        for row in zip(*(c.tolist() for c in columns.values()), strict=True)
    ]


def _as_date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _scalar_verdict(
    table: Table, row: int, validate: Callable[[], Any], as_is: Callable[[], Any]
) -> list[Problem]:
    """The importers' validator on one generated row: its RowError, or that it would store
    the row differently from how it was generated (`as_is`); nothing when it takes it as is."""
    try:
        stored = validate()
    except RowError as exc:
        return [Problem(table, row, exc.field, exc.reason)]
    if stored != as_is():
        return [Problem(table, row, "*", "the validator would store it differently")]
    return []


def _person_as_is(row: dict[str, Any]) -> PersonRow:
    return PersonRow(
        row["national_id"], "KZ", row["last_name"], row["first_name"], row["patronymic"],
        date.fromisoformat(row["birth_on"]), row["sex"], row["phone"], row["language"],
        row["region_kato"], row["address"], _as_date(row["death_on"]),
    )  # fmt: skip


def _member_as_is(row: dict[str, Any]) -> MemberRow:
    return MemberRow(
        row["family_ref"], row["region_kato"], row["national_id"], row["role"],
        date.fromisoformat(row["from_on"]), _as_date(row["until_on"]),
    )  # fmt: skip


def _fact_as_is(row: dict[str, Any], kind: str) -> FactRow:
    return FactRow(
        row["national_id"], kind, row["detail"], row["qualifier"], row["amount_minor"],
        row["quantity"], date.fromisoformat(row["valid_from"]), _as_date(row["valid_until"]),
    )  # fmt: skip


def check_scalar(tables: Tables, *, today: date) -> list[Problem]:
    """The same verdict from the importers' own validators, one row at a time (slow)."""
    problems: list[Problem] = []
    persons = _person_rows(tables)
    for i, row in enumerate(persons):
        verdict = _scalar_verdict(
            "person", i, partial(validate_person, row, today=today), partial(_person_as_is, row)
        )
        problems.extend(verdict)

    from_on = iso_dates(tables.from_on).tolist()
    until_on = iso_dates(tables.until_on).tolist()
    refs = tables.family_ref.tolist()
    katos = tables.family_kato.tolist()
    for i, (fam, role) in enumerate(
        zip(tables.member_family.tolist(), tables.role.tolist(), strict=True)
    ):
        row = {
            "family_ref": refs[fam],
            "region_kato": katos[fam],
            "national_id": persons[i]["national_id"],
            "role": role,
            "from_on": from_on[i],
            "until_on": until_on[i],
        }
        verdict = _scalar_verdict(
            "member", i, partial(validate_member, row, today=today), partial(_member_as_is, row)
        )
        problems.extend(verdict)
    problems.extend(_scalar_cross_rows(tables, persons))

    columns = (
        tables.fact_person.tolist(),
        tables.fact_kind.tolist(),
        tables.fact_detail.tolist(),
        tables.fact_qualifier.tolist(),
        optional_ints(tables.fact_amount).tolist(),
        optional_ints(tables.fact_quantity).tolist(),
        iso_dates(tables.fact_valid_from).tolist(),
        iso_dates(tables.fact_valid_until).tolist(),
        tables.fact_source.tolist(),
    )
    seen: set[tuple[int, str, str, str, str]] = set()
    for i, (person, kind, detail, qualifier, amount, quantity, start, until, source) in enumerate(
        zip(*columns, strict=True)
    ):
        row = {
            "national_id": persons[person]["national_id"],
            "detail": detail,
            "qualifier": qualifier,
            "amount_minor": amount,
            "quantity": quantity,
            "valid_from": start,
            "valid_until": until,
        }
        verdict = _scalar_verdict(
            "fact",
            i,
            partial(validate_fact, row, kind=kind, today=today),
            partial(_fact_as_is, row, kind),
        )
        if verdict:
            problems.extend(verdict)
        elif not (isinstance(source, str) and source == source.strip() and 0 < len(source) <= 40):
            problems.append(
                Problem("fact", i, "source", "is not clean text of at most 40 characters")
            )
        elif (key := (person, kind, detail, source, start)) in seen:
            problems.append(
                Problem("fact", i, "valid_from", "repeats a live fact of the same source")
            )
        else:
            seen.add(key)
    return problems


def _scalar_cross_rows(tables: Tables, persons: list[dict[str, Any]]) -> list[Problem]:
    problems: list[Problem] = []
    by_family: dict[int, list[int]] = {}
    for i, fam in enumerate(tables.member_family.tolist()):
        by_family.setdefault(fam, []).append(i)
    roles = tables.role.tolist()
    births = [
        date.fromisoformat(p["birth_on"]) if _is_iso(p["birth_on"]) else None for p in persons
    ]
    ids_seen: set[str] = set()
    for i, person in enumerate(persons):
        if person["national_id"] in ids_seen:
            problems.append(Problem("member", i, "national_id", "appears more than once"))
        ids_seen.add(person["national_id"])
    for members in by_family.values():
        heads = [i for i in members if roles[i] == "head"]
        if len(heads) != 1:
            problems.extend(
                Problem("member", i, "role", "a family needs exactly one head") for i in heads
            )
            continue
        head = heads[0]
        elders = [i for i in members if roles[i] in ("head", "spouse")]
        for i in members:
            birth = births[i]
            if birth is None:
                continue
            try:
                if roles[i] == "child":
                    for elder in elders:
                        if (elder_birth := births[elder]) is not None:
                            check_child_younger(child_birth_on=birth, parent_birth_on=elder_birth)
                elif roles[i] == "parent" and (head_birth := births[head]) is not None:
                    check_child_younger(child_birth_on=head_birth, parent_birth_on=birth)
            except RowError as exc:
                problems.append(Problem("member", i, exc.field, exc.reason))
    return problems


def _is_iso(value: Any) -> bool:
    try:
        date.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def check(tables: Tables, *, today: date, mode: Mode = "vector") -> list[Problem]:
    """Problems in generated rows, by the vectorised rules, the validators, or both."""
    problems: list[Problem] = []
    if mode in ("vector", "both"):
        problems.extend(check_vectorised(tables, today=today))
    if mode in ("scalar", "both"):
        problems.extend(check_scalar(tables, today=today))
    return problems
