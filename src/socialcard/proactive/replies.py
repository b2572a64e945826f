"""Reading a citizen's SMS reply: agree, refuse, or not understood."""

from __future__ import annotations

import unicodedata

from socialcard.proactive.enums import ConsentDecision

_AGREE = frozenset({"1", "иә", "ия", "да", "yes"})
_REFUSE = frozenset({"2", "жоқ", "жок", "нет", "no"})


def parse_reply(body: str) -> ConsentDecision | None:
    """The decision a reply states, or None when it is not one of the accepted answers.

    >>> parse_reply("  ДА "), parse_reply("Жоқ"), parse_reply("yes please")
    (<ConsentDecision.AGREE: 'agree'>, <ConsentDecision.REFUSE: 'refuse'>, None)
    """
    word = unicodedata.normalize("NFC", body).strip().casefold().rstrip(".!")
    if word in _AGREE:
        return ConsentDecision.AGREE
    if word in _REFUSE:
        return ConsentDecision.REFUSE
    return None
