"""The parsed form of a rule pack: programs, versions, parameters, variables, cases."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from socialcard.rules.engine.periods import Period, PeriodKind

LANGUAGES: tuple[str, ...] = ("kk", "ru", "en")

Level = Literal["person", "family"]
Entity = Literal["person", "family"]
Scalar = int | Decimal | bool | date | str
ParamValue = Scalar | dict[int, Scalar]


class T(StrEnum):
    """The type of an expression."""

    BOOL = "bool"
    INT = "int"
    NUM = "num"
    DATE = "date"
    TEXT = "text"
    NULL = "null"  # a NULL literal: fits any type
    ANY = "any"  # unknown because of an earlier problem: never reported twice

    @property
    def numeric(self) -> bool:
        return self in (T.INT, T.NUM, T.NULL, T.ANY)


# How a value is shown in explanations; `money` is an integer number of minor units.
UNITS = frozenset(
    {
        "money",
        "ratio",
        "percent",
        "count",
        "years",
        "months",
        "days",
        "date",
        "text",
        "bool",
        "number",
    }
)


# What a parameter of each unit may be set to when nothing narrower is declared: wide enough
# for any real reform, narrow enough that every stage stays within 128-bit decimals (money
# times a coefficient) and no what-if computes with a number like 1e999999999.
UNIT_RANGES: dict[str, tuple[Decimal, Decimal]] = {
    "money": (Decimal(0), Decimal(10**15)),
    "ratio": (Decimal(0), Decimal(10**6)),
    "percent": (Decimal(0), Decimal(10**4)),
    "count": (Decimal(0), Decimal(10**6)),
    "years": (Decimal(0), Decimal(200)),
    "months": (Decimal(0), Decimal(2_400)),
    "days": (Decimal(0), Decimal(100_000)),
    "number": (Decimal(-(10**9)), Decimal(10**9)),
}
# A what-if value is written with at most this many digits after the point.
MAX_DECIMAL_PLACES = 12
DATE_RANGE = (date(1900, 1, 1), date(2199, 12, 31))


def check_override(param: Parameter, value: Scalar) -> Scalar:
    """`value` as an override of `param` (an integer stays an integer), or ValueError saying
    why not: the parameter's type, a finite number, at most 12 decimal places, its range."""
    if param.type is T.BOOL or isinstance(value, bool):
        if param.type is not T.BOOL or not isinstance(value, bool):
            raise ValueError(f"must be {'true or false' if param.type is T.BOOL else 'a number'}")
        return value
    if param.type is T.DATE or isinstance(value, date):
        if param.type is not T.DATE or not isinstance(value, date):
            raise ValueError("must be a date" if param.type is T.DATE else "must be a number")
        if not DATE_RANGE[0] <= value <= DATE_RANGE[1]:
            raise ValueError(f"must be between {DATE_RANGE[0]} and {DATE_RANGE[1]}")
        return value
    if param.type is T.TEXT or isinstance(value, str):
        if param.type is not T.TEXT or not isinstance(value, str):
            raise ValueError("must be text" if param.type is T.TEXT else "must be a number")
        if len(value) > 200:
            raise ValueError("at most 200 characters")
        return value
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError("must be a finite number")
    bounds = param.bounds
    if bounds is not None and not bounds[0] <= number <= bounds[1]:
        raise ValueError(f"must be between {bounds[0]} and {bounds[1]} ({param.unit})")
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        raise ValueError(f"at most {MAX_DECIMAL_PLACES} decimal places")
    if param.type is T.INT:
        if number != number.to_integral_value():
            unit = " (money is in minor units)" if param.unit == "money" else ""
            raise ValueError(f"must be a whole number{unit}")
        return int(number)
    return value


@dataclass(frozen=True)
class Loc:
    """Where something is written: file and 1-based line."""

    file: str
    line: int


@dataclass(frozen=True)
class Source:
    """An expression as written, with where it was written and who owns it."""

    text: str
    loc: Loc
    owner: str  # program id, or the pack id for pack-level definitions


