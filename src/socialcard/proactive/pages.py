"""The citizen's consent page (opened from the signed link), in kk, ru and en."""

from __future__ import annotations

from html import escape

from socialcard.proactive.templates import language_of

_WORDS = {
    "kk": {
        "title": "Әлеуметтік төлем",
        "agree": "Келісемін",
        "refuse": "Бас тартамын",
        "iban": "Банк шоты (IBAN), қаласаңыз; бос болса — әлеуметтік әмиян",
        "agreed": "Келісіміңіз қабылданды. Төлем тағайындалды.",
        "refused": "Бас тартуыңыз тіркелді.",
        "invalid": "Сілтеме жарамсыз. SMS-тегі сілтемені қайта ашыңыз.",
        "expired": "Сілтеменің мерзімі өтті. 1414 нөміріне хабарласыңыз.",
        "closed": "Бұл ұсыныс бойынша шешім қабылданған.",
        "error": "Қате",
    },
    "ru": {
        "title": "Социальная выплата",
        "agree": "Согласен(на)",
        "refuse": "Отказываюсь",
        "iban": "Банковский счёт (IBAN), если хотите; пусто — социальный кошелёк",
        "agreed": "Согласие принято. Выплата назначена.",
        "refused": "Ваш отказ зарегистрирован.",
        "invalid": "Ссылка недействительна. Откройте ссылку из SMS ещё раз.",
        "expired": "Срок действия ссылки истёк. Обратитесь по номеру 1414.",
        "closed": "По этому предложению решение уже принято.",
        "error": "Ошибка",
    },
    "en": {
        "title": "Social payment",
        "agree": "I agree",
        "refuse": "I refuse",
        "iban": "Bank account (IBAN), optional; empty means the social wallet",
        "agreed": "Your consent is recorded. The benefit is assigned.",
        "refused": "Your refusal is recorded.",
        "invalid": "This link is not valid. Open the link from the SMS again.",
        "expired": "This link has expired. Call 1414.",
        "closed": "This offer has already been decided.",
        "error": "Error",
    },
}


def _page(lang: str, body: str) -> str:
    words = _WORDS[language_of(lang)]
    return (
        f'<!doctype html><html lang="{language_of(lang)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(words['title'])}</title></head><body><main>"
        f"<h1>{escape(words['title'])}</h1>{body}</main></body></html>"
    )


def offer_page(lang: str, text: str, token: str, *, status: str) -> str:
    """The offer text with agree / refuse buttons (or the decision already taken)."""
    words = _WORDS[language_of(lang)]
    if status != "pending":
        return _page(lang, f"<p>{escape(text)}</p><p>{escape(words['closed'])}</p>")
    action = f"/consent/{escape(token)}"
    form = (
        f'<form method="post" action="{action}">'
        f'<label>{escape(words["iban"])} <input name="iban" maxlength="40"></label>'
        f'<button name="decision" value="agree">{escape(words["agree"])}</button>'
        f'<button name="decision" value="refuse">{escape(words["refuse"])}</button></form>'
    )
    return _page(lang, f"<p>{escape(text)}</p>{form}")


def result_page(lang: str, decision: str) -> str:
    words = _WORDS[language_of(lang)]
    return _page(lang, f"<p>{escape(words['agreed' if decision == 'agree' else 'refused'])}</p>")


def error_page(lang: str, code: str, detail: str) -> str:
    """A clear page for an expired, tampered or closed link (all three languages)."""
    key = {"expired_link": "expired", "offer_closed": "closed"}.get(code, "invalid")
    parts = "".join(f'<p lang="{k}">{escape(_WORDS[k][key])}</p>' for k in ("kk", "ru", "en"))
    return _page(
        lang,
        f"<h2>{escape(_WORDS[language_of(lang)]['error'])}</h2>{parts}"
        f"<p><small>{escape(detail)}</small></p>",
    )
