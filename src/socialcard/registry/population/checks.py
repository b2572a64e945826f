"""The importers' row rules, applied to generated rows: vectorised, and the scalar reference.

`check_vectorised` is the fast path the generator runs on every chunk. It restates, column by
column, what socialcard.registry.validation's validate_person / validate_member / validate_fact
and check_child_younger accept *and leave unchanged* (a value the validators would normalise,
such as a name with a trailing space, counts as a failure too: the importers would store
something else). `check_scalar` calls those validators row by row; the tests prove both agree
on generated rows and on rows broken on purpose. Any problem stops the load.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from socialcard.registry.enums import DISABILITY_CAUSES, FACT_DETAILS, STUDY_MODES, FactKind
from socialcard.registry.population.generator import (
    NONE_DAY,
    NONE_INT,
    Tables,
    iso_dates,
    month_start,
    optional_ints,
)
from socialcard.registry.regions import is_known_kato
from socialcard.registry.validation import (
    EARLIEST_BIRTH,
    MAX_AMOUNT_MINOR,
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

Table = Literal["person", "member", "fact"]
Mode = Literal["vector", "scalar", "both"]
_EPOCH = date(1970, 1, 1)
_EARLIEST = (EARLIEST_BIRTH - _EPOCH).days
_NAME_PUNCTUATION = frozenset(" -'’.")
_W1 = np.arange(1, 12, dtype=np.int64)
_W2 = np.array([3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2], dtype=np.int64)
_CENTURY_BASE = np.array([0, 1800, 1800, 1900, 1900, 2000, 2000, 0, 0, 0], dtype=np.int64)
_LANGUAGES = frozenset({"kk", "ru", "en"})
_ROLES = frozenset({"head", "spouse", "child", "parent", "other"})
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
    return value is None or all(c.isalpha() or c in _NAME_PUNCTUATION for c in value)


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
    digits = codes - 48
    fits &= ((digits >= 0) & (digits <= 9)).all(axis=1)
    digits = np.where(fits[:, None], digits, 0)
    century = digits[:, 6]
    fits &= (century >= 1) & (century <= 6)
    year = _CENTURY_BASE[century] + digits[:, 0] * 10 + digits[:, 1]
    month = digits[:, 2] * 10 + digits[:, 3]
    day = digits[:, 4] * 10 + digits[:, 5]
    month_ok = (month >= 1) & (month <= 12)
    safe_year = np.where(fits & month_ok, year, 2000)
    safe_month = np.where(month_ok, month, 1)
    first = month_start(safe_year, safe_month)
    length = month_start(safe_year, safe_month + 1) - first
    fits &= month_ok & (day >= 1) & (day <= length)
    sum1 = (digits[:, :11] @ _W1) % 11
    sum2 = (digits[:, :11] @ _W2) % 11
    check = np.where(sum1 == 10, sum2, sum1)
    fits &= (check != 10) & (check == digits[:, 11])
    birth = np.where(fits, first + day - 1, NONE_DAY)
    female = century % 2 == 0
    return fits, birth, female


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
        ~_memo(tables.language, lambda v: v in _LANGUAGES),
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
    out.flag("member", ~_memo(role, lambda v: v in _ROLES), "role", "is not a known role")
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


def check_scalar(tables: Tables, *, today: date) -> list[Problem]:
    """The same verdict from the importers' own validators, one row at a time (slow)."""
    problems: list[Problem] = []
    persons = _person_rows(tables)
    for i, row in enumerate(persons):
        try:
            got = validate_person(row, today=today)
        except RowError as exc:
            problems.append(Problem("person", i, exc.field, exc.reason))
            continue
        expected = PersonRow(
            row["national_id"], "KZ", row["last_name"], row["first_name"], row["patronymic"],
            date.fromisoformat(row["birth_on"]), row["sex"], row["phone"], row["language"],
            row["region_kato"], row["address"], _as_date(row["death_on"]),
        )  # fmt: skip
        if got != expected:
            problems.append(Problem("person", i, "*", "the validator would store it differently"))

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
        try:
            got_member = validate_member(row, today=today)
        except RowError as exc:
            problems.append(Problem("member", i, exc.field, exc.reason))
            continue
        expected_member = MemberRow(
            refs[fam],
            katos[fam],
            row["national_id"],
            role,
            date.fromisoformat(from_on[i]),
            _as_date(until_on[i]),
        )
        if got_member != expected_member:
            problems.append(Problem("member", i, "*", "the validator would store it differently"))
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
        try:
            got_fact = validate_fact(row, kind=kind, today=today)
        except RowError as exc:
            problems.append(Problem("fact", i, exc.field, exc.reason))
            continue
        expected_fact = FactRow(
            row["national_id"],
            kind,
            detail,
            qualifier,
            amount,
            quantity,
            date.fromisoformat(start),
            _as_date(until),
        )
        if got_fact != expected_fact:
            problems.append(Problem("fact", i, "*", "the validator would store it differently"))
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
