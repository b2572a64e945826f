"""The citizen's consent page (opened from the signed link), in kk, ru and en."""

from __future__ import annotations

from html import escape

from socialcard.proactive.templates import language_of

_WORDS = {
    "kk": {
        "outreach_title": "Отбасыны қолдау орталығы",
        "outreach_agreed": "Рахмет! Әлеуметтік қызметкер жақын күндері сізбен байланысады.",
        "title": "Әлеуметтік төлем",
        "agree": "Келісемін",
        "refuse": "Бас тартамын",
        "iban": "Банк шоты (IBAN), қаласаңыз; бос болса — әлеуметтік әмиян",
        "agreed": "Келісіміңіз қабылданды. Төлем тағайындалды.",
        "refused": "Бас тартуыңыз тіркелді.",
        "invalid": "Сілтеме жарамсыз. SMS-тегі сілтемені қайта ашыңыз.",
        "expired": "Сілтеменің мерзімі өтті. 1414 нөміріне хабарласыңыз.",
        "closed": "Бұл ұсыныс бойынша шешім қабылданған.",
        "late": (
            "Жауап беру мерзімі {deadline} өтіп кетті: жауабыңыз қабылданбады, төлем "
            "тағайындалмады. Сұрақтар бойынша 1414 нөміріне хабарласыңыз."
        ),
        "error": "Қате",
        "code_sent": (
            "Банк шотын растау үшін тіркелген телефоныңызға код жіберілді. Кодты енгізіңіз."
        ),
        "code": "Растау коды",
        "confirm": "Растау",
        "code_wrong": "Код қате. Қалған әрекет саны: {left}.",
        "code_expired": (
            "Код жарамсыз немесе мерзімі өтті. Шотты қайта енгізіңіз немесе "
            "әлеуметтік әмиянды таңдаңыз."
        ),
        "no_phone": (
            "Тіркелген телефон нөміріңіз жоқ: шотты растау мүмкін емес. Әлеуметтік "
            "әмиянды таңдаңыз немесе 1414 нөміріне хабарласыңыз."
        ),
    },
    "ru": {
        "outreach_title": "Центр поддержки семьи",
        "outreach_agreed": "Спасибо! Социальный работник свяжется с вами в ближайшие дни.",
        "title": "Социальная выплата",
        "agree": "Согласен(на)",
        "refuse": "Отказываюсь",
        "iban": "Банковский счёт (IBAN), если хотите; пусто — социальный кошелёк",
        "agreed": "Согласие принято. Выплата назначена.",
        "refused": "Ваш отказ зарегистрирован.",
        "invalid": "Ссылка недействительна. Откройте ссылку из SMS ещё раз.",
        "expired": "Срок действия ссылки истёк. Обратитесь по номеру 1414.",
        "closed": "По этому предложению решение уже принято.",
        "late": (
            "Срок ответа истёк {deadline}: ваш ответ не принят, выплата не назначена. "
            "По вопросам обращайтесь по номеру 1414."
        ),
        "error": "Ошибка",
        "code_sent": (
            "Для подтверждения счёта на ваш зарегистрированный телефон отправлен код. Введите его."
        ),
        "code": "Код подтверждения",
        "confirm": "Подтвердить",
        "code_wrong": "Неверный код. Осталось попыток: {left}.",
        "code_expired": (
            "Код недействителен или истёк. Укажите счёт ещё раз или выберите социальный кошелёк."
        ),
        "no_phone": (
            "У вас нет зарегистрированного телефона: подтвердить счёт нельзя. "
            "Выберите социальный кошелёк или обратитесь по номеру 1414."
        ),
    },
    "en": {
        "outreach_title": "Family support centre",
        "outreach_agreed": "Thank you! A social worker will contact you in the coming days.",
        "title": "Social payment",
        "agree": "I agree",
        "refuse": "I refuse",
        "iban": "Bank account (IBAN), optional; empty means the social wallet",
        "agreed": "Your consent is recorded. The benefit is assigned.",
        "refused": "Your refusal is recorded.",
        "invalid": "This link is not valid. Open the link from the SMS again.",
        "expired": "This link has expired. Call 1414.",
        "closed": "This offer has already been decided.",
        "late": (
            "The time to answer ended on {deadline}: your answer was not accepted and nothing "
            "is assigned. For questions call 1414."
        ),
        "error": "Error",
        "code_sent": "A code to confirm the account was sent to your registered phone. Enter it.",
        "code": "Confirmation code",
        "confirm": "Confirm",
        "code_wrong": "Wrong code. Attempts left: {left}.",
        "code_expired": (
            "The code is not valid or has expired. Enter the account again or "
            "choose the social wallet."
        ),
        "no_phone": (
            "There is no registered phone for you, so the account cannot be "
            "confirmed. Choose the social wallet or call 1414."
        ),
    },
}


