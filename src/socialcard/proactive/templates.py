"""Message texts in kk, ru and en. Built-in defaults; operators may replace any of them."""

from __future__ import annotations

import string
from collections.abc import Mapping

from socialcard.proactive.enums import MessageKind
from socialcard.proactive.errors import InvalidTemplate

LANGUAGES = ("kk", "ru", "en")
PLACEHOLDERS = frozenset({"program", "amount", "deadline", "link", "period", "reason"})

DEFAULTS: dict[str, dict[str, str]] = {
    MessageKind.OFFER: {
        "kk": (
            "Сізге «{program}» тағайындалуы мүмкін: {amount}. Келісесіз бе? "
            "Жауап: 1 (иә) немесе 2 (жоқ), {deadline} дейін. {link}"
        ),
        "ru": (
            "Вам может быть назначена выплата «{program}»: {amount}. Согласны? "
            "Ответьте 1 (да) или 2 (нет) до {deadline}. {link}"
        ),
        "en": (
            "You may receive «{program}»: {amount}. Do you agree? "
            "Reply 1 (yes) or 2 (no) by {deadline}. {link}"
        ),
    },
    MessageKind.REMINDER: {
        "kk": (
            "Еске салу: «{program}» бойынша {deadline} дейін "
            "1 (иә) немесе 2 (жоқ) деп жауап беріңіз."
        ),
        "ru": "Напоминание: ответьте 1 (да) или 2 (нет) по выплате «{program}» до {deadline}.",
        "en": "Reminder: reply 1 (yes) or 2 (no) about «{program}» by {deadline}.",
    },
    MessageKind.CONFIRMATION: {
        "kk": "«{program}» тағайындалды: {amount}, {period} бастап.",
        "ru": "Выплата «{program}» назначена: {amount}, с {period}.",
        "en": "«{program}» is assigned: {amount}, from {period}.",
    },
    MessageKind.REFUSAL: {
        "kk": "«{program}» бойынша бас тартуыңыз тіркелді.",
        "ru": "Ваш отказ от выплаты «{program}» зарегистрирован.",
        "en": "Your refusal of «{program}» is recorded.",
    },
    MessageKind.LAPSED: {
        "kk": "«{program}» бойынша жауап мерзімі өтті.",
        "ru": "Срок ответа по выплате «{program}» истёк.",
        "en": "The time to answer about «{program}» has passed.",
    },
    MessageKind.ENDED: {
        "kk": "«{program}» төлемі тоқтатылды: {reason}.",
        "ru": "Выплата «{program}» прекращена: {reason}.",
        "en": "«{program}» has ended: {reason}.",
    },
    MessageKind.HELP: {
        "kk": (
            "Түсінбедік. Келісу үшін 1 немесе «иә», бас тарту үшін 2 немесе «жоқ» "
            "деп жауап беріңіз."
        ),
        "ru": (
            "Ответ не распознан. Ответьте 1 или «да», чтобы согласиться, "
            "2 или «нет» — чтобы отказаться."
        ),
        "en": "We did not understand. Reply 1 or 'yes' to agree, 2 or 'no' to refuse.",
    },
}

END_REASONS: dict[str, dict[str, str]] = {
    "death": {"kk": "алушы қайтыс болды", "ru": "смерть получателя", "en": "the recipient died"},
    "not_eligible": {
        "kk": "құқық тоқтады",
        "ru": "право на выплату прекратилось",
        "en": "the entitlement has ended",
    },
    "operator": {"kk": "оператор шешімі", "ru": "решение оператора", "en": "operator decision"},
}


def check_template(body: str) -> None:
    """InvalidTemplate unless every `{placeholder}` is a known one and the braces balance."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(body) if f is not None]
    except ValueError as exc:
        raise InvalidTemplate(
            f"template: {exc}", details=[{"field": "body", "reason": str(exc)}]
        ) from None
    unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
    if unknown:
        reason = f"unknown placeholder(s) {unknown}; use {sorted(PLACEHOLDERS)}"
        raise InvalidTemplate(f"template: {reason}", details=[{"field": "body", "reason": reason}])


def render(body: str, values: Mapping[str, str]) -> str:
    """Fill a template's placeholders (missing ones become empty)."""
    return body.format_map(_Blank(values)).strip()


class _Blank(dict[str, str]):
    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)

    def __missing__(self, key: str) -> str:
        return ""


def language_of(value: str | None) -> str:
    """The person's language if we write it, else Kazakh (the state language)."""
    return value if value in LANGUAGES else "kk"
