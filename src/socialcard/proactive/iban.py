"""Kazakhstan IBAN: `KZ`, two check digits (ISO 7064 mod 97-10) and 16 characters."""

from __future__ import annotations

import string

_ALNUM = frozenset(string.ascii_uppercase + string.digits)


class IbanError(ValueError):
    """Why an IBAN is not valid."""


def normalize_iban(raw: str) -> str:
    """Upper-case without spaces.

    >>> normalize_iban(" kz86 125k zt50 0410 0100 ")
    'KZ86125KZT5004100100'
    """
    return "".join(raw.split()).upper()


def _mod97(value: str) -> int:
    digits = "".join(str(int(ch, 36)) for ch in value)
    return int(digits) % 97


def validate_kz_iban(raw: str) -> str:
    """The normalized IBAN, or IbanError naming what is wrong.

    >>> validate_kz_iban("KZ86 125K ZT50 0410 0100")
    'KZ86125KZT5004100100'
    >>> validate_kz_iban("KZ87125KZT5004100100")
    Traceback (most recent call last):
    ...
    socialcard.proactive.iban.IbanError: check digits do not match (mod 97)
    """
    iban = normalize_iban(raw)
    if not iban.startswith("KZ"):
        raise IbanError("must start with KZ")
    if len(iban) != 20:
        raise IbanError(f"must be 20 characters, got {len(iban)}")
    if not set(iban) <= _ALNUM:
        raise IbanError("only letters A-Z and digits are allowed")
    if not iban[2:4].isdigit():
        raise IbanError("characters 3-4 must be the check digits")
    if _mod97(iban[4:] + iban[:4]) != 1:
        raise IbanError("check digits do not match (mod 97)")
    return iban


def make_kz_iban(bban: str) -> str:
    """A valid KZ IBAN for a 16-character account (for tests and the demo).

    >>> make_kz_iban("125KZT5004100100")
    'KZ86125KZT5004100100'
    """
    body = normalize_iban(bban)
    check = 98 - _mod97(body + "KZ00")
    return f"KZ{check:02d}{body}"
