"""Row-level validation shared by every way data enters the registry.

The importers (CLI files and the agency API) and the synthetic population generator call the
same functions, so the same rules hold whatever the path. Each function takes one raw row (a
mapping of strings or native values) and returns a typed row, or raises RowError naming the
field and the reason. They are plain functions, not pydantic models, because they run millions
of times per import.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, NamedTuple

from socialcard.registry.enums import (
    DISABILITY_CAUSES,
    FACT_DETAILS,
    STUDY_MODES,
    FactKind,
    Language,
    LinkRelation,
    MemberRole,
)
from socialcard.registry.identifiers import IdentifierError, scheme_for
from socialcard.registry.regions import is_known_kato

EARLIEST_BIRTH = date(1900, 1, 1)
LANGUAGES = frozenset(lang.value for lang in Language)
ROLES = frozenset(role.value for role in MemberRole)
NAME_PUNCTUATION = frozenset(" -'’.")
MAX_AMOUNT_MINOR = 10**13  # 100 billion tenge: anything larger is a unit mistake


class RowError(ValueError):
    """A row is rejected: `field` names the column, `reason` says what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class PersonRow(NamedTuple):
    national_id: str
    country: str
    last_name: str
    first_name: str
    patronymic: str | None
    birth_on: date
    sex: str
    phone: str | None
    language: str
    region_kato: str
    address: str | None
    death_on: date | None


class MemberRow(NamedTuple):
    family_ref: str
    region_kato: str
    national_id: str
    role: str
    from_on: date
    until_on: date | None


class FactRow(NamedTuple):
    national_id: str
    kind: str
    detail: str
    qualifier: str | None
    amount_minor: int | None
    quantity: int | None
    valid_from: date
    valid_until: date | None


def _text(row: Mapping[str, Any], field: str, *, required: bool, max_len: int) -> str | None:
    value = row.get(field)
    if type(value) is str:  # the common case, kept short: this runs millions of times
        value = value.strip()
        if value and len(value) <= max_len:
            return value
    if value is None:
        if required:
            raise RowError(field, "is required")
        return None
    if not isinstance(value, str):
        value = str(value)
    value = value.strip()
    if not value:
        if required:
            raise RowError(field, "is required")
        return None
    if len(value) > max_len:
        raise RowError(field, f"is longer than {max_len} characters")
    return value


def _required_text(row: Mapping[str, Any], field: str, *, max_len: int) -> str:
    value = _text(row, field, required=True, max_len=max_len)
    if value is None:  # unreachable: _text raises for a missing required field
        raise RowError(field, "is required")
    return value


def _required_date(row: Mapping[str, Any], field: str) -> date:
    value = parse_date(row, field, required=True)
    if value is None:  # unreachable: parse_date raises for a missing required field
        raise RowError(field, "is required")
    return value


def _required_name(row: Mapping[str, Any], field: str) -> str:
    value = _name(row, field, required=True)
    if value is None:  # unreachable: _name raises for a missing required field
        raise RowError(field, "is required")
    return value


def _name(row: Mapping[str, Any], field: str, *, required: bool) -> str | None:
    value = _text(row, field, required=required, max_len=100)
    if value is not None and not value.isalpha():
        for char in value:
            if not (char.isalpha() or char in NAME_PUNCTUATION):
                raise RowError(field, f"contains a character not allowed in a name: {char!r}")
    return value


def parse_date(row: Mapping[str, Any], field: str, *, required: bool) -> date | None:
    """An ISO date (YYYY-MM-DD) or a date object; RowError otherwise."""
    value = row.get(field)
    if value is None or value == "":
        if required:
            raise RowError(field, "is required")
        return None
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise RowError(field, f"must be a date YYYY-MM-DD, got {type(value).__name__}")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise RowError(field, f"must be a date YYYY-MM-DD, got {value!r}") from None


