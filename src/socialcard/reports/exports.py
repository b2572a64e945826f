"""Tables as CSV (streamed) and XLSX downloads.

Aggregates by region suppress small counts: a count from 1 to 4 is written as "<5", and so are
the sums of a row whose count is suppressed, so that no exported figure points at a handful of
families. Row-level exports (a list of families) are audited reads and stream as they are read.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import xlsxwriter

SUPPRESSED = "<5"
MIN_COUNT = 5


@dataclass(frozen=True)
class Column:
    """A column: its key in the rows, the message key of its title, and its kind."""

    key: str
    title: str
    kind: str = "text"  # text | count | money | share (a share of counts, hidden with them)


@dataclass
class Table:
    """A named table: columns and rows (an iterable, read once, so it can stream)."""

    name: str
    columns: list[Column]
    rows: Iterable[dict[str, Any]]
    suppress: bool = False


def suppressed(row: dict[str, Any], columns: list[Column]) -> dict[str, Any]:
    """A row with counts 1–4 written as "<5", and its money and shares hidden when a count is."""
    out = dict(row)
    hidden = False
    for column in columns:
        if column.kind == "count":
            count = int(row.get(column.key) or 0)
            if 0 < count < MIN_COUNT:
                out[column.key] = SUPPRESSED
                hidden = True
    if hidden:
        for column in columns:
            value = row.get(column.key)
            if (column.kind == "money" and value) or (column.kind == "share" and value != ""):
                out[column.key] = SUPPRESSED
    return out


def _cells(table: Table, row: dict[str, Any]) -> list[Any]:
    if table.suppress:
        row = suppressed(row, table.columns)
    cells: list[Any] = []
    for column in table.columns:
        value = row.get(column.key)
        if column.kind == "money" and isinstance(value, int):
            value = f"{value / 100:.2f}"
        cells.append("" if value is None else value)
    return cells


def csv_lines(table: Table, title: Callable[[str], str]) -> Iterator[str]:
    """The table as CSV lines (UTF-8 with a BOM so spreadsheet programs read Cyrillic)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([title(c.title) for c in table.columns])
    yield "\ufeff" + buffer.getvalue()
    for row in table.rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(_cells(table, row))
        yield buffer.getvalue()


def xlsx_file(table: Table, title: Callable[[str], str]) -> Iterator[bytes]:
    """The table as an XLSX workbook, written row by row to a temporary file (constant memory)
    and then streamed in chunks."""
    with tempfile.TemporaryFile() as handle:
        workbook = xlsxwriter.Workbook(handle, {"constant_memory": True, "in_memory": False})
        sheet = workbook.add_worksheet(table.name[:31])
        bold = workbook.add_format({"bold": True})
        money = workbook.add_format({"num_format": "#,##0.00"})
        for index, column in enumerate(table.columns):
            sheet.write_string(0, index, title(column.title), bold)
            sheet.set_column(index, index, 16 if column.kind != "text" else 22)
        for number, row in enumerate(table.rows, start=1):
            cells = _cells(table, row)
            for index, (column, value) in enumerate(zip(table.columns, cells, strict=True)):
                if column.kind == "money" and value not in ("", SUPPRESSED):
                    sheet.write_number(number, index, float(value), money)
                elif column.kind == "count" and isinstance(value, int):
                    sheet.write_number(number, index, value)
                else:
                    sheet.write_string(number, index, str(value))
        workbook.close()
        handle.seek(0)
        while chunk := handle.read(64 * 1024):
            yield chunk