@dataclass
class Parameter:
    """A dated parameter: each value applies from its date until the next one."""

    name: str
    owner: str
    unit: str
    loc: Loc
    values: list[tuple[date, ParamValue]]
    title: dict[str, str] = field(default_factory=dict)
    source: str = ""
    type: T = T.ANY
    keys: tuple[int, ...] = ()  # for a table parameter: the integer keys of its rows
    # The values a what-if may give it (`range: [low, high]` in the pack), else its unit's.
    range: tuple[Decimal, Decimal] | None = None

    @property
    def is_table(self) -> bool:
        return bool(self.keys)

    @property
    def bounds(self) -> tuple[Decimal, Decimal] | None:
        """The declared range, else the unit's (None for a boolean, date or text)."""
        return self.range or UNIT_RANGES.get(self.unit)

    def value_on(self, day: date) -> ParamValue | None:
        """The value in force on `day`, or None before the first date."""
        current: ParamValue | None = None
        for start, value in self.values:
            if start <= day:
                current = value
            else:
                break
        return current


@dataclass
class Variable:
    """A derived variable at person or family level."""

    name: str
    level: Level
    expr: Source
    unit: str = "number"
    title: dict[str, str] = field(default_factory=dict)


@dataclass
class Condition:
    """A named eligibility condition with an explanation template per language."""

    name: str
    expr: Source
    explain: dict[str, str]


@dataclass(frozen=True)
class Rounding:
    """How an amount in minor units is rounded: `mode` to a multiple of `unit` minor units."""

    mode: Literal["half_up", "ceil", "floor", "none"] = "none"
    unit: int = 1
    why: str = ""


@dataclass
class Version:
    """The program's rules from `effective_from` until the next version."""

    index: int
    effective_from: date
    loc: Loc
    note: str = ""
    citation: str = ""
    variables: dict[str, Variable] = field(default_factory=dict)
    conditions: dict[str, Condition] = field(default_factory=dict)
    amount: Source | None = None
    rounding: Rounding = field(default_factory=Rounding)
    report: list[str] = field(default_factory=list)  # more names to keep with each decision

    @property
    def label(self) -> str:
        return self.effective_from.isoformat()


@dataclass
class FactSpec:
    """A fact of a test-case member, in the engine's input shape."""

    kind: str
    detail: str
    qualifier: str | None = None
    amount_minor: int | None = None
    quantity: int | None = None
    valid_from: date | None = None
    valid_until: date | None = None
    source: str = "case"


@dataclass
class MemberSpec:
    """A household member in a test case."""

    name: str
    role: str
    sex: str
    birth_on: date
    death_on: date | None = None
    region_kato: str = "750000000"
    facts: list[FactSpec] = field(default_factory=list)
    in_family: bool = True
    parents: list[tuple[str, str]] = field(default_factory=list)  # (relation, member name)


@dataclass
class Case:
    """A rule test: a household, a period, and what a program must decide."""

    name: str
    program: str
    period: Period
    members: list[MemberSpec]
    loc: Loc
    subject: int = 0
    eligible: bool | None = None
    amount: int | None = None
    conditions: dict[str, bool] = field(default_factory=dict)
    # Expected values of variables the decision carries (money in minor units).
    variables: dict[str, bool | int | str] = field(default_factory=dict)


@dataclass
class Program:
    """A benefit program (or a status) with its versions and test cases."""

    id: str
    index: int
    title: dict[str, str]
    legal_basis: dict[str, str]
    citation: str
    entity: Entity
    period: PeriodKind
    loc: Loc
    kind: Literal["benefit", "status"] = "benefit"
    parameters: dict[str, Parameter] = field(default_factory=dict)
    versions: list[Version] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    until: date | None = None

    def version_on(self, day: date) -> Version | None:
        """The version in force on `day`, or None if the program is not in force."""
        if self.until is not None and day > self.until:
            return None
        current: Version | None = None
        for version in self.versions:
            if version.effective_from <= day:
                current = version
        return current


@dataclass
class RetirementStep:
    """From `year` on (the year a person reaches it) the retirement age is `age` years."""

    year: int
    age: Decimal


@dataclass
class Pack:
    """A rule pack: shared parameters and variables, and its programs."""

    id: str
    title: dict[str, str]
    country: str
    currency: str
    currency_symbol: str
    minor_per_major: int
    path: str
    parameters: dict[str, Parameter] = field(default_factory=dict)
    variables: dict[str, Variable] = field(default_factory=dict)
    programs: list[Program] = field(default_factory=list)
    retirement: dict[str, list[RetirementStep]] = field(default_factory=dict)
    cases: list[Case] = field(default_factory=list)

    def program(self, program_id: str) -> Program:
        for program in self.programs:
            if program.id == program_id:
                return program
        raise KeyError(program_id)