def parse_int(
    row: Mapping[str, Any], field: str, *, required: bool, minimum: int = 0, maximum: int
) -> int | None:
    """A whole number within bounds; floats and decimals are refused (money is integer tiyn)."""
    value = row.get(field)
    if value is None or value == "":
        if required:
            raise RowError(field, "is required")
        return None
    if isinstance(value, bool):
        raise RowError(field, "must be a whole number, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and (text.isdigit() or (text[:1] == "-" and text[1:].isdigit()))):
            raise RowError(field, f"must be a whole number, got {value!r}")
        number = int(text)
    else:
        raise RowError(field, f"must be a whole number, got {type(value).__name__}")
    if number < minimum or number > maximum:
        raise RowError(field, f"must be between {minimum} and {maximum}, got {number}")
    return number


def normalize_phone(value: str) -> str:
    """A Kazakhstan mobile number in E.164 (+7 and 10 digits); accepts 8-prefixed and spaced."""
    if len(value) == 12 and value[:2] == "+7" and value[2:].isdigit():
        return value
    digits = "".join(c for c in value if c.isdigit())
    if len(digits) == 11 and digits[0] in "78":
        return "+7" + digits[1:]
    if len(digits) == 10 and digits[0] == "7":
        return "+7" + digits
    raise ValueError("must be a Kazakhstan phone number: +7 and 10 digits")


def validate_national_id(row: Mapping[str, Any], country: str = "KZ") -> str:
    """The row's national_id, checked with its country's check digit."""
    value = _required_text(row, "national_id", max_len=20)
    try:
        return scheme_for(country).validate(value).value
    except IdentifierError as exc:
        raise RowError("national_id", str(exc)) from None


def validate_other_national_id(
    row: Mapping[str, Any], field: str, *, required: bool, country: str = "KZ"
) -> str | None:
    """Another person's national identifier in the row (a parent's), checked the same way."""
    value = _text(row, field, required=required, max_len=20)
    if value is None:
        return None
    try:
        return scheme_for(country).validate(value).value
    except IdentifierError as exc:
        raise RowError(field, str(exc)) from None


class LinkRow(NamedTuple):
    national_id: str  # the child
    parent_national_id: str
    relation: str
    valid_from: date
    valid_until: date | None


def validate_link(row: Mapping[str, Any], *, today: date, country: str = "KZ") -> LinkRow:
    """A parent-child link: the child, the parent, the relation and its dates."""
    national_id = validate_national_id(row, country)
    parent = validate_other_national_id(row, "parent_national_id", required=True, country=country)
    assert parent is not None  # noqa: S101 - required
    if parent == national_id:
        raise RowError("parent_national_id", "a person cannot be their own parent")
    relation = _required_text(row, "relation", max_len=20)
    allowed = {r.value for r in LinkRelation}
    if relation not in allowed:
        raise RowError("relation", f"must be one of {', '.join(sorted(allowed))}, got {relation!r}")
    valid_from = _required_date(row, "valid_from")
    if valid_from > today:
        raise RowError("valid_from", f"is in the future ({valid_from.isoformat()})")
    valid_until = parse_date(row, "valid_until", required=False)
    if valid_until is not None and valid_until < valid_from:
        raise RowError("valid_until", "is before valid_from")
    return LinkRow(national_id, parent, relation, valid_from, valid_until)


def validate_region(row: Mapping[str, Any], field: str = "region_kato") -> str:
    value = _required_text(row, field, max_len=9)
    if not is_known_kato(value):
        raise RowError(field, f"unknown region: {value!r} is not a 9-digit KATO code of a region")
    return value


def validate_person(row: Mapping[str, Any], *, today: date, country: str = "KZ") -> PersonRow:
    """Validate one person row against the registry's rules."""
    value = _required_text(row, "national_id", max_len=20)
    try:
        decoded = scheme_for(country).validate(value)
    except IdentifierError as exc:
        raise RowError("national_id", str(exc)) from None
    last_name = _required_name(row, "last_name")
    first_name = _required_name(row, "first_name")
    patronymic = _name(row, "patronymic", required=False)
    birth_on = _required_date(row, "birth_on")
    if birth_on > today:
        raise RowError("birth_on", f"is in the future ({birth_on.isoformat()})")
    if birth_on < EARLIEST_BIRTH:
        raise RowError("birth_on", f"is before {EARLIEST_BIRTH.isoformat()}")
    if decoded.birth_on is not None and decoded.birth_on != birth_on:
        raise RowError("birth_on", "does not match the birth date encoded in national_id")
    sex = _text(row, "sex", required=True, max_len=1)
    if sex not in ("M", "F"):
        raise RowError("sex", f"must be M or F, got {sex!r}")
    if decoded.sex is not None and decoded.sex != sex:
        raise RowError("sex", "does not match the sex encoded in national_id")
    phone = _text(row, "phone", required=False, max_len=20)
    if phone is not None:
        try:
            phone = normalize_phone(phone)
        except ValueError as exc:
            raise RowError("phone", str(exc)) from None
    language = _text(row, "language", required=False, max_len=2) or "kk"
    if language not in LANGUAGES:
        raise RowError("language", f"must be one of kk, ru, en, got {language!r}")
    region_kato = validate_region(row)
    address = _text(row, "address", required=False, max_len=300)
    death_on = parse_date(row, "death_on", required=False)
    if death_on is not None:
        if death_on > today:
            raise RowError("death_on", f"is in the future ({death_on.isoformat()})")
        if death_on < birth_on:
            raise RowError("death_on", "is before birth_on")
    return PersonRow(
        decoded.value,
        country,
        last_name,
        first_name,
        patronymic,
        birth_on,
        sex,
        phone,
        language,
        region_kato,
        address,
        death_on,
    )


def validate_member(row: Mapping[str, Any], *, today: date, country: str = "KZ") -> MemberRow:
    """Validate one family-membership row (cross-row checks happen when it is loaded)."""
    family_ref = _required_text(row, "family_ref", max_len=40)
    region_kato = validate_region(row)
    national_id = validate_national_id(row, country)
    role = _text(row, "role", required=True, max_len=10)
    if role not in ROLES:
        raise RowError("role", f"must be one of {', '.join(sorted(ROLES))}, got {role!r}")
    from_on = _required_date(row, "from_on")
    if from_on > today:
        raise RowError("from_on", f"is in the future ({from_on.isoformat()})")
    until_on = parse_date(row, "until_on", required=False)
    if until_on is not None and until_on < from_on:
        raise RowError("until_on", "is before from_on")
    return MemberRow(family_ref, region_kato, national_id, role, from_on, until_on)


# Which of amount_minor / quantity / qualifier each kind needs.
_FACT_SHAPE: dict[str, tuple[bool, bool, frozenset[str] | None]] = {
    FactKind.INCOME: (True, False, None),
    FactKind.UNEMPLOYMENT: (False, False, None),
    FactKind.DISABILITY: (False, False, DISABILITY_CAUSES),
    FactKind.STUDY: (False, False, STUDY_MODES),
    FactKind.AWARD: (False, False, None),
    FactKind.PENSION: (False, True, None),
    FactKind.PROPERTY: (False, True, None),
    FactKind.LOAN: (True, False, None),
    FactKind.BIRTH: (False, False, None),
    FactKind.DEATH: (False, False, None),
    FactKind.SOCIAL_INSURANCE: (True, False, None),
}


def validate_fact(
    row: Mapping[str, Any], *, kind: str, today: date, country: str = "KZ"
) -> FactRow:
    """Validate one fact row of a given kind (the source decides the kind)."""
    national_id = validate_national_id(row, country)
    try:
        allowed_details = FACT_DETAILS[FactKind(kind)]
    except ValueError:
        raise RowError("kind", f"unknown fact kind {kind!r}") from None
    if len(allowed_details) == 1 and not row.get("detail"):
        detail = next(iter(allowed_details))
    else:
        detail = _required_text(row, "detail", max_len=40)
    if detail not in allowed_details:
        raise RowError(
            "detail", f"must be one of {', '.join(sorted(allowed_details))}, got {detail!r}"
        )
    needs_amount, needs_quantity, qualifiers = _FACT_SHAPE[kind]
    qualifier = _text(row, "qualifier", required=False, max_len=40)
    if qualifier is not None and (qualifiers is None or qualifier not in qualifiers):
        allowed = ", ".join(sorted(qualifiers)) if qualifiers else "nothing"
        raise RowError("qualifier", f"must be one of {allowed}, got {qualifier!r}")
    amount_minor = parse_int(row, "amount_minor", required=needs_amount, maximum=MAX_AMOUNT_MINOR)
    quantity = parse_int(row, "quantity", required=needs_quantity, maximum=100)
    valid_from = _required_date(row, "valid_from")
    if valid_from > today:
        raise RowError("valid_from", f"is in the future ({valid_from.isoformat()})")
    if valid_from < EARLIEST_BIRTH:
        raise RowError("valid_from", f"is before {EARLIEST_BIRTH.isoformat()}")
    valid_until = parse_date(row, "valid_until", required=False)
    if valid_until is not None and valid_until < valid_from:
        raise RowError("valid_until", "is before valid_from")
    if kind == FactKind.SOCIAL_INSURANCE:
        valid_from, valid_until = _contribution_months(valid_from, valid_until)
    return FactRow(
        national_id, kind, detail, qualifier, amount_minor, quantity, valid_from, valid_until
    )


def _contribution_months(valid_from: date, valid_until: date | None) -> tuple[date, date | None]:
    """Contributions are paid per calendar month: a row covers whole months (from a 1st to a
    month's last day; open while they are still being paid)."""
    if valid_from.day != 1:
        raise RowError("valid_from", "contributions cover whole months: start on the 1st")
    if valid_until is not None and (valid_until + timedelta(days=1)).day != 1:
        raise RowError("valid_until", "contributions cover whole months: end on a month's last day")
    return valid_from, valid_until


def check_child_younger(
    *, child_birth_on: date, parent_birth_on: date, field: str = "national_id"
) -> None:
    """A child must be born after its parent (role child vs head/spouse, head vs role parent)."""
    if child_birth_on <= parent_birth_on:
        raise RowError(field, "child is older than (or as old as) its parent in this family")
