"""Kazakhstan's regions by KATO code (classifier of administrative-territorial objects).

A KATO code has 9 digits; the first two name the region (oblast or city of republican
significance, after the 2022 reform that created Abai, Zhetysu and Ulytau). Any 9-digit code
under a known region is accepted: the full list of districts and settlements is a reference file
we do not ship yet.
"""

from __future__ import annotations

REGIONS: dict[str, dict[str, str]] = {
    "10": {"en": "Abai Region", "ru": "Абайская область", "kk": "Абай облысы"},
    "11": {"en": "Akmola Region", "ru": "Акмолинская область", "kk": "Ақмола облысы"},
    "15": {"en": "Aktobe Region", "ru": "Актюбинская область", "kk": "Ақтөбе облысы"},
    "19": {"en": "Almaty Region", "ru": "Алматинская область", "kk": "Алматы облысы"},
    "23": {"en": "Atyrau Region", "ru": "Атырауская область", "kk": "Атырау облысы"},
    "27": {
        "en": "West Kazakhstan Region",
        "ru": "Западно-Казахстанская область",
        "kk": "Батыс Қазақстан облысы",
    },
    "31": {"en": "Zhambyl Region", "ru": "Жамбылская область", "kk": "Жамбыл облысы"},
    "33": {"en": "Zhetysu Region", "ru": "Жетысуская область", "kk": "Жетісу облысы"},
    "35": {"en": "Karaganda Region", "ru": "Карагандинская область", "kk": "Қарағанды облысы"},
    "39": {"en": "Kostanay Region", "ru": "Костанайская область", "kk": "Қостанай облысы"},
    "43": {"en": "Kyzylorda Region", "ru": "Кызылординская область", "kk": "Қызылорда облысы"},
    "47": {"en": "Mangystau Region", "ru": "Мангистауская область", "kk": "Маңғыстау облысы"},
    "55": {"en": "Pavlodar Region", "ru": "Павлодарская область", "kk": "Павлодар облысы"},
    "59": {
        "en": "North Kazakhstan Region",
        "ru": "Северо-Казахстанская область",
        "kk": "Солтүстік Қазақстан облысы",
    },
    "61": {"en": "Turkestan Region", "ru": "Туркестанская область", "kk": "Түркістан облысы"},
    "62": {"en": "Ulytau Region", "ru": "Улытауская область", "kk": "Ұлытау облысы"},
    "63": {
        "en": "East Kazakhstan Region",
        "ru": "Восточно-Казахстанская область",
        "kk": "Шығыс Қазақстан облысы",
    },
    "71": {"en": "Astana", "ru": "Астана", "kk": "Астана"},
    "75": {"en": "Almaty", "ru": "Алматы", "kk": "Алматы"},
    "79": {"en": "Shymkent", "ru": "Шымкент", "kk": "Шымкент"},
}


def region_code(kato: str) -> str:
    """The 9-digit code of the region a KATO code belongs to (e.g. 751110000 -> 750000000)."""
    return kato[:2] + "0000000"


def is_known_kato(kato: str) -> bool:
    """True for a 9-digit KATO code under a known region."""
    return len(kato) == 9 and kato.isascii() and kato.isdigit() and kato[:2] in REGIONS


def region_name(kato: str, language: str = "en") -> str:
    """The region's name in a language (kk, ru, en)."""
    return REGIONS[kato[:2]][language]
