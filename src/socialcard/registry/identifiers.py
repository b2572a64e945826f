"""National identifiers, validated with their check digit; one validator per country.

Kazakhstan's ИИН (individual identification number) has 12 digits: YYMMDD of birth, one
digit for century and sex (1/2: 1800s, 3/4: 1900s, 5/6: 2000s; odd male, even female), four
serial digits and a check digit. The check digit is the sum of the first eleven digits weighted
1..11, modulo 11; if that is 10, the weights 3..11,1,2 are used; a second 10 means the number is
never issued.

>>> validate_iin("900215300027").birth_on
datetime.date(1990, 2, 15)
>>> iin_check_digit("90021530002")
7
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol

_CENTURY = {"1": 1800, "2": 1800, "3": 1900, "4": 1900, "5": 2000, "6": 2000}


class IdentifierError(ValueError):
    """The identifier is malformed; the message says why."""


@dataclass(frozen=True, slots=True)
class DecodedIdentifier:
    """What an identifier tells about its holder (None where the scheme encodes nothing)."""

    value: str
    birth_on: date | None
    sex: str | None


class IdentifierScheme(Protocol):
    """A country's national identifier validator."""

    country: str
    name: str

    def validate(self, value: str) -> DecodedIdentifier: ...


def iin_check_digit(first_eleven: str) -> int | None:
    """The ИИН check digit for 11 digits, or None when no valid number can be formed."""
    # Unrolled on the ASCII codes: this runs for every row of every import.
    d = first_eleven.encode("ascii")
    total = (
        d[0] + 2 * d[1] + 3 * d[2] + 4 * d[3] + 5 * d[4] + 6 * d[5]
        + 7 * d[6] + 8 * d[7] + 9 * d[8] + 10 * d[9] + 11 * d[10] - 66 * 48
    ) % 11  # fmt: skip
    if total == 10:
        total = (
            3 * d[0] + 4 * d[1] + 5 * d[2] + 6 * d[3] + 7 * d[4] + 8 * d[5]
            + 9 * d[6] + 10 * d[7] + 11 * d[8] + d[9] + 2 * d[10] - 66 * 48
        ) % 11  # fmt: skip
        if total == 10:
            return None
    return total


def validate_iin(value: str) -> DecodedIdentifier:
    """Validate a ИИН and decode its birth date and sex; raises IdentifierError with the reason."""
    if len(value) != 12 or not value.isascii() or not value.isdigit():
        raise IdentifierError("must be exactly 12 digits")
    century = _CENTURY.get(value[6])
    if century is None:
        raise IdentifierError("7th digit (century and sex) must be 1 to 6")
    try:
        birth_on = date(century + int(value[0:2]), int(value[2:4]), int(value[4:6]))
    except ValueError:
        raise IdentifierError("first six digits are not a valid birth date") from None
    expected = iin_check_digit(value[:11])
    if expected is None or expected != ord(value[11]) - 48:
        raise IdentifierError("check digit does not match")
    return DecodedIdentifier(value, birth_on, "M" if value[6] in "135" else "F")


def make_iin(birth_on: date, sex: str, serial: int) -> str | None:
    """Build a valid ИИН for a birth date, sex and 4-digit serial; None if that serial has none."""
    base = {1800: 1, 1900: 3, 2000: 5}[birth_on.year // 100 * 100]
    century_sex = base + (0 if sex == "M" else 1)
    first = f"{birth_on:%y%m%d}{century_sex}{serial % 10000:04d}"
    check = iin_check_digit(first)
    return None if check is None else f"{first}{check}"


class KazakhstanIIN:
    """Kazakhstan's ИИН."""

    country = "KZ"
    name = "ИИН"

    def validate(self, value: str) -> DecodedIdentifier:
        return validate_iin(value)


class RussiaSNILS:
    """Russia's СНИЛС: 11 digits, the last two a checksum of the first nine (weights 9..1)."""

    country = "RU"
    name = "СНИЛС"

    def validate(self, value: str) -> DecodedIdentifier:
        digits = value.replace("-", "").replace(" ", "")
        if len(digits) != 11 or not digits.isascii() or not digits.isdigit():
            raise IdentifierError("must be 11 digits")
        total = sum(int(d) * w for d, w in zip(digits[:9], range(9, 0, -1), strict=True))
        if total > 101:
            total %= 101
        check = 0 if total in (100, 101) else total
        if check != int(digits[9:]):
            raise IdentifierError("check digits do not match")
        return DecodedIdentifier(value=digits, birth_on=None, sex=None)


SCHEMES: dict[str, IdentifierScheme] = {"KZ": KazakhstanIIN(), "RU": RussiaSNILS()}


def scheme_for(country: str) -> IdentifierScheme:
    """The identifier scheme of a country (KeyError names the country when unknown)."""
    try:
        return SCHEMES[country]
    except KeyError:
        raise KeyError(f"no national identifier scheme for country {country!r}") from None
