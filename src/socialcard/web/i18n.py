"""Translation catalogues (gettext .po files in kk, ru and en) and locale formatting.

Messages are looked up by a stable key (`home.title`); a key missing from a catalogue shows as
itself, which the language-switch test looks for.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from socialcard.core.config import get_settings

LANGUAGES = ("kk", "ru", "en")
DEFAULT_LANGUAGE = "kk"
LANGUAGE_NAMES = {"kk": "Қазақша", "ru": "Русский", "en": "English"}
_LOCALES = {"kk": "kk_KZ", "ru": "ru_RU", "en": "en_GB"}
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


@lru_cache(maxsize=len(LANGUAGES))
def catalogue(lang: str) -> dict[str, str]:
    """A language's messages by key, read once from `locale/<lang>/LC_MESSAGES/messages.po`."""
    path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=_LOCALES[lang])
    return {str(m.id): str(m.string) for m in catalog if m.id and m.string}


def language_of(value: str | None) -> str:
    """A supported language code, or the default."""
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


def negotiate(accept_language: str | None) -> str:
    """The first supported language of an Accept-Language header, or the default."""
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


class Translator:
    """The messages and formats of one language, handed to templates as `_` and `fmt`."""

    def __init__(self, lang: str) -> None:
        self.lang = language_of(lang)
        self.locale = _LOCALES[self.lang]
        self._messages = catalogue(self.lang)
        self.zone = ZoneInfo(get_settings().wallet.business_timezone)

    def __call__(self, key: str, **values: Any) -> str:
        text = self._messages.get(key, key)
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in self._messages

    def money(self, minor: int | None) -> str:
        """Tiyn as tenge with the locale's separators and the ₸ sign."""
        if minor is None:
            return "—"
        amount = format_decimal(minor / 100, format="#,##0.00", locale=self.locale)
        return f"{amount}\u00a0₸"

    def number(self, value: int | float | None) -> str:
        if value is None:
            return "—"
        return format_decimal(value, locale=self.locale)

    def date(self, value: date | None) -> str:
        if value is None:
            return "—"
        return format_date(value, format="medium", locale=self.locale)

    def datetime(self, value: datetime | None) -> str:
        """A moment in the business time zone (Asia/Almaty by default)."""
        if value is None:
            return "—"
        return format_datetime(value, format="short", tzinfo=self.zone, locale=self.locale)

    def percent(self, part: int, whole: int) -> str:
        if not whole:
            return "—"
        return format_decimal(100 * part / whole, format="0.0", locale=self.locale) + "\u00a0%"
