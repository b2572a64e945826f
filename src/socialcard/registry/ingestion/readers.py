"""Streamed readers for CSV, JSON Lines and Parquet files: a file is read chunk by chunk.

No reader holds a whole file in memory. Row numbers are what a person fixing the file needs:
the physical line number for CSV (the header is line 1) and JSON Lines, the 1-based position
for Parquet.
"""

from __future__ import annotations

import hashlib
import io
from collections import deque
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from socialcard.registry.ingestion.errors import FileRefused
from socialcard.registry.ingestion.sources import (
    ROW_FIELD,
    FieldType,
    RawChunk,
    Reject,
    SourceSpec,
    make_reject,
)
from socialcard.registry.validation_columnar import holds_byte

CSV_BLOCK_BYTES = 1 << 20
MAX_LINE_BYTES = 1 << 20  # a JSON line longer than this is not a registry row


class FileFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


_EXTENSIONS = {
    ".csv": FileFormat.CSV,
    ".jsonl": FileFormat.JSONL,
    ".ndjson": FileFormat.JSONL,
    ".parquet": FileFormat.PARQUET,
    ".pq": FileFormat.PARQUET,
}


class ReadFailure(Exception):
    """The file cannot be read past this point (the message names where and why)."""


class ChunkReader(Protocol):
    """A streamed reader: chunks of raw rows and how far it has got."""

    total: int

    def position(self) -> int: ...

    def chunks(self) -> Iterator[RawChunk]: ...

    def close(self) -> None: ...


def detect_format(path: Path, explicit: str | None) -> FileFormat:
    """The explicit format, or the one the file's extension names."""
    if explicit:
        try:
            return FileFormat(explicit.lower())
        except ValueError:
            raise FileRefused(
                f"unknown format {explicit!r}; use one of csv, jsonl, parquet"
            ) from None
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise FileRefused(
            f"cannot tell the format of {path.name!r} from its extension; "
            "name it .csv, .jsonl or .parquet, or pass --format"
        )
    return found


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_reader(
    path: Path, file_format: FileFormat, spec: SourceSpec, *, chunk_rows: int
) -> ChunkReader:
    """A reader for the file; FileRefused when it is empty, unreadable or has the wrong columns."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise FileRefused(f"cannot read {path}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise FileRefused(f"{path} is not a file")
    if size == 0:
        raise FileRefused(f"{path.name} is empty")
    if file_format is FileFormat.CSV:
        return CsvReader(path, spec, chunk_rows=chunk_rows, size=size)
    if file_format is FileFormat.JSONL:
        return JsonLinesReader(path, chunk_rows=chunk_rows, size=size)
    return ParquetReader(path, spec, chunk_rows=chunk_rows)


def check_columns(spec: SourceSpec, names: list[str]) -> None:
    """Refuse a file whose header lacks a required column, repeats one or has unknown ones."""
    problems: list[str] = []
    details: list[dict[str, Any]] = []
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"repeated columns: {', '.join(duplicates)}")
        details += [{"field": name, "reason": "repeated column"} for name in duplicates]
    missing = [name for name in spec.required_names if name not in names]
    if missing:
        problems.append(f"missing required columns: {', '.join(missing)}")
        details += [{"field": name, "reason": "required column missing"} for name in missing]
    unknown = [name for name in names if name not in spec.field_names]
    if unknown:
        problems.append(
            f"unknown columns: {', '.join(repr(n) for n in unknown)} "
            f"({spec.name} accepts: {', '.join(f.name for f in spec.fields)})"
        )
        details += [{"field": name, "reason": "unknown column"} for name in unknown]
    if problems:
        raise FileRefused("file refused, " + "; ".join(problems), details=details)


class _CountingFile(io.RawIOBase):
    """A binary file that counts the bytes handed out (progress for streamed parsers)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._file.readinto(buffer)
        self.consumed += count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


class _InvalidRow(NamedTuple):
    line: int
    span: int
    text: str
    reason: str


