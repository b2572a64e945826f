"""Where synthetic families live: KATO codes weighted by population, and their addresses.

Figures are rounded approximations (2024 populations in thousands, the share of
Russian-speaking families, a wage level relative to the national median); they shape a
plausible population and are not statistics to quote.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from socialcard.registry.population.errors import GenerationError
from socialcard.registry.regions import REGIONS, is_known_kato, region_code

# prefix: (population in thousands, share of Russian-speaking families, wage factor, districts)
_REGION_PROFILE: dict[str, tuple[int, float, float, int]] = {
    "10": (605, 0.20, 0.90, 10),
    "11": (785, 0.35, 0.90, 17),
    "15": (930, 0.10, 1.00, 12),
    "19": (1520, 0.10, 0.90, 9),
    "23": (700, 0.04, 1.60, 7),
    "27": (690, 0.22, 1.00, 12),
    "31": (1220, 0.06, 0.80, 10),
    "33": (700, 0.12, 0.80, 8),
    "35": (1130, 0.35, 1.05, 7),
    "39": (830, 0.40, 0.90, 16),
    "43": (840, 0.02, 0.85, 7),
    "47": (790, 0.05, 1.40, 5),
    "55": (750, 0.35, 1.00, 10),
    "59": (530, 0.50, 0.85, 13),
    "61": (2100, 0.02, 0.75, 14),
    "62": (220, 0.15, 1.20, 3),
    "63": (720, 0.38, 0.95, 9),
    "71": (1420, 0.15, 1.35, 5),
    "75": (2230, 0.25, 1.30, 8),
    "79": (1220, 0.03, 0.85, 5),
}
_CITIES = frozenset({"71", "75", "79"})
# Regions with the largest families (the south and the west).
_HIGH_FERTILITY = frozenset({"31", "43", "47", "61", "79"})

PREFIXES: tuple[str, ...] = tuple(sorted(_REGION_PROFILE))
assert set(PREFIXES) == set(REGIONS)  # noqa: S101 - a new region must get a profile


def _district_codes(prefix: str, count: int) -> list[str]:
    # City districts look like 751110000, 751210000, ...; rural districts like 112000000.
    if prefix in _CITIES:
        return [f"{prefix}1{d}10000" for d in range(1, count + 1)]
    return [f"{prefix}{20 + 2 * d:02d}00000" for d in range(count)]


@dataclass(frozen=True)
class Plan:
    """The KATO codes families are drawn from, with their probabilities and region traits."""

    codes: NDArray[np.object_]
    weights: NDArray[np.float64]
    russian_share: NDArray[np.float64]
    wage_factor: NDArray[np.float64]
    high_fertility: NDArray[np.bool_]
    settlement: NDArray[np.object_]


def plan_for(region: str | None = None) -> Plan:
    """The code plan for the whole country, one region (2 or 9 digits) or one exact district."""
    wanted: str | None = None
    exact: str | None = None
    if region is not None:
        region = region.strip()
        if len(region) == 2 and region in REGIONS:
            wanted = region
        elif is_known_kato(region):
            wanted = region[:2]
            if region != region_code(region):
                exact = region
        else:
            raise GenerationError(
                f"unknown region {region!r}: give a 9-digit KATO code of a region or district "
                f"(e.g. 750000000) or its 2-digit prefix ({', '.join(PREFIXES)})",
                code="unknown_region",
            )
    codes: list[str] = []
    weights: list[float] = []
    russian: list[float] = []
    wages: list[float] = []
    fertile: list[bool] = []
    settlement: list[str] = []
    for prefix in PREFIXES:
        if wanted is not None and prefix != wanted:
            continue
        population, russian_share, wage_factor, districts = _REGION_PROFILE[prefix]
        name = REGIONS[prefix]["ru"]
        place = f"г. {name}" if prefix in _CITIES else name
        region_codes = (
            [exact] if exact else [f"{prefix}0000000", *_district_codes(prefix, districts)]
        )
        # The region-level code carries a third of the region: people registered at the
        # regional centre; the rest spread evenly over the districts.
        shares = [1.0] if exact else [1 / 3] + [2 / 3 / districts] * districts
        for code, share in zip(region_codes, shares, strict=True):
            codes.append(code)
            weights.append(population * share)
            russian.append(russian_share)
            wages.append(wage_factor)
            fertile.append(prefix in _HIGH_FERTILITY)
            settlement.append(place)
    total = sum(weights)
    return Plan(
        codes=np.array(codes, dtype=object),
        weights=np.array([w / total for w in weights]),
        russian_share=np.array(russian),
        wage_factor=np.array(wages),
        high_fertility=np.array(fertile, dtype=bool),
        settlement=np.array(settlement, dtype=object),
    )
