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
class Catalog:
    voucher_types: dict[str, VoucherType]
    categories: dict[str, MerchantCategory]


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
    return Catalog(voucher_types=types, categories=categories)