def _may_hold_newline(column: Any) -> bool:
    """False when a text column certainly holds no newline (a scan of its raw bytes)."""
    if not pa.types.is_string(column.type):
        return True
    return holds_byte(column, ord("\n"))


class CsvReader:
    """CSV with a header row; every column read as text in blocks by pyarrow.

    Rows with the wrong number of values (often broken quoting) are handed to a callback with
    their line number and become rejects; the lines they span are skipped when numbering the
    good rows that follow.
    """

    def __init__(self, path: Path, spec: SourceSpec, *, chunk_rows: int, size: int) -> None:
        self.total = size
        self._chunk_rows = chunk_rows
        self._file = _CountingFile(path)
        self._invalid: deque[_InvalidRow] = deque()
        self._next_line = 2
        # Blocks no bigger than a chunk needs, so a small chunk size really streams small.
        block_size = min(CSV_BLOCK_BYTES, max(64 << 10, chunk_rows * 256))
        try:
            self._reader = pa_csv.open_csv(
                self._file,
                read_options=pa_csv.ReadOptions(block_size=block_size, use_threads=False),
                parse_options=pa_csv.ParseOptions(
                    newlines_in_values=True,
                    ignore_empty_lines=False,
                    invalid_row_handler=self._on_invalid,
                ),
                convert_options=pa_csv.ConvertOptions(
                    column_types={name: pa.string() for name in spec.field_names},
                    strings_can_be_null=False,
                ),
            )
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
            self._file.close()
            raise FileRefused(f"{path.name} is not a readable CSV file: {exc}") from None
        try:
            check_columns(spec, list(self._reader.schema.names))
        except FileRefused:
            self._file.close()
            raise

    def _on_invalid(self, row: Any) -> str:
        text = str(row.text)
        if row.number is None:
            # Without a line number the rows after it cannot be numbered truthfully.
            raise ReadFailure(f"malformed CSV row near {text[:80]!r}")
        reason = (
            f"has {row.actual_columns} values, the header has {row.expected_columns} columns"
            " (check the quoting and separators)"
        )
        self._invalid.append(_InvalidRow(int(row.number), text.count("\n") + 1, text, reason))
        return "skip"

    def position(self) -> int:
        return self._file.consumed

    def _number(self, batch: Any, rejects: list[Reject]) -> list[int]:
        """Line numbers of a batch's rows, skipping the lines of rows rejected by the parser."""
        count = batch.num_rows
        extra: list[int] | None = None
        if count and batch.num_columns and any(map(_may_hold_newline, batch.columns)):
            newlines: Any = pc.count_substring(batch.column(0), "\n")
            for column in batch.columns[1:]:
                newlines = pc.add(newlines, pc.count_substring(column, "\n"))
            if pc.max(newlines).as_py():
                extra = newlines.to_pylist()
        start = self._next_line
        if extra is None and (not self._invalid or self._invalid[0].line >= start + count):
            self._next_line = start + count
            return list(range(start, start + count))
        numbers: list[int] = []
        line = start
        invalid = self._invalid
        for index in range(count):
            while invalid and invalid[0].line <= line:
                bad = invalid.popleft()
                rejects.append(make_reject(bad.line, ROW_FIELD, bad.reason, {"line": bad.text}))
                if bad.line == line:
                    line += bad.span
            numbers.append(line)
            line += 1 + (extra[index] if extra is not None else 0)
        self._next_line = line
        return numbers

    def chunks(self) -> Iterator[RawChunk]:
        batches: list[Any] = []
        numbers: list[int] = []
        rejects: list[Reject] = []
        while True:
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
                raise ReadFailure(
                    f"CSV parse error after line {self._next_line - 1}: {exc}"
                ) from None
            numbers += self._number(batch, rejects)
            batches.append(batch)
            while len(numbers) >= self._chunk_rows:
                # Exactly chunk_rows rows per chunk; the rest of the block starts the next one.
                table = pa.Table.from_batches(batches, schema=self._reader.schema)
                size = self._chunk_rows
                yield RawChunk(numbers[:size], None, None, table.slice(0, size), rejects, False)
                rest = table.slice(size)
                batches = rest.to_batches() if rest.num_rows else []
                numbers, rejects = numbers[size:], []
        while self._invalid:
            bad = self._invalid.popleft()
            rejects.append(make_reject(bad.line, ROW_FIELD, bad.reason, {"line": bad.text}))
        if numbers or rejects:
            table = pa.Table.from_batches(batches, schema=self._reader.schema)
            yield RawChunk(numbers, None, None, table, rejects, check_types=False)

    def close(self) -> None:
        self._file.close()


