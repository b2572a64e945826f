"""The voucher-type and merchant-category catalog, loaded once from catalog.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")


@dataclass(frozen=True, slots=True)
class VoucherType:
    """A voucher type and its restrictions."""

    code: str
    title: dict[str, str]
    item_categories: frozenset[str]
    needs_activation: bool
    any_item: bool = False
    bound_to_merchant: bool = False
    uses_per_day: int | None = None
    units_per_use: int | None = None
    school_days_only: bool = False
    prescription: bool = False
    activation_days: tuple[int, int] | None = None
    activation_requires: str | None = None
    fare_discount_percent: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MerchantCategory:
    """A merchant category and the voucher types it may accept."""

    code: str
    title: dict[str, str]
    accepts: frozenset[str]
    requires_license: bool = False


@dataclass(frozen=True, slots=True)
class DecisionSource:
    """Which eligible stored decisions issue a voucher type, to whom, and how much.

    The value and the age band are names of variables the decision's program reports: the rule
    pack values the voucher at the decision's period, the catalogue only says where to look.
    """

    voucher: str
    decision: str  # the rules program whose eligible decisions issue the voucher
    budget: str  # the wallet program whose regional budget pays it
    to: str  # recipient | entity | school_age_children
    amount: str | None = None  # variable: the voucher's value (minor units)
    per_school_day: str | None = None  # variable: the value per school day (minor units)
    ages: tuple[str, str] | None = None  # variables: the band's first and last age (years)
    fare_category: str | None = None

    @property
    def variables(self) -> tuple[str, ...]:
        """The decision variables this source reads."""
        return tuple(
            name for name in (self.amount, self.per_school_day, *(self.ages or ())) if name
        )


@dataclass(frozen=True, slots=True)
class Catalog:
    voucher_types: dict[str, VoucherType]
    categories: dict[str, MerchantCategory]
    decision_sources: tuple[DecisionSource, ...] = ()


_TARGETS = ("recipient", "entity", "school_age_children")


def _name(raw: dict[str, Any], key: str, voucher: str) -> str | None:
    value = raw.get(key)
    if value is not None and (not isinstance(value, str) or not value.isidentifier()):
        raise ValueError(f"decision source {voucher}: `{key}` names a decision variable")
    return value


def _decision_source(raw: dict[str, Any], types: dict[str, VoucherType]) -> DecisionSource:
    voucher = str(raw["voucher"])
    unknown = set(raw) - {
        "voucher",
        "decision",
        "budget",
        "to",
        "amount",
        "per_school_day",
        "ages",
        "fare_category",
    }
    if unknown:
        # Fixed amounts (amount_minor, per_school_day_minor) are gone: a value is the rule
        # pack's, dated and versioned, never the catalogue's.
        raise ValueError(f"decision source {voucher}: unknown keys {sorted(unknown)}")
    ages = raw.get("ages")
    if ages is not None and (
        not isinstance(ages, list)
        or len(ages) != 2
        or not all(isinstance(a, str) and a.isidentifier() for a in ages)
    ):
        raise ValueError(f"decision source {voucher}: `ages` names two decision variables")
    source = DecisionSource(
        voucher=voucher,
        decision=str(raw["decision"]),
        budget=str(raw["budget"]),
        to=str(raw["to"]),
        amount=_name(raw, "amount", voucher),
        per_school_day=_name(raw, "per_school_day", voucher),
        ages=(ages[0], ages[1]) if ages else None,
        fare_category=raw.get("fare_category"),
    )
    if source.voucher not in types:
        raise ValueError(f"decision source of unknown voucher type {source.voucher!r}")
    if source.to not in _TARGETS:
        raise ValueError(f"decision source {source.voucher}: `to` must be one of {_TARGETS}")
    if (source.amount is None) == (source.per_school_day is None):
        raise ValueError(
            f"decision source {source.voucher}: give exactly one of amount, per_school_day"
        )
    if (source.to == "school_age_children") != (source.ages is not None):
        raise ValueError(f"decision source {source.voucher}: `ages` goes with school_age_children")
    return source


def _voucher_type(code: str, raw: dict[str, Any]) -> VoucherType:
    days = raw.get("activation_days")
    return VoucherType(
        code=code,
        title=dict(raw["title"]),
        item_categories=frozenset(raw.get("item_categories", [])),
        needs_activation=bool(raw.get("needs_activation", False)),
        any_item=bool(raw.get("any_item", False)),
        bound_to_merchant=bool(raw.get("bound_to_merchant", False)),
        uses_per_day=raw.get("uses_per_day"),
        units_per_use=raw.get("units_per_use"),
        school_days_only=bool(raw.get("school_days_only", False)),
        prescription=bool(raw.get("prescription", False)),
        activation_days=(int(days[0]), int(days[1])) if days else None,
        activation_requires=raw.get("activation_requires"),
        fare_discount_percent={k: int(v) for k, v in raw.get("fare_discount_percent", {}).items()},
    )


@lru_cache(maxsize=1)
def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    """Parse the catalog (cached: it is read on every authorization)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    types = {code: _voucher_type(code, body) for code, body in raw["voucher_types"].items()}
    categories = {
        code: MerchantCategory(
            code=code,
            title=dict(body["title"]),
            accepts=frozenset(body.get("accepts", [])),
            requires_license=bool(body.get("requires_license", False)),
        )
        for code, body in raw["merchant_categories"].items()
    }
    for category in categories.values():
        unknown = category.accepts - types.keys()
        if unknown:
            raise ValueError(f"category {category.code} accepts unknown types {sorted(unknown)}")
    sources = tuple(_decision_source(item, types) for item in raw.get("decision_sources", []))
    return Catalog(voucher_types=types, categories=categories, decision_sources=sources)
