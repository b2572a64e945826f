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
    mrp_per_member: int | None = None
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
    """Which eligible stored decisions issue a voucher type, to whom, and how much."""

    voucher: str
    decision: str  # the rules program whose eligible decisions issue the voucher
    budget: str  # the wallet program whose regional budget pays it
    to: str  # recipient | entity | school_age_children
    amount_minor: int | None = None
    per_school_day_minor: int | None = None
    ages: tuple[int, int] | None = None
    fare_category: str | None = None


@dataclass(frozen=True, slots=True)
class Catalog:
    voucher_types: dict[str, VoucherType]
    categories: dict[str, MerchantCategory]
    decision_sources: tuple[DecisionSource, ...] = ()


_TARGETS = ("recipient", "entity", "school_age_children")


def _decision_source(raw: dict[str, Any], types: dict[str, VoucherType]) -> DecisionSource:
    ages = raw.get("ages")
    source = DecisionSource(
        voucher=str(raw["voucher"]),
        decision=str(raw["decision"]),
        budget=str(raw["budget"]),
        to=str(raw["to"]),
        amount_minor=raw.get("amount_minor"),
        per_school_day_minor=raw.get("per_school_day_minor"),
        ages=(int(ages[0]), int(ages[1])) if ages else None,
        fare_category=raw.get("fare_category"),
    )
    vtype = types.get(source.voucher)
    if vtype is None:
        raise ValueError(f"decision source of unknown voucher type {source.voucher!r}")
    if source.to not in _TARGETS:
        raise ValueError(f"decision source {source.voucher}: `to` must be one of {_TARGETS}")
    amounts = [source.amount_minor, source.per_school_day_minor, vtype.mrp_per_member]
    if sum(a is not None for a in amounts) != 1:
        raise ValueError(
            f"decision source {source.voucher}: give exactly one of amount_minor, "
            "per_school_day_minor, or the type's mrp_per_member"
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
        mrp_per_member=raw.get("mrp_per_member"),
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
