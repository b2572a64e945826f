"""The status and tariff catalogue (`card/tariffs.yaml` plus regional files), loaded once.

A status names the rules programs whose stored eligible decisions grant it; a tariff names the
statuses that open it, the regions whose residents get it (or `national`) and the providers
that honour it. Codes are checked to be neutral: a tariff code containing a status name (or a
word that names a category) is refused, since a merchant sees the code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from socialcard.card.errors import CatalogInvalid
from socialcard.core.errors import field_error

DEFAULT_PATH = Path(__file__).with_name("tariffs.yaml")
CODE = re.compile(r"[a-z][a-z0-9_]{2,39}")
# Words that would tell a merchant the category behind a tariff.
_REVEALING = ("disab", "invalid", "pension", "asp", "poor", "orphan", "veteran", "health")
LANGS = ("kk", "ru", "en")


@dataclass(frozen=True, slots=True)
class StatusSource:
    program: str
    holders: str  # "recipient" or "family"


@dataclass(frozen=True, slots=True)
class Status:
    code: str
    title: dict[str, str]
    sources: tuple[StatusSource, ...]


@dataclass(frozen=True, slots=True)
class Tariff:
    code: str
    title: dict[str, str]
    statuses: frozenset[str]
    regions: tuple[str, ...] | None  # None: national
    providers: tuple[str, ...]

    def applies_in(self, region_kato: str) -> bool:
        """Whether a resident of this region gets the tariff."""
        return self.regions is None or any(region_kato.startswith(r) for r in self.regions)


@dataclass(frozen=True, slots=True)
class Catalog:
    statuses: dict[str, Status]
    tariffs: dict[str, Tariff]
    providers: dict[str, dict[str, Any]]

    def tariffs_for(self, statuses: Iterable[str], region_kato: str) -> list[str]:
        """The tariff codes a holder of these statuses living in this region gets, sorted."""
        held = set(statuses)
        return sorted(
            code
            for code, tariff in self.tariffs.items()
            if tariff.statuses & held and tariff.applies_in(region_kato)
        )

    def sources_of(self, program_id: str) -> list[tuple[str, str]]:
        """(status, holders) pairs a program's decisions grant."""
        return [
            (status.code, source.holders)
            for status in self.statuses.values()
            for source in status.sources
            if source.program == program_id
        ]

    def programs(self) -> list[str]:
        """Every program some status is taken from."""
        return sorted({s.program for st in self.statuses.values() for s in st.sources})


def _bad(where: str, reason: str) -> CatalogInvalid:
    return CatalogInvalid(f"{where}: {reason}", details=[field_error(where, reason)])


def _title(node: Any, where: str) -> dict[str, str]:
    if not isinstance(node, dict) or any(not isinstance(node.get(k), str) for k in LANGS):
        raise _bad(f"{where}.title", "needs kk, ru and en texts")
    return {k: str(node[k]) for k in LANGS}


def _regions(node: Any, where: str) -> tuple[str, ...] | None:
    if node in (None, "national"):
        return None
    if not isinstance(node, list) or not node:
        raise _bad(f"{where}.regions", "national or a list of region code prefixes")
    out = []
    for item in node:
        text = str(item)
        if not (text.isascii() and text.isdigit() and 1 <= len(text) <= 9):
            raise _bad(f"{where}.regions", f"{text!r} is not a region code prefix")
        out.append(text)
    return tuple(out)


def _merge(documents: Sequence[tuple[str, Any]]) -> Catalog:
    statuses: dict[str, Status] = {}
    tariffs: dict[str, Tariff] = {}
    providers: dict[str, dict[str, Any]] = {}
    for name, doc in documents:
        if not isinstance(doc, dict):
            raise _bad(name, "not a mapping")
        for code, node in (doc.get("statuses") or {}).items():
            where = f"{name}:statuses.{code}"
            if not CODE.fullmatch(str(code)) or code in statuses:
                raise _bad(where, "a new lowercase code")
            sources = []
            for source in node.get("sources") or []:
                holders = source.get("holders", "recipient")
                if not isinstance(source.get("program"), str) or holders not in (
                    "recipient",
                    "family",
                ):
                    raise _bad(f"{where}.sources", "program and holders (recipient or family)")
                sources.append(StatusSource(program=source["program"], holders=holders))
            statuses[code] = Status(
                code=code, title=_title(node.get("title"), where), sources=tuple(sources)
            )
        for code, node in (doc.get("providers") or {}).items():
            where = f"{name}:providers.{code}"
            if not CODE.fullmatch(str(code)) or code in providers:
                raise _bad(where, "a new lowercase code")
            providers[code] = {
                "title": _title(node.get("title"), where),
                "regions": _regions(node.get("regions"), where),
            }
        for code, node in (doc.get("tariffs") or {}).items():
            where = f"{name}:tariffs.{code}"
            if not CODE.fullmatch(str(code)) or code in tariffs:
                raise _bad(where, "a new lowercase code")
            tariffs[code] = Tariff(
                code=code,
                title=_title(node.get("title"), where),
                statuses=frozenset(str(s) for s in node.get("statuses") or []),
                regions=_regions(node.get("regions"), where),
                providers=tuple(str(p) for p in node.get("providers") or []),
            )
    for code, tariff in tariffs.items():
        where = f"tariffs.{code}"
        if not tariff.statuses or tariff.statuses - statuses.keys():
            raise _bad(f"{where}.statuses", "names statuses the catalogue does not define")
        if set(tariff.providers) - providers.keys():
            raise _bad(f"{where}.providers", "names providers the catalogue does not define")
        lowered = code.lower()
        if any(s in lowered for s in statuses) or any(w in lowered for w in _REVEALING):
            raise _bad(where, "a tariff code must not reveal the status behind it")
    return Catalog(statuses=statuses, tariffs=tariffs, providers=providers)


def load_catalog(paths: Sequence[Path]) -> Catalog:
    """Load and check the catalogue files (later files add regions' tariffs and providers)."""
    documents = []
    for path in paths:
        try:
            documents.append((path.name, yaml.safe_load(path.read_text(encoding="utf-8"))))
        except (OSError, yaml.YAMLError) as exc:
            raise _bad(path.name, f"cannot be read ({type(exc).__name__})") from None
    return _merge(documents)


@lru_cache(maxsize=4)
def catalog(extra: tuple[str, ...] = ()) -> Catalog:
    """The default catalogue plus any extra files (cached)."""
    return load_catalog([DEFAULT_PATH, *(Path(p) for p in extra)])
