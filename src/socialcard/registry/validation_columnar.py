"""Column-at-a-time validation of person rows: the fast path of a file import.

`validate_persons` takes a pyarrow table of person columns as the file readers deliver them
(text columns; Parquet may also carry real dates) and answers, for the whole table at once,
which rows certainly pass every rule of `validation.validate_person`, with their typed values.
It is conservative by construction: a row it cannot decide cheaply (surrounding whitespace,
punctuation in a name, a phone to normalise, a death date, anything unusual) is simply not
accepted here and goes through the scalar validator, which stays the authority and names the
field and reason of a reject. For every row it accepts, the values are exactly the ones the
scalar validator returns (tests/registry/test_validation_columnar.py checks that property on
random rows).

The rules are evaluated with pyarrow.compute and numpy on the raw bytes: the ИИН check digit,
its encoded birth date and sex, the region prefix and the exact text shapes. Names are accepted
only when every character is alphabetic for both Python and pyarrow (the check below compares
their Unicode tables once per process, so a pyarrow built on a newer Unicode version cannot
accept a letter Python does not know).
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcard.registry.regions import REGIONS
from socialcard.registry.validation import EARLIEST_BIRTH, PersonRow

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
_LANGUAGES = pa.array(["kk", "ru", "en"])
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
# ИИН check digit weights: the first pass, and the second one used when the first gives 10.
_WEIGHTS_1 = np.arange(1, 12, dtype=np.int64)
_WEIGHTS_2 = np.array([3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2], dtype=np.int64)


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
    digits = national_id.fixed(ok, 12)
    ok &= _digits_ok(digits)
    century = digits[:, 6]
    # Centuries 1-2 (the 1800s) are always before EARLIEST_BIRTH: left to the scalar's reason.
    ok &= (century >= 3) & (century <= 6)
    year = np.where(century <= 4, 1900, 2000) + digits[:, 0] * 10 + digits[:, 1]
    month = digits[:, 2] * 10 + digits[:, 3]
    day = digits[:, 4] * 10 + digits[:, 5]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _DAYS_IN_MONTH[np.clip(month, 0, 12)] + ((month == 2) & leap)
    ok &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
    first = digits[:, :11]
    check = (first @ _WEIGHTS_1) % 11
    check = np.where(check == 10, (first @ _WEIGHTS_2) % 11, check)
    ok &= (check != 10) & (check == digits[:, 11])
    born = _days_from_civil(year, month, day)

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
    male = century % 2 == 1
    ok &= np.where(male, _np(pc.equal(sex, "M")), _np(pc.equal(sex, "F")))

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
    ok &= language.missing | _np(pc.is_in(language.array, value_set=_LANGUAGES))

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