class JsonLinesReader:
    """One JSON object per line, read line by line; a bad line is a reject, not a failure."""

    def __init__(self, path: Path, *, chunk_rows: int, size: int) -> None:
        self.total = size
        self._chunk_rows = chunk_rows
        self._file = path.open("rb")
        self._consumed = 0

    def position(self) -> int:
        return self._consumed

    def chunks(self) -> Iterator[RawChunk]:
        numbers: list[int] = []
        lines: list[bytes] = []
        rejects: list[Reject] = []
        number = 0
        while True:
            line = self._file.readline(MAX_LINE_BYTES)
            if not line:
                break
            number += 1
            self._consumed += len(line)
            if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
                skipped = self._skip_rest_of_line()
                rejects.append(
                    make_reject(
                        number,
                        ROW_FIELD,
                        f"line is longer than {MAX_LINE_BYTES} bytes ({len(line) + skipped})",
                        {"line": line[:200].decode("utf-8", "replace")},
                    )
                )
                continue
            numbers.append(number)
            lines.append(line)
            if len(lines) >= self._chunk_rows:
                yield RawChunk(numbers, None, lines, None, rejects, check_types=True)
                numbers, lines, rejects = [], [], []
        if lines or rejects:
            yield RawChunk(numbers, None, lines, None, rejects, check_types=True)

    def _skip_rest_of_line(self) -> int:
        skipped = 0
        while True:
            part = self._file.readline(MAX_LINE_BYTES)
            skipped += len(part)
            self._consumed += len(part)
            if not part or part.endswith(b"\n"):
                return skipped

    def close(self) -> None:
        self._file.close()


def _type_fits(declared: FieldType, arrow_type: Any) -> bool:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if (
        pa.types.is_null(arrow_type)
        or pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
    ):
        return True
    if declared is FieldType.DATE:
        return bool(pa.types.is_date(arrow_type))
    if declared is FieldType.INTEGER:
        return bool(pa.types.is_integer(arrow_type))
    return False


class ParquetReader:
    """Parquet read one record batch at a time; column types are checked against the source."""

    def __init__(self, path: Path, spec: SourceSpec, *, chunk_rows: int) -> None:
        self._chunk_rows = chunk_rows
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise FileRefused(
                f"{path.name} is not a readable Parquet file (truncated or corrupt?): {exc}"
            ) from None
        schema = self._file.schema_arrow
        check_columns(spec, list(schema.names))
        types = {f.name: f.type for f in spec.fields}
        wrong = [
            (name, str(schema.field(name).type))
            for name in schema.names
            if not _type_fits(types[name], schema.field(name).type)
        ]
        if wrong:
            self._file.close()
            raise FileRefused(
                "file refused, columns of the wrong type: "
                + "; ".join(
                    f"{name} is {found}, expected {types[name].value}" for name, found in wrong
                ),
                details=[{"field": name, "reason": f"wrong type {found}"} for name, found in wrong],
            )
        self.total = int(self._file.metadata.num_rows)
        self._done = 0

    def position(self) -> int:
        return self._done

    def chunks(self) -> Iterator[RawChunk]:
        batches = self._file.iter_batches(batch_size=self._chunk_rows)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except (pa.ArrowException, OSError) as exc:
                raise ReadFailure(f"Parquet read error after row {self._done}: {exc}") from None
            start = self._done + 1
            self._done += batch.num_rows
            numbers = list(range(start, start + batch.num_rows))
            table = pa.Table.from_batches([batch])
            yield RawChunk(numbers, None, None, table, [], check_types=False)

    def close(self) -> None:
        self._file.close()
