"""Message texts in kk, ru and en. Built-in defaults; operators may replace any of them."""

from __future__ import annotations

import string
from collections.abc import Mapping

from socialcard.proactive.enums import MessageKind
from socialcard.proactive.errors import InvalidTemplate

LANGUAGES = ("kk", "ru", "en")
PLACEHOLDERS = frozenset({"program", "amount", "deadline", "link", "period", "reason", "code"})

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
    MessageKind.LATE: {
        "kk": (
            "«{program}» бойынша жауап мерзімі {deadline} өтіп кетті: жауабыңыз қабылданбады, "
            "төлем тағайындалмады. Сұрақтар бойынша 1414 нөміріне хабарласыңыз."
        ),
        "ru": (
            "Срок ответа по выплате «{program}» истёк {deadline}: ваш ответ не принят, "
            "выплата не назначена. По вопросам обращайтесь по номеру 1414."
        ),
        "en": (
            "The time to answer about «{program}» ended on {deadline}: your answer was not "
            "accepted and nothing is assigned. For questions call 1414."
        ),
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
    MessageKind.CODE: {
        "kk": (
            "«{program}» төлемін банк шотына аудару үшін растау коды: {code}. "
            "Кодты ешкімге айтпаңыз."
        ),
        "ru": (
            "Код подтверждения счёта для выплаты «{program}»: {code}. Никому не сообщайте этот код."
        ),
        "en": "Code to confirm the bank account for «{program}»: {code}. Do not share it.",
    },
}

# Outreach: an invitation to a family support centre for the families of a segment (the
# well-being card's lists, Social Code art. 24). It goes through the same offers, outbox,
# consent and deadlines as a benefit offer; only its texts differ, keyed `seg_<kind>`.
OUTREACH_PREFIX = "outreach."
OUTREACH_TITLES: dict[str, str] = {
    "kk": "Отбасыны қолдау орталығы",
    "ru": "Центр поддержки семьи",
    "en": "Family support centre",
}
DEFAULTS.update(
    {
        "seg_offer": {
            "kk": (
                "{program} отбасыңызды кеңеске шақырады: әлеуметтік қызметкер сізбен "
                "байланысып, көмек түрлерін айтады. Келісесіз бе? Жауап: 1 (иә) немесе "
                "2 (жоқ), {deadline} дейін. {link}"
            ),
            "ru": (
                "{program} приглашает вашу семью на консультацию: социальный работник "
                "свяжется с вами и расскажет о мерах поддержки. Согласны? Ответьте 1 (да) "
                "или 2 (нет) до {deadline}. {link}"
            ),
            "en": (
                "The {program} invites your family to a consultation: a social worker will "
                "contact you about the support available. Do you agree? Reply 1 (yes) or "
                "2 (no) by {deadline}. {link}"
            ),
        },
        "seg_reminder": {
            "kk": (
                "Еске салу: {program} шақыруына {deadline} дейін 1 (иә) немесе 2 (жоқ) деп "
                "жауап беріңіз."
            ),
            "ru": (
                "Напоминание: ответьте 1 (да) или 2 (нет) на приглашение ({program}) до {deadline}."
            ),
            "en": (
                "Reminder: reply 1 (yes) or 2 (no) to the invitation of the {program} "
                "by {deadline}."
            ),
        },
        "seg_confirmation": {
            "kk": "Рахмет! {program} әлеуметтік қызметкері жақын күндері сізбен байланысады.",
            "ru": "Спасибо! Социальный работник: {program} — свяжется с вами в ближайшие дни.",
            "en": (
                "Thank you! A social worker of the {program} will contact you in the coming days."
            ),
        },
        "seg_refusal": {
            "kk": "{program} шақыруынан бас тартуыңыз тіркелді.",
            "ru": "Ваш отказ от приглашения ({program}) зарегистрирован.",
            "en": "Your refusal of the invitation of the {program} is recorded.",
        },
        "seg_lapsed": {
            "kk": "{program} шақыруына жауап мерзімі өтті.",
            "ru": "Срок ответа на приглашение ({program}) истёк.",
            "en": "The time to answer the invitation of the {program} has passed.",
        },
        "seg_late": {
            "kk": (
                "{program} шақыруына жауап мерзімі {deadline} өтіп кетті. Сұрақтар бойынша "
                "1414 нөміріне хабарласыңыз."
            ),
            "ru": (
                "Срок ответа на приглашение ({program}) истёк {deadline}. По вопросам "
                "обращайтесь по номеру 1414."
            ),
            "en": (
                "The time to answer the invitation of the {program} ended on {deadline}. For "
                "questions call 1414."
            ),
        },
    }
)


