"""Decisions and their explanations in Kazakh, Russian and English."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from socialcard.rules.engine.model import LANGUAGES, Pack, Program, Version

_VERDICT = {
    "kk": {True: "орындалды", False: "орындалмады", None: "деректер жоқ"},
    "ru": {True: "выполнено", False: "не выполнено", None: "нет данных"},
    "en": {True: "met", False: "not met", None: "unknown"},
}
_YES_NO = {"kk": ("иә", "жоқ"), "ru": ("да", "нет"), "en": ("yes", "no")}
_WORDS = {
    "kk": {
        "eligible": "құқығы бар",
        "not_eligible": "құқығы жоқ",
        "amount": "сомасы",
        "version": "ереже нұсқасы",
        "from": "бастап",
        "basis": "құқықтық негіз",
        "variables": "пайдаланылған мәндер",
        "parameters": "параметрлер",
        "not_in_force": "бағдарлама бұл кезеңде қолданылмайды",
        "period": "кезең",
        "rounding": "дөңгелектеу",
    },
    "ru": {
        "eligible": "право есть",
        "not_eligible": "права нет",
        "amount": "сумма",
        "version": "версия правил",
        "from": "с",
        "basis": "правовое основание",
        "variables": "использованные значения",
        "parameters": "параметры",
        "not_in_force": "программа в этом периоде не действует",
        "period": "период",
        "rounding": "округление",
    },
    "en": {
        "eligible": "eligible",
        "not_eligible": "not eligible",
        "amount": "amount",
        "version": "rule version",
        "from": "from",
        "basis": "legal basis",
        "variables": "values used",
        "parameters": "parameters",
        "not_in_force": "the program is not in force in this period",
        "period": "period",
        "rounding": "rounding",
    },
}
_ROUNDING = {
    "kk": {"half_up": "жақын бүтінге", "ceil": "жоғары қарай", "floor": "төмен қарай"},
    "ru": {"half_up": "до ближайшего", "ceil": "вверх", "floor": "вниз"},
    "en": {"half_up": "to the nearest", "ceil": "up", "floor": "down"},
}


def _group(digits: str, sep: str) -> str:
    out: list[str] = []
    while len(digits) > 3:
        out.insert(0, digits[-3:])
        digits = digits[:-3]
    out.insert(0, digits)
    return sep.join(out)


def format_number(value: Decimal | int | float, lang: str, places: int | None = None) -> str:
    """A number with the language's grouping and decimal mark; trailing zeros trimmed.

    >>> format_number(Decimal("69330"), "en"), format_number(Decimal("29453.25"), "ru")
    ('69,330', '29\xa0453,25')
    """
    number = Decimal(str(value)) if not isinstance(value, Decimal) else value
    if places is not None:
        number = number.quantize(Decimal(1).scaleb(-places))
    sign = "-" if number < 0 else ""
    text = format(abs(number), "f")
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0") if places is None else frac
    sep, mark = (",", ".") if lang == "en" else ("\u00a0", ",")
    return sign + _group(whole, sep) + (mark + frac if frac else "")


def format_value(value: Any, unit: str, lang: str, pack: Pack) -> str:
    """A value as a citizen reads it: money in major units with the currency sign, etc."""
    if value is None:
        return _VERDICT[lang][None]
    if isinstance(value, bool):
        yes, no = _YES_NO[lang]
        return yes if value else no
    if isinstance(value, date):
        return value.isoformat() if lang == "en" else value.strftime("%d.%m.%Y")
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_value(v, unit, lang, pack)}" for k, v in value.items())
    if isinstance(value, int | float | Decimal):
        if unit == "money":
            major = Decimal(str(value)) / pack.minor_per_major
            places = 2 if major != major.to_integral_value() else 0
            return f"{format_number(major, lang, places)} {pack.currency_symbol}".strip()
        if unit == "percent":
            return f"{format_number(Decimal(str(value)), lang)} %"
        if isinstance(value, float):
            return format_number(Decimal(str(round(value, 4))), lang)
        return format_number(value, lang)
    return str(value)


@dataclass
class Decision:
    """One program's decision for one person or family in one period, with its reasons."""

    program: Program
    entity_id: int  # person_id for person programs, family_id (or -person_id) for families
    family_id: int | None
    period: str
    version: Version | None
    eligible: bool
    amount_minor: int | None
    conditions: dict[str, bool | None] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)  # name -> value
    units: dict[str, str] = field(default_factory=dict)
    titles: dict[str, dict[str, str]] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    templates: dict[str, dict[str, str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A plain record for storage: what was decided, under which rule version, and why."""
        return {
            "program_id": self.program.id,
            "entity": self.program.entity,
            "entity_id": self.entity_id,
            "family_id": self.family_id,
            "period": self.period,
            "version": self.version.label if self.version else None,
            "citation": (
                self.version.citation
                if self.version and self.version.citation
                else self.program.citation
            ),
            "eligible": self.eligible,
            "amount_minor": self.amount_minor,
            "conditions": dict(self.conditions),
            "variables": {k: plain_value(v) for k, v in self.variables.items()},
            "parameters": {k: plain_value(v) for k, v in self.parameters.items()},
        }

    def explain(self, lang: str, pack: Pack) -> Explanation:
        """Render the decision as sentences in `lang` (kk, ru or en)."""
        if lang not in LANGUAGES:
            raise ValueError(f"language {lang!r} is not one of {LANGUAGES}")
        words = _WORDS[lang]
        values = {**self.variables, **self.parameters}

        def show(name: str) -> str:
            key = name[7:] if name.startswith("family.") else name
            return format_value(values.get(key), self.units.get(key, "number"), lang, pack)

        sentences = []
        for name, met in self.conditions.items():
            template = self.templates.get(name, {}).get(lang, name)
            text = _render(template, show)
            sentences.append(f"{text} — {_VERDICT[lang][met]}")
        if self.version is None:
            sentences.append(words["not_in_force"])
        amount = None
        if self.amount_minor is not None and self.program.kind == "benefit":
            amount = format_value(self.amount_minor, "money", lang, pack)
        variables = [
            (
                self.titles.get(k, {}).get(lang, k),
                format_value(v, self.units.get(k, ""), lang, pack),
            )
            for k, v in self.variables.items()
        ]
        parameters = [
            (
                self.titles.get(k, {}).get(lang, k),
                format_value(v, self.units.get(k, ""), lang, pack),
            )
            for k, v in self.parameters.items()
        ]
        version = ""
        rounding = ""
        if self.version is not None:
            version = f"{words['version']} {words['from']} {self.version.label}"
            if self.version.note:
                version += f" ({self.version.note})"
            r = self.version.rounding
            if self.program.kind == "benefit" and r.mode:
                unit = format_value(r.unit, "money", lang, pack)
                rounding = f"{words['rounding']}: {_ROUNDING[lang][r.mode]} {unit}"
        citation = (
            self.version.citation
            if self.version and self.version.citation
            else self.program.citation
        )
        return Explanation(
            lang=lang,
            title=self.program.title.get(lang, self.program.id),
            period=self.period,
            verdict=words["eligible"] if self.eligible else words["not_eligible"],
            amount=amount,
            conditions=sentences,
            variables=variables,
            parameters=parameters,
            version=version,
            rounding=rounding,
            legal_basis=self.program.legal_basis.get(lang, ""),
            citation=citation,
        )


def plain_value(value: Any) -> Any:
    """A value as stored in a decision record: decimals as canonical text.

    >>> plain_value(Decimal("3559570.00")), plain_value(Decimal("0.70")), plain_value(Decimal("12"))
    ('3559570', '0.7', '12')
    """
    if isinstance(value, Decimal):
        # Canonical: the batch (DuckDB) and online (Python) paths may carry the same number
        # at different scales (3559570.0 and 3559570.00).
        text = format(value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 4)
    return value


def _render(template: str, show: Any) -> str:
    out = []
    i = 0
    while i < len(template):
        j = template.find("{", i)
        if j < 0:
            out.append(template[i:])
            break
        k = template.find("}", j)
        if k < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        out.append(show(template[j + 1 : k]))
        i = k + 1
    return "".join(out)


@dataclass
class Explanation:
    """A decision in one language: a sentence per condition plus the data behind it."""

    lang: str
    title: str
    period: str
    verdict: str
    amount: str | None
    conditions: list[str]
    variables: list[tuple[str, str]]
    parameters: list[tuple[str, str]]
    version: str
    rounding: str
    legal_basis: str
    citation: str

    def text(self) -> str:
        """The explanation as plain text, one fact per line."""
        words = _WORDS[self.lang]
        head = f"{self.title} — {words['period']} {self.period}: {self.verdict}"
        if self.amount is not None and self.verdict == words["eligible"]:
            head += f", {words['amount']} {self.amount}"
        lines = [head]
        lines += [f"  • {s}" for s in self.conditions]
        if self.variables:
            lines.append(
                f"  {words['variables']}: " + "; ".join(f"{k} = {v}" for k, v in self.variables)
            )
        if self.parameters:
            lines.append(
                f"  {words['parameters']}: " + "; ".join(f"{k} = {v}" for k, v in self.parameters)
            )
        if self.version:
            lines.append(f"  {self.version}" + (f"; {self.rounding}" if self.rounding else ""))
        lines.append(f"  {words['basis']}: {self.legal_basis} ({self.citation})")
        return "\n".join(lines)