def _page(lang: str, body: str, *, outreach: bool = False) -> str:
    words = _WORDS[language_of(lang)]
    title = words["outreach_title" if outreach else "title"]
    return (
        f'<!doctype html><html lang="{language_of(lang)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head><body><main>"
        f"<h1>{escape(title)}</h1>{body}</main></body></html>"
    )


def offer_page(
    lang: str, text: str, token: str, *, status: str, deadline: str = "", outreach: bool = False
) -> str:
    """The offer text with agree / refuse buttons (or the decision already taken, or that the
    time to answer has passed). An outreach invitation asks for no bank account."""
    words = _WORDS[language_of(lang)]
    if status == "late":
        return _page(
            lang,
            f"<p>{escape(text)}</p><p>{escape(words['late'].format(deadline=deadline))}</p>",
            outreach=outreach,
        )
    if status != "pending":
        return _page(
            lang, f"<p>{escape(text)}</p><p>{escape(words['closed'])}</p>", outreach=outreach
        )
    action = f"/consent/{escape(token)}"
    account = (
        ""
        if outreach
        else f'<label>{escape(words["iban"])} <input name="iban" maxlength="40"></label>'
    )
    form = (
        f'<form method="post" action="{action}">{account}'
        f'<button name="decision" value="agree">{escape(words["agree"])}</button>'
        f'<button name="decision" value="refuse">{escape(words["refuse"])}</button></form>'
    )
    return _page(lang, f"<p>{escape(text)}</p>{form}", outreach=outreach)


def code_page(lang: str, token: str, *, status: str, attempts_left: int = 0) -> str:
    """The account-confirmation step: the code sent to the registered phone, or why not."""
    words = _WORDS[language_of(lang)]
    if status in ("code_expired", "no_phone"):
        return _page(lang, f"<p>{escape(words[status])}</p>")
    note = words["code_sent"]
    if status == "code_wrong":
        note = words["code_wrong"].format(left=attempts_left)
    form = (
        f'<form method="post" action="/consent/{escape(token)}">'
        f'<label>{escape(words["code"])} <input name="code" inputmode="numeric" '
        f'autocomplete="one-time-code" maxlength="6" required></label>'
        f"<button>{escape(words['confirm'])}</button></form>"
    )
    return _page(lang, f"<p>{escape(note)}</p>{form}")


def result_page(lang: str, decision: str, *, outreach: bool = False) -> str:
    words = _WORDS[language_of(lang)]
    agreed = "outreach_agreed" if outreach else "agreed"
    text = words[agreed if decision == "agree" else "refused"]
    return _page(lang, f"<p>{escape(text)}</p>", outreach=outreach)


def late_page(lang: str, deadline: str) -> str:
    """An answer after the offer's deadline: not accepted, said in the citizen's language."""
    words = _WORDS[language_of(lang)]
    return _page(lang, f"<p>{escape(words['late'].format(deadline=deadline))}</p>")


def error_page(lang: str, code: str, detail: str) -> str:
    """A clear page for an expired, tampered or closed link (all three languages)."""
    key = {"expired_link": "expired", "offer_closed": "closed"}.get(code, "invalid")
    parts = "".join(f'<p lang="{k}">{escape(_WORDS[k][key])}</p>' for k in ("kk", "ru", "en"))
    return _page(
        lang,
        f"<h2>{escape(_WORDS[language_of(lang)]['error'])}</h2>{parts}"
        f"<p><small>{escape(detail)}</small></p>",
    )