def is_outreach(program_id: str | None) -> bool:
    """Whether an offer's program is an outreach invitation rather than a benefit."""
    return bool(program_id) and str(program_id).startswith(OUTREACH_PREFIX)


def text_kind(program_id: str | None, kind: str) -> str:
    """The template key of a message kind for a program (`seg_<kind>` for an outreach one)."""
    if is_outreach(program_id) and f"seg_{kind}" in DEFAULTS:
        return f"seg_{kind}"
    return kind


END_REASONS: dict[str, dict[str, str]] = {
    "death": {"kk": "алушы қайтыс болды", "ru": "смерть получателя", "en": "the recipient died"},
    # A person benefit of someone else (a child) paid to this recipient: its holder died.
    "holder_death": {
        "kk": "төлем тағайындалған адам қайтыс болды",
        "ru": "смерть лица, которому назначена выплата",
        "en": "the person it was granted for died",
    },
    "not_eligible": {
        "kk": "құқық тоқтады",
        "ru": "право на выплату прекратилось",
        "en": "the entitlement has ended",
    },
    "operator": {"kk": "оператор шешімі", "ru": "решение оператора", "en": "operator decision"},
}


def check_template(body: str) -> None:
    """InvalidTemplate unless every `{placeholder}` is a known one, written bare (no format
    specification or conversion: `{program:>200000000}` would pad each SMS to 200 MB), and
    the braces balance."""
    try:
        parts = list(string.Formatter().parse(body))
    except ValueError as exc:
        raise InvalidTemplate(
            f"template: {exc}", details=[{"field": "body", "reason": str(exc)}]
        ) from None
    fields = [field for _, field, _, _ in parts if field is not None]
    unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
    if unknown:
        reason = f"unknown placeholder(s) {unknown}; use {sorted(PLACEHOLDERS)}"
        raise InvalidTemplate(f"template: {reason}", details=[{"field": "body", "reason": reason}])
    formatted = sorted({f for f, spec, conv in _fields(parts) if spec or conv})
    if formatted:
        reason = f"placeholders take no format or conversion: write {{{formatted[0]}}}"
        raise InvalidTemplate(f"template: {reason}", details=[{"field": "body", "reason": reason}])


def _fields(parts: list[tuple[str, str | None, str | None, str | None]]) -> list[tuple[str, ...]]:
    return [(f, spec or "", conv or "") for _, f, spec, conv in parts if f is not None]


def render(body: str, values: Mapping[str, str]) -> str:
    """Fill a template's placeholders (missing ones become empty).

    Text is copied and placeholders substituted, nothing more: a format specification or
    conversion stored before they were refused is ignored, never executed.

    >>> render("{program}: {amount:>9} {x!r}", {"program": "АСП", "amount": "1 ₸"})
    'АСП: 1 ₸'
    """
    out: list[str] = []
    for literal, field, _spec, _conv in string.Formatter().parse(body):
        out.append(literal)
        if field is not None:
            out.append(values.get(field, ""))
    return "".join(out).strip()


def language_of(value: str | None) -> str:
    """The person's language if we write it, else Kazakh (the state language)."""
    return value if value in LANGUAGES else "kk"
