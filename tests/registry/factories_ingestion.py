"""Small builders for ingestion tests: valid rows and the files that carry them."""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from socialcard.registry.identifiers import make_iin

_serials = itertools.count(1)
_issued: set[str] = set()


def iin(birth_on: date = date(1985, 3, 10), sex: str = "M") -> str:
    """A fresh valid ИИН for a birth date and sex: never one this process has handed out
    before (serials wrap at 10,000, so a date used often would otherwise repeat one)."""
    while True:
        value = make_iin(birth_on, sex, next(_serials) % 10000)
        if value is not None and value not in _issued:
            _issued.add(value)
            return value


def bad_check_digit(value: str) -> str:
    """The same ИИН with a wrong last digit."""
    return value[:11] + str((int(value[11]) + 1) % 10)


def person_row(
    *, birth_on: date = date(1985, 3, 10), sex: str = "M", **overrides: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "national_id": iin(birth_on, sex),
        "last_name": "Ахметов" if sex == "M" else "Ахметова",
        "first_name": "Нурлан" if sex == "M" else "Айгуль",
        "patronymic": "",
        "birth_on": birth_on.isoformat(),
        "sex": sex,
        "phone": "",
        "language": "kk",
        "region_kato": "751110000",
        "address": "",
        "death_on": "",
    }
    row.update(overrides)
    return row


def many_person_rows(count: int) -> list[dict[str, Any]]:
    """Person rows with distinct ИИН (spread over birth dates so 4-digit serials never repeat)."""
    return [
        person_row(birth_on=date(1950 + i % 60, 1 + i // 60 % 12, 1 + i // 720 % 28))
        for i in range(count)
    ]


def member_row(national_id: str, family_ref: str, role: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "family_ref": family_ref,
        "region_kato": "751110000",
        "national_id": national_id,
        "role": role,
        "from_on": "2020-01-01",
        "until_on": "",
    }
    row.update(overrides)
    return row


def income_row(national_id: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "national_id": national_id,
        "detail": "wages",
        "amount_minor": "25000000",
        "valid_from": "2025-01-01",
        "valid_until": "",
    }
    row.update(overrides)
    return row


def write_csv(
    path: Path, rows: Sequence[Mapping[str, Any]], columns: Iterable[str] | None = None
) -> Path:
    names = list(columns) if columns is not None else list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: Sequence[Any]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(
                (row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n"
            )
    return path


def write_parquet(
    path: Path, rows: Sequence[Mapping[str, Any]], row_group_size: int | None = None
) -> Path:
    pq.write_table(
        pa.Table.from_pylist([dict(r) for r in rows]), path, row_group_size=row_group_size
    )
    return path
