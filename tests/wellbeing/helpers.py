"""Hand-made families as the rules engine's input tables, and a small test methodology."""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow as pa

from socialcard.registry.snapshot import FACT_SCHEMA, PERSON_SCHEMA

PACKS = Path(__file__).resolve().parents[2] / "packs"
PERIOD = "2026-03"
WAGES = 100_000_00  # tiyn a month: above the test methodology's low-income line per person

# Points: owns_home +10, has_vehicle +5, student +3, single_member -1, disabled -7,
# many_children -10, low_income -20. Levels: A >= 10, B >= 0, C >= -15, E below.
METHODOLOGY = """\
id: kz.wellbeing.test
title: {kk: сынақ, ru: тест, en: test}
legal_basis:
  text: {kk: сынақ, ru: тест, en: test}
  citation: tests only
effective_from: 2024-01-01
parameters:
  low_income_line:
    unit: money
    values: {2024-01-01: 50000_00}
dimensions:
  economic:
    title: {kk: экономикалық, ru: экономическое, en: economic}
    indicators:
      low_income:
        title: {kk: табыс төмен, ru: низкий доход, en: low income}
        when: income_per_capita_month < low_income_line
        points: -20
      has_vehicle:
        title: {kk: көлік, ru: автомобиль, en: vehicle}
        when: sum(member.vehicle_count) > 0
        points: 5
  social:
    title: {kk: әлеуметтік, ru: социальное, en: social}
    indicators:
      many_children:
        title: {kk: көп бала, ru: много детей, en: many children}
        when: children_under_18 >= 3
        points: -10
      single_member:
        title: {kk: жалғыз, ru: один, en: alone}
        when: family_size = 1
        points: -1
  housing:
    title: {kk: тұрғын үй, ru: жильё, en: housing}
    indicators:
      owns_home:
        title: {kk: үйі бар, ru: есть жильё, en: owns a home}
        when: sum(member.real_estate_count) > 0
        points: 10
  health:
    title: {kk: денсаулық, ru: здоровье, en: health}
    indicators:
      disabled:
        title: {kk: мүгедектік, ru: инвалидность, en: disability}
        when: disabled_members > 0
        points: -7
  education:
    title: {kk: білім, ru: образование, en: education}
    indicators:
      student:
        title: {kk: студент, ru: студент, en: student}
        when: count(member) filter (where member.studying) > 0
        points: 3
levels:
  - code: A
    name: {kk: a, ru: а, en: a}
    min_score: 10
    name_confidence: confirmed
    cut_confidence: confirmed
  - {code: B, name: {kk: b, ru: б, en: b}, min_score: 0}
  - {code: C, name: {kk: c, ru: в, en: c}, min_score: -15}
  - {code: E, name: {kk: e, ru: э, en: e}, name_confidence: confirmed}
"""


def make_pack(root: Path, text: str = METHODOLOGY, name: str = "test.yaml") -> Path:
    """A rule pack folder (the Kazakhstan pack.yaml) with one methodology file in wellbeing/."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(PACKS / "kz" / "pack.yaml", root / "pack.yaml")
    folder = root / "wellbeing"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Member:
    age: int = 40
    role: str = "head"
    wages: int | None = WAGES
    facts: list[tuple[str, str]] = field(default_factory=list)  # (kind, detail)
    region: str = "751110000"


_ids = itertools.count(1)


def tables(families: dict[int, list[Member]]) -> tuple[pa.Table, pa.Table]:
    """The engine's `person` and `fact` tables for families keyed by family id."""
    persons: list[dict[str, object]] = []
    facts: list[dict[str, object]] = []
    for family_id, members in families.items():
        for m in members:
            pid = next(_ids)
            persons.append(
                {
                    "person_id": pid,
                    "family_id": family_id,
                    "role": m.role,
                    "sex": "F",
                    "birth_on": date(2026 - m.age, 1, 1),
                    "death_on": None,
                    "region_kato": m.region,
                }
            )
            extra = [("income", "wages", m.wages)] if m.wages else []
            for kind, detail, amount in extra + [(k, d, None) for k, d in m.facts]:
                facts.append(
                    {
                        "person_id": pid,
                        "kind": kind,
                        "detail": detail,
                        "qualifier": None,
                        "amount_minor": amount,
                        "quantity": 1 if kind == "property" else None,
                        "valid_from": date(2020, 1, 1),
                        "valid_until": None,
                        "source": "test",
                    }
                )
    return (
        pa.Table.from_pylist(persons, schema=PERSON_SCHEMA),
        pa.Table.from_pylist(facts, schema=FACT_SCHEMA),
    )


def couple(*extra: Member, wages: int | None = WAGES, **head: object) -> list[Member]:
    """Two adults (by default both earning; per-capita income above the line) and others."""
    spouse = Member(age=38, role="spouse", wages=wages)
    return [Member(wages=wages, **head), spouse, *extra]  # type: ignore[arg-type]


def child(age: int, *facts: tuple[str, str]) -> Member:
    """A child without income."""
    return Member(age=age, role="child", wages=None, facts=list(facts))


HOME = ("property", "real_estate")
CAR = ("property", "vehicle")

# Hand-made families at each level boundary: family id -> (members, expected score, level).
BOUNDARY_FAMILIES: dict[int, tuple[list[Member], int, str]] = {
    1: (couple(facts=[HOME]), 10, "A"),  # exactly A's cut-off
    2: ([Member(facts=[HOME])], 9, "B"),  # one below A
    3: (couple(), 0, "B"),  # exactly B's cut-off
    4: ([Member()], -1, "C"),  # one below B
    5: (couple(wages=None, facts=[CAR]), -15, "C"),  # low income + vehicle: exactly C
    6: ([Member(wages=None, facts=[CAR])], -16, "E"),  # one below C
    7: (couple(child(5), child(7), child(9), wages=3 * WAGES), -10, "C"),
    8: (couple(child(20, ("study", "university")), facts=[HOME, CAR]), 18, "A"),
    9: (couple(child(15, ("disability", "child"))), -7, "C"),
    10: (couple(child(5), child(7), child(9)), -30, "E"),  # 200,000 for 5: low income
}
