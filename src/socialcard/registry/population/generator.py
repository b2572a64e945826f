"""Seeded, vectorised generation of a synthetic Kazakhstan-like population (no database here).

Families are drawn in blocks of BLOCK_FAMILIES; block b of seed s always uses the random stream
SeedSequence([s, b]), so the rows depend only on the seed, the number of families, the region,
the reference date and the serials already used in the store, never on the chunk size used to
write them. Every array here is column-wise; `Tables` holds a block or a chunk of families with
row indexes local to it.

The model, in short (rounded, plausible figures, not statistics to quote):
- households: single (21 %), couple (16 %), couple with children (44 %), single parent (9 %),
  three generations (10 %), now and then another relative; 1 to 10 members, about 3.3 on
  average; larger families in the south; 6-8 % of families with four or more minors;
- children a few years apart, mothers 18 to 46 at their births, fathers a little older;
- monthly wages lognormal around 260 000 ₸ scaled by region, age and sex; 4 % of households
  declare no income (10-12 % have none at all); pensions past the retirement age (men 63,
  women 61, rising from 2028 to 63 in 2031; mothers of five or more at 53), with the base
  pension from the years of participation; state allowances for most (not all) of those with a
  disability or a baby at home;
- disability in about 4 % (more with age), school from 6/7 to 17, college and university to 24,
  mothers' awards, registered unemployment (3 % of working age), property, loans, births in the
  last year and deaths in the last two years (the membership closed on the day of death);
- parent-child links: each child to its mother and father at home, the head to the head's
  parents at home, a young single adult to a mother in a later family of the block (children
  living apart from their mother), a minor relative to the head as guardian;
- social insurance contributions (ГФСС) for most, not all, wage earners (informal work has
  none), for mothers at home with a baby who worked before the birth, and for the registered
  unemployed up to the job they lost; some of them lost the job in the reference month.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import date

import numpy as np
from numpy.typing import NDArray

from socialcard.registry.population import names
from socialcard.registry.population.geography import Plan
from socialcard.registry.population.identity import SerialAllocator, ymd

BLOCK_FAMILIES = 5000
NONE_DAY = np.iinfo(np.int32).min  # a missing date in a day column
NONE_INT = np.iinfo(np.int64).min  # a missing number in an integer column

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
B = NDArray[np.bool_]
O = NDArray[np.object_]  # noqa: E741 - short alias for object (string/None) columns

YEAR = 365.25

# Household types.
SINGLE, COUPLE, NUCLEAR, SINGLE_PARENT, EXTENDED = range(5)
_TYPE_P = np.array([0.21, 0.16, 0.44, 0.09, 0.10])
# Children per family (1..8) for couples with children and single parents.
_KIDS_P = np.array([0.32, 0.33, 0.20, 0.08, 0.04, 0.018, 0.008, 0.004])
_KIDS_SINGLE_P = np.array([0.52, 0.30, 0.12, 0.04, 0.015, 0.005, 0.0, 0.0])

# Vocabularies as object arrays indexed by small codes: every row shares one str object per
# value (cheaper to pickle to the writer, to bind and to compare).
ROLE_NAMES = np.array(["head", "spouse", "child", "parent", "other"], dtype=object)
_CAUSES = np.array(["general_illness", "occupational", "from_childhood", "other"], dtype=object)
_GENERAL, _OCCUPATIONAL, _FROM_CHILDHOOD, _OTHER = range(4)
_STUDY_MODES = np.array(["full_time", "part_time"], dtype=object)
_AWARDS = np.array(
    ["", "altyn_alka", "kumis_alka", "mother_heroine", "maternal_glory_1", "maternal_glory_2"],
    dtype=object,
)
_NO_AWARD, _ALTYN, _KUMIS, _HEROINE, _GLORY_1, _GLORY_2 = range(6)
HEAD, SPOUSE, CHILD, PARENT, OTHER = range(5)
SEX_NAMES = np.array(["M", "F"], dtype=object)
LANG_NAMES = np.array(["kk", "ru", "en"], dtype=object)

# Base pension per year: (subsistence minimum ПМ in tenge, min share, max share) (REFERENCE §1).
_BASE_PENSION = {2024: (43_407, 0.65, 1.05), 2025: (46_228, 0.70, 1.10), 2026: (50_851, 0.70, 1.18)}
# Monthly calculation index МРП per year (REFERENCE §1).
_MRP = {2024: 3_692, 2025: 3_932, 2026: 4_325}
# State social allowance for disability from general illness, in ПМ, by group (REFERENCE §2).
_DISABILITY_PM = np.array([1.61, 2.2, 1.76, 1.2])  # child, group 1, 2, 3
# Child-care allowance to 1.5 years, in МРП, by the child's order (1st .. 4th and later).
_CHILD_CARE_MRP = np.array([5.76, 6.81, 7.85, 8.90])


def _names_table() -> dict[str, O]:
    male = names.KAZAKH_MALE + names.RUSSIAN_MALE
    return {
        "male": np.array([m.name for m in male], dtype=object),
        "son": np.array([m.son for m in male], dtype=object),
        "daughter": np.array([m.daughter for m in male], dtype=object),
        "son_kk": np.array([m.son_kk for m in male], dtype=object),
        "daughter_kk": np.array([m.daughter_kk for m in male], dtype=object),
        "female": np.array(names.KAZAKH_FEMALE + names.RUSSIAN_FEMALE, dtype=object),
        "surname_m": np.array(
            [s[0] for s in names.KAZAKH_SURNAMES + names.RUSSIAN_SURNAMES], dtype=object
        ),
        "surname_f": np.array(
            [s[1] for s in names.KAZAKH_SURNAMES + names.RUSSIAN_SURNAMES], dtype=object
        ),
    }


_NAMES = _names_table()
# (offset, count) of each list for ethnicity 0 (Kazakh) and 1 (Russian-speaking).
_MALE_RANGE = np.array(
    [[0, len(names.KAZAKH_MALE)], [len(names.KAZAKH_MALE), len(names.RUSSIAN_MALE)]]
)
_FEMALE_RANGE = np.array(
    [[0, len(names.KAZAKH_FEMALE)], [len(names.KAZAKH_FEMALE), len(names.RUSSIAN_FEMALE)]]
)
_SURNAME_RANGE = np.array(
    [[0, len(names.KAZAKH_SURNAMES)], [len(names.KAZAKH_SURNAMES), len(names.RUSSIAN_SURNAMES)]]
)
_STREETS = np.array(names.STREETS, dtype=object)
_MOBILE = np.array(names.MOBILE_CODES, dtype=np.int64)


@dataclass
class Tables:
    """Generated rows, column-wise. Person i has exactly one membership, member row i."""

    # registry_family
    family_number: I64  # 1-based position in the run; the ref is built from it
    family_ref: O
    family_kato: O
    # registry_person
    national_id: O
    last_name: O
    first_name: O
    patronymic: O
    birth_on: I64  # days since 1970-01-01
    sex: O
    phone: O
    language: O
    region_kato: O
    address: O
    death_on: I64  # NONE_DAY when alive
    # registry_family_member
    member_family: I64  # local family index
    role: O
    from_on: I64
    until_on: I64
    # registry_fact
    fact_person: I64  # local person index
    fact_kind: O
    fact_detail: O
    fact_qualifier: O
    fact_amount: I64  # NONE_INT when absent
    fact_quantity: I64
    fact_valid_from: I64
    fact_valid_until: I64
    fact_source: O
    # registry_person_link (in order of the parent's local index; the child is a local index,
    # or -1 when it is in an earlier chunk: then its national id finds it)
    link_parent: I64
    link_child: I64
    link_child_nid: O
    link_relation: O
    link_from: I64
    link_until: I64

    @property
    def families(self) -> int:
        return len(self.family_number)

    @property
    def persons(self) -> int:
        return len(self.national_id)

    @property
    def facts(self) -> int:
        return len(self.fact_person)

    @property
    def links(self) -> int:
        return len(self.link_parent)

    @staticmethod
    def concat(parts: list[Tables]) -> Tables:
        """One Tables from consecutive parts, re-basing the local indexes."""
        if len(parts) == 1:
            return parts[0]
        family_offsets = np.cumsum([0] + [p.families for p in parts[:-1]])
        person_offsets = np.cumsum([0] + [p.persons for p in parts[:-1]])
        columns: dict[str, np.ndarray] = {}
        for field in fields(Tables):
            arrays = [getattr(p, field.name) for p in parts]
            if field.name == "member_family":
                arrays = [a + o for a, o in zip(arrays, family_offsets, strict=True)]
            elif field.name in ("fact_person", "link_parent"):
                arrays = [a + o for a, o in zip(arrays, person_offsets, strict=True)]
            elif field.name == "link_child":
                arrays = [
                    np.where(a >= 0, a + o, -1) for a, o in zip(arrays, person_offsets, strict=True)
                ]
            columns[field.name] = np.concatenate(arrays)
        return Tables(**columns)

    def slice_families(self, first: int, stop: int) -> Tables:
        """Families [first, stop) with their persons and facts (both are in family order)."""
        p0, p1 = np.searchsorted(self.member_family, [first, stop])
        f0, f1 = np.searchsorted(self.fact_person, [p0, p1])
        l0, l1 = np.searchsorted(self.link_parent, [p0, p1])
        columns: dict[str, np.ndarray] = {}
        for field in fields(Tables):
            value = getattr(self, field.name)
            if field.name.startswith("family_"):
                columns[field.name] = value[first:stop]
            elif field.name.startswith("fact_"):
                columns[field.name] = value[f0:f1]
            elif field.name.startswith("link_"):
                columns[field.name] = value[l0:l1]
            else:
                columns[field.name] = value[p0:p1]
        columns["member_family"] = columns["member_family"] - first
        columns["fact_person"] = columns["fact_person"] - p0
        columns["link_parent"] = columns["link_parent"] - p0
        child = columns["link_child"]
        columns["link_child"] = np.where((child >= p0) & (child < p1), child - p0, -1)
        return Tables(**columns)


def family_ref(seed: int, number: int) -> str:
    """The registry_family.ref of the n-th generated family of a seed (zero-padded so refs
    sort in load order, which keeps the unique index's inserts at its end)."""
    return f"GEN-{seed}-{number:07d}"


def ref_prefix(seed: int) -> str:
    """The common prefix of every family ref generated from a seed."""
    return f"GEN-{seed}-"


def _days(value: date) -> int:
    return (value - date(1970, 1, 1)).days


def month_start(year: I64, month: I64) -> I64:
    """Days since 1970 of the first day of (year, month); month may run past 12."""
    months = (year - 1970) * 12 + (month - 1)
    return months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


def add_months(days: I64, months: I64 | int) -> I64:
    """The same day `months` later, clipped to the month's last day (29 Feb + 1 year = 28 Feb)."""
    year, month, day = ymd(days)
    first = month_start(year, month + months)
    following = month_start(year, month + months + 1)
    return np.asarray(np.minimum(first + day - 1, following - 1), dtype=np.int64)


def age_years(birth: I64, as_of: date) -> I64:
    """Completed years at `as_of`."""
    year, month, day = ymd(birth)
    before_birthday = (as_of.month < month) | ((as_of.month == month) & (as_of.day < day))
    return as_of.year - year - before_birthday.astype(np.int64)


def retirement_months(as_of: date) -> tuple[int, int]:
    """Retirement age in months for men and women in the year of `as_of` (REFERENCE §2)."""
    women = {2028: 61 * 12 + 6, 2029: 62 * 12, 2030: 62 * 12 + 6}.get(as_of.year)
    if women is None:
        women = 61 * 12 if as_of.year <= 2027 else 63 * 12
    return 63 * 12, women


def _pick(rng: np.random.Generator, ranges: NDArray[np.int64], group: I64) -> I64:
    """A uniform index into the list of each element's group (ethnicity)."""
    offset = ranges[group, 0]
    count = ranges[group, 1]
    return np.asarray(offset + (rng.random(len(group)) * count).astype(np.int64), dtype=np.int64)


def _at_least(rng: np.random.Generator, x: F64, low: F64 | float) -> F64:
    # A hard floor would pile thousands of people onto one birth date (and run a date out of
    # ИИН serials): spread those below it over the year above it instead.
    return np.where(x < low, low + rng.random(len(x)), x)


def _at_most(rng: np.random.Generator, x: F64, high: F64 | float) -> F64:
    return np.where(x > high, high - rng.random(len(x)), x)


def _lognormal(rng: np.random.Generator, median: F64 | float, sigma: float, n: int) -> F64:
    return np.asarray(median) * np.exp(sigma * rng.standard_normal(n))


def _tenge_to_tiyn(tenge: F64, step: int = 100) -> I64:
    """Whole tenge (rounded to `step` tenge), as tiyn."""
    return (np.round(tenge / step) * step).astype(np.int64) * 100


@dataclass
class _Facts:
    """Facts collected kind by kind, then concatenated and sorted by person."""

    parts: list[dict[str, np.ndarray]]

    def add(
        self,
        person: I64,
        kind: str,
        detail: O | str,
        source: str,
        valid_from: I64,
        *,
        qualifier: O | None = None,
        amount: I64 | None = None,
        quantity: I64 | None = None,
        valid_until: I64 | None = None,
    ) -> None:
        n = len(person)
        if n == 0:
            return

        def column(value: np.ndarray | str | None, fill: object) -> np.ndarray:
            if value is None:
                return np.full(n, fill, dtype=object if fill is None else np.int64)
            if isinstance(value, str):
                return np.full(n, value, dtype=object)
            return value

        self.parts.append(
            {
                "fact_person": person,
                "fact_kind": np.full(n, kind, dtype=object),
                "fact_detail": column(detail, None),
                "fact_qualifier": column(qualifier, None),
                "fact_amount": column(amount, NONE_INT),
                "fact_quantity": column(quantity, NONE_INT),
                "fact_valid_from": valid_from,
                "fact_valid_until": np.full(n, NONE_DAY, dtype=np.int64)
                if valid_until is None
                else valid_until,
                "fact_source": np.full(n, source, dtype=object),
            }
        )

    def columns(self) -> dict[str, np.ndarray]:
        if not self.parts:
            empty_o = np.empty(0, dtype=object)
            empty_i = np.empty(0, dtype=np.int64)
            return {
                "fact_person": empty_i,
                "fact_kind": empty_o,
                "fact_detail": empty_o,
                "fact_qualifier": empty_o,
                "fact_amount": empty_i,
                "fact_quantity": empty_i,
                "fact_valid_from": empty_i,
                "fact_valid_until": empty_i,
                "fact_source": empty_o,
            }
        merged = {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}
        # Person order keeps the (person_id, kind) index inserts local and the ids readable.
        order = np.argsort(merged["fact_person"], kind="stable")
        return {k: v[order] for k, v in merged.items()}


def generate_block(
    *,
    seed: int,
    block: int,
    families: int,
    as_of: date,
    plan: Plan,
    allocator: SerialAllocator,
) -> Tables:
    """Families [block * BLOCK_FAMILIES, + families) of a seed's population."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, block]))
    # Links, contributions and job losses draw from a stream of their own, so the rest of the
    # population is what it was before they were modelled.
    lrng = np.random.default_rng(np.random.SeedSequence([seed, block, 1]))
    today = _days(as_of)
    n_fam = families
    first_number = block * BLOCK_FAMILIES + 1

    # --- households ------------------------------------------------------------------------
    place = rng.choice(len(plan.codes), size=n_fam, p=plan.weights)
    kato = plan.codes[place]
    eth = (rng.random(n_fam) < plan.russian_share[place]).astype(np.int64)
    htype = rng.choice(5, size=n_fam, p=_TYPE_P)
    kids = np.zeros(n_fam, dtype=np.int64)
    with_kids = (htype == NUCLEAR) | (htype == EXTENDED)
    kids[with_kids] = rng.choice(8, size=int(with_kids.sum()), p=_KIDS_P) + 1
    single_parent = htype == SINGLE_PARENT
    kids[single_parent] = rng.choice(8, size=int(single_parent.sum()), p=_KIDS_SINGLE_P) + 1
    # Southern families are larger: a third of them have one more child.
    kids += (kids > 0) & plan.high_fertility[place] & (rng.random(n_fam) < 0.33)
    has_spouse = (htype == COUPLE) | (htype == NUCLEAR) | (htype == EXTENDED)
    adults = 1 + has_spouse.astype(np.int64)
    n_parents = np.where(htype == EXTENDED, np.where(rng.random(n_fam) < 0.6, 1, 2), 0)

    # Children first (fractional years): the youngest is 0 to 25, most often young; the
    # others follow a few years apart, tighter in large families.
    youngest = -9.0 * np.log1p(-rng.random(n_fam) * (1 - np.exp(-25 / 9.0)))
    kids = np.minimum(kids, 10 - adults - n_parents)
    n_kids = int(kids.sum())
    kid_family = np.repeat(np.arange(n_fam), kids)
    kid_start = np.cumsum(kids) - kids
    kid_no = np.arange(n_kids) - kid_start[kid_family]  # 0 = the youngest
    spacing_scale = np.where(kids >= 5, 0.7, 1.2)[kid_family]
    gaps = np.where(kid_no > 0, 0.8 + rng.gamma(2.0, 1.0, n_kids) * spacing_scale, 0.0)
    cumulative = np.cumsum(gaps)
    kid_age = youngest[kid_family] + cumulative - (cumulative - gaps)[kid_start[kid_family]]
    oldest = np.zeros(n_fam)
    oldest[kids > 0] = kid_age[(kid_start + kids - 1)[kids > 0]]
    youngest_birth = today - np.floor(youngest * YEAR).astype(np.int64) - 1

    # Mothers 18 to 46 at their children's births, fathers a little older.
    a0 = np.clip(rng.normal(24.5, 3.5, n_fam), 18, 38)  # mother's age at her first child
    mother = np.maximum(np.minimum(oldest + a0, youngest + 46), oldest + 17.5)
    father = np.clip(mother + rng.normal(3, 3, n_fam), mother - 4, mother + 12)
    father = _at_least(rng, father, np.maximum(oldest + 18.5, 18.5))
    # Caps for the very old; a parent always stays older than the oldest child.
    mother = np.maximum(_at_most(rng, mother, 95.0), oldest + 17.5)
    father = np.maximum(_at_most(rng, father, 97.0), oldest + 18.5)

    u = rng.random(n_fam)
    # Couples without children at home: newly-weds, or parents whose children have left.
    couple_age = np.select(
        [u < 0.3, u < 0.4, u < 0.7],
        [rng.uniform(21, 35, n_fam), rng.uniform(35, 45, n_fam), rng.uniform(45, 63, n_fam)],
        default=rng.uniform(63, 88, n_fam),
    )
    wife_age = _at_least(
        rng, np.minimum(couple_age - rng.normal(3, 3, n_fam), couple_age + 5), 18.5
    )
    u = rng.random(n_fam)
    # Single persons: any adult age, the old more often women.
    single_age = np.where(
        u < 0.35,
        rng.uniform(18.2, 32, n_fam),
        np.where(u < 0.6, rng.uniform(32, 60, n_fam), rng.uniform(60, 92, n_fam)),
    )
    single_female = rng.random(n_fam) < np.where(
        single_age >= 60, 0.72, np.where(single_age < 32, 0.45, 0.5)
    )

    is_couple = htype == COUPLE
    father = np.where(is_couple, couple_age, father)
    mother = np.where(is_couple, wife_age, mother)
    head_female = np.select(
        [htype == SINGLE, htype == SINGLE_PARENT, is_couple],
        [single_female, rng.random(n_fam) < 0.87, rng.random(n_fam) < 0.05],
        default=rng.random(n_fam) < 0.12,
    )
    head_age = np.where(htype == SINGLE, single_age, np.where(head_female, mother, father))
    spouse_age = np.where(head_female, father, mother)

    # Parents of the head: about a generation older, at most 99 (none for very old heads).
    parent1 = head_age + np.clip(rng.normal(27, 4, n_fam), 17.5, 40)
    parent2 = _at_most(
        rng, _at_least(rng, parent1 + rng.normal(-2, 3, n_fam), head_age + 17.5), 99.5
    )
    n_parents = np.where((parent1 > 99.5) | (head_age > 80), 0, n_parents)
    parent1_female = np.where(n_parents == 2, False, rng.random(n_fam) < 0.7)
    # Now and then another relative lives with the family: a sibling, a niece, a grandchild.
    n_other = ((rng.random(n_fam) < 0.04) & (adults + kids + n_parents < 10)).astype(np.int64)
    other_age = _at_least(rng, _at_most(rng, head_age + rng.normal(-8, 12, n_fam), 90.0), 0.1)

    # Person layout: head, spouse, children (youngest first), parents of the head, a relative.
    size = adults + kids + n_parents + n_other
    n = int(size.sum())
    fam = np.repeat(np.arange(n_fam), size)
    start = np.cumsum(size) - size
    pos = np.arange(n) - start[fam]
    is_head = pos == 0
    is_spouse = (pos == 1) & has_spouse[fam]
    child_no = pos - adults[fam]
    is_child = (child_no >= 0) & (child_no < kids[fam])
    parent_no = child_no - kids[fam]
    is_parent = (parent_no >= 0) & (parent_no < n_parents[fam])
    is_other = parent_no >= n_parents[fam]  # past the parents: the relative
    child_age = kid_age[np.where(is_child, kid_start[fam] + child_no, 0)] if n_kids else 0.0

    age = np.select(
        [is_head, is_spouse, is_child, is_parent & (parent_no == 0), is_parent],
        [head_age[fam], spouse_age[fam], child_age, parent1[fam], parent2[fam]],
        default=other_age[fam],
    )
    female = np.select(
        [is_head, is_spouse, is_parent & (parent_no == 0), is_parent],
        [head_female[fam], ~head_female[fam], parent1_female[fam], True],
        default=rng.random(n) < 0.488,
    )
    birth = today - np.floor(age * YEAR).astype(np.int64) - 1
    birth = np.minimum(birth, today)
    years = age_years(birth, as_of)
    role = np.select(
        [is_head, is_spouse, is_child, is_parent], [HEAD, SPOUSE, CHILD, PARENT], default=OTHER
    )

    # --- deaths in the last two years --------------------------------------------------------
    death_p = np.select([years < 1, years < 60, years < 75], [0.004, 0.002, 0.02], default=0.07)
    dead = rng.random(n) < death_p
    death = np.where(dead, np.maximum(today - rng.integers(0, 730, n), birth), NONE_DAY)
    alive = ~dead

    # --- names, languages, phones, addresses ----------------------------------------------
    eth_p = eth[fam]
    surname = _pick(rng, _SURNAME_RANGE, eth)
    maiden = _pick(rng, _SURNAME_RANGE, eth)
    keeps_maiden = rng.random(n_fam) < np.where(eth == 0, 0.3, 0.08)
    father_name = _pick(rng, _MALE_RANGE, eth)
    mother_name = _pick(rng, _FEMALE_RANGE, eth)
    grandfather_name = _pick(rng, _MALE_RANGE, eth)
    # Children's patronymic style per family: Russified, Kazakh (-ұлы/-қызы) or none.
    kid_style = np.where(eth == 0, rng.choice(3, size=n_fam, p=[0.55, 0.35, 0.10]), 0)

    is_father = (is_head | is_spouse) & ~female
    is_mother = (is_head | is_spouse) & female
    single_head = is_head & (htype[fam] == SINGLE)
    male_pick = _pick(rng, _MALE_RANGE, eth_p)
    female_pick = _pick(rng, _FEMALE_RANGE, eth_p)
    first_idx_m = np.where(
        is_father & ~single_head,
        father_name[fam],
        np.where(is_parent, grandfather_name[fam], male_pick),
    )
    first_idx_f = np.where(is_mother & ~single_head, mother_name[fam], female_pick)
    # Siblings never share a first name: step through the list from a random start per family.
    sibling_start = rng.integers(0, 1000, n_fam)[fam] + child_no * 7
    first_idx_m = np.where(
        is_child, _MALE_RANGE[eth_p, 0] + sibling_start % _MALE_RANGE[eth_p, 1], first_idx_m
    )
    first_idx_f = np.where(
        is_child, _FEMALE_RANGE[eth_p, 0] + sibling_start % _FEMALE_RANGE[eth_p, 1], first_idx_f
    )
    first_name = np.where(female, _NAMES["female"][first_idx_f], _NAMES["male"][first_idx_m])

    patr_src = np.where(
        is_child,
        father_name[fam],
        np.where(is_head, grandfather_name[fam], _pick(rng, _MALE_RANGE, eth_p)),
    )
    born_year = ymd(birth)[0]
    adult_style = np.where(
        eth_p == 0,
        np.where(
            rng.random(n) < 0.10,
            2,
            np.where(rng.random(n) < np.where(born_year < 1990, 0.02, 0.33), 1, 0),
        ),
        np.where(rng.random(n) < 0.03, 2, 0),
    )
    style = np.where(is_child, kid_style[fam], adult_style)
    patronymic = np.where(
        style == 2,
        np.full(n, None, dtype=object),
        np.where(
            female,
            np.where(style == 1, _NAMES["daughter_kk"][patr_src], _NAMES["daughter"][patr_src]),
            np.where(style == 1, _NAMES["son_kk"][patr_src], _NAMES["son"][patr_src]),
        ),
    )

    # The head's parents carry the head's maiden name when the head is a married woman.
    head_married_woman = head_female & has_spouse
    surname_idx = np.where(
        is_mother & keeps_maiden[fam] & has_spouse[fam],
        maiden[fam],
        np.where(is_parent & head_married_woman[fam], maiden[fam], surname[fam]),
    )
    last_name = np.where(female, _NAMES["surname_f"][surname_idx], _NAMES["surname_m"][surname_idx])

    base_lang = np.where(
        eth == 0,
        rng.choice(3, size=n_fam, p=[0.62, 0.36, 0.02]),
        rng.choice(3, size=n_fam, p=[0.02, 0.96, 0.02]),
    )
    # A few members differ from the household: Kazakh or Russian, English rarely.
    other_lang = rng.choice(3, size=n, p=[0.48, 0.48, 0.04])
    language = np.where(rng.random(n) < 0.9, base_lang[fam], other_lang)

    has_phone = (years >= 14) & (rng.random(n) < np.where(years >= 75, 0.6, 0.93))
    phone_number = _MOBILE[rng.integers(0, len(_MOBILE), n)] * 10_000_000 + rng.integers(
        0, 10_000_000, n
    )
    phone = np.full(n, None, dtype=object)
    phone[has_phone] = [f"+7{p}" for p in phone_number[has_phone].tolist()]

    street = _STREETS[rng.integers(0, len(_STREETS), n_fam)].tolist()
    house = rng.integers(1, 180, n_fam).tolist()
    flat = np.where(rng.random(n_fam) < 0.6, rng.integers(1, 240, n_fam), 0).tolist()
    settlement = plan.settlement[place].tolist()
    fam_address = np.array(
        [
            f"{s}, ул. {st}, д. {h}, кв. {f}" if f else f"{s}, ул. {st}, д. {h}"
            for s, st, h, f in zip(settlement, street, house, flat, strict=True)
        ],
        dtype=object,
    )

    # --- memberships -----------------------------------------------------------------------
    eighteen = add_months(birth, 18 * 12)
    oldest_birth = today - np.floor(oldest * YEAR).astype(np.int64) - 1
    formed = np.where(
        kids > 0,
        oldest_birth - (rng.uniform(0.2, 3.0, n_fam) * YEAR).astype(np.int64),
        today
        - (rng.random(n_fam) * np.clip(np.minimum(head_age, spouse_age) - 18, 0, 40) * YEAR).astype(
            np.int64
        ),
    )
    joined_parent = np.maximum(formed[fam], today - (rng.random(n) * 15 * YEAR).astype(np.int64))
    from_on = np.select(
        [is_child, is_parent | is_other],
        [birth, joined_parent],
        default=np.maximum(formed[fam], eighteen),
    )
    from_on = np.minimum(np.maximum(from_on, birth), today)
    from_on = np.where(dead, np.minimum(from_on, death), from_on)
    until_on = death

    # --- facts -----------------------------------------------------------------------------
    facts = _Facts([])
    persons = np.arange(n)
    men_ret, women_ret = retirement_months(as_of)
    retire_on = add_months(birth, np.where(female, women_ret, men_ret))
    mother_of_many = is_mother & (kids[fam] >= 5)
    early_on = add_months(birth, 53 * 12)
    retire_on = np.where(
        mother_of_many & (early_on <= today), np.minimum(retire_on, early_on), retire_on
    )
    pensioner = alive & (retire_on <= today)
    working_age = alive & (years >= 18) & ~pensioner

    # Disability (MSEC): more common with age; children get the "child" category.
    dis_p = np.select([years < 18, years < 40, years < 60], [0.02, 0.032, 0.065], default=0.10)
    disabled = alive & (rng.random(n) < dis_p)
    minor = years < 18
    group = np.where(minor, 0, rng.choice([1, 2, 3], size=n, p=[0.10, 0.35, 0.55]))
    dis_detail = np.array(["child", "group_1", "group_2", "group_3"], dtype=object)[group]
    u = rng.random(n)
    cause = _CAUSES[
        np.select(
            [minor, years < 25],
            [
                np.where(u < 0.75, _FROM_CHILDHOOD, _OTHER),
                np.where(u < 0.6, _FROM_CHILDHOOD, np.where(u < 0.9, _GENERAL, _OTHER)),
            ],
            default=np.select(
                [u < 0.70, u < 0.79, u < 0.88],
                [_GENERAL, _OCCUPATIONAL, _FROM_CHILDHOOD],
                default=_OTHER,
            ),
        )
    ]
    dis_from = np.maximum(
        today - (rng.random(n) * np.minimum(years + 0.5, 8) * YEAR).astype(np.int64), birth
    )
    reexamine = (~minor) & (rng.random(n) < 0.45)
    dis_until = np.where(
        minor, eighteen, np.where(reexamine, today + rng.integers(30, 720, n), NONE_DAY)
    )
    idx = persons[disabled]
    facts.add(
        idx,
        "disability",
        dis_detail[idx],
        "msek",
        dis_from[idx],
        qualifier=cause[idx],
        valid_until=dis_until[idx],
    )

    # Study: school from 6/7 to 17, college from 16, university 18 to 24.
    acad_year = as_of.year if (as_of.month, as_of.day) >= (9, 1) else as_of.year - 1
    u = rng.random(n)
    u2 = rng.random(n)
    college = alive & (
        (((years == 16) | (years == 17)) & (u2 < 0.25))
        | ((years >= 18) & (years <= 20) & (u < 0.18))
    )
    school = (
        alive
        & ~college
        & (
            ((years >= 7) & (years <= 16))
            | ((years == 6) & (u < 0.4))
            | ((years == 17) & (u < 0.7))
        )
    )
    university = (
        alive
        & ~college
        & (
            ((years >= 18) & (years <= 22) & (u >= 0.18) & (u < 0.60))
            | ((years >= 23) & (years <= 24) & (u < 0.08))
        )
    )
    part_time = university & (rng.random(n) < 0.12)
    studied = np.select(
        [school, college],
        [np.clip(years - 7, 0, 10), np.clip(years - 16, 0, 3)],
        default=np.clip(years - 18, 0, 5),
    )
    study_from = month_start(acad_year - studied, np.full(n, 9))
    study_from = np.maximum(study_from, birth)
    for mask, detail in ((school, "school"), (college, "college"), (university, "university")):
        idx = persons[mask]
        facts.add(
            idx,
            "study",
            detail,
            "edu",
            study_from[idx],
            qualifier=_STUDY_MODES[part_time[idx].astype(np.int64)],
        )

    # Employment and wages (state revenue data).
    no_income_family = rng.random(n_fam) < 0.04
    young_child = np.zeros(n_fam, dtype=bool)
    young_child[fam[is_child & (years < 3)]] = True
    emp_p = np.where(female, 0.76, 0.86)
    emp_p = np.where(years < 22, 0.45, np.where(years >= 58, 0.6, emp_p))
    emp_p = emp_p * np.where(is_mother & young_child[fam], 0.4, 1.0)
    emp_p = emp_p * np.where(disabled, np.array([1.0, 0.1, 0.4, 0.75])[group], 1.0)
    emp_p = np.where((school | college | university) & ~part_time, 0.04, emp_p)
    employed = working_age & (rng.random(n) < emp_p)
    employed |= pensioner & (years < 70) & (rng.random(n) < 0.12)
    employed &= ~no_income_family[fam]

    age_factor = np.select([years < 25, years < 35, years < 55], [0.70, 0.95, 1.05], default=0.95)
    median_wage = 260_000 * plan.wage_factor[place][fam] * age_factor * np.where(female, 0.82, 1.0)
    wage = np.maximum(_lognormal(rng, median_wage, 0.55, n), 42_500)
    wage_from = np.maximum(
        month_start(np.full(n, as_of.year), as_of.month - rng.integers(0, 36, n)), eighteen
    )
    # Some lost their job at the end of last month and registered as unemployed this month
    # (the job loss payment's newcomers of the reference month).
    this_month = month_start(np.full(n, as_of.year), np.full(n, as_of.month))
    lost_job = (
        employed & ~pensioner & (wage_from <= add_months(this_month, -6)) & (lrng.random(n) < 0.012)
    )
    wage_until = np.where(lost_job, this_month - 1, NONE_DAY)
    idx = persons[employed]
    facts.add(
        idx,
        "income",
        "wages",
        "sgd",
        wage_from[idx],
        amount=_tenge_to_tiyn(wage[idx]),
        valid_until=wage_until[idx],
    )
    # Social insurance (ГФСС): employers pay contributions (5 % of wages, U) for most wage
    # earners, monthly from the first month of the job; informal work pays none.
    contribution = _tenge_to_tiyn(wage * 0.05)
    # Contributions cover whole months: from the first full month of the job.
    wage_y, wage_m, wage_d = ymd(wage_from)
    contrib_from = np.where(wage_d == 1, wage_from, month_start(wage_y, wage_m + 1))
    insured = employed & (lrng.random(n) < 0.88)
    insured &= (wage_until == NONE_DAY) | (contrib_from < wage_until)
    # A job begun this month is insured from next month: no contribution recorded yet.
    insured &= contrib_from <= today
    idx = persons[insured]
    facts.add(
        idx,
        "social_insurance",
        "contribution",
        "gfss",
        contrib_from[idx],
        amount=contribution[idx],
        valid_until=wage_until[idx],
    )
    job_loss_day = this_month + (lrng.random(n) * as_of.day).astype(np.int64)
    idx = persons[lost_job]
    facts.add(idx, "unemployment", "registered", "enbek", job_loss_day[idx])

    other_income = alive & (years >= 25) & ~no_income_family[fam] & (rng.random(n) < 0.04)
    other_amount = np.clip(_lognormal(rng, 120_000.0, 0.8, n), 10_000, 5_000_000)
    other_from = np.maximum(
        month_start(np.full(n, as_of.year), as_of.month - rng.integers(0, 24, n)), eighteen
    )
    idx = persons[other_income]
    facts.add(
        idx, "income", "other", "sgd", other_from[idx], amount=_tenge_to_tiyn(other_amount[idx])
    )

    # Registered unemployed (enbek.kz): about 3 % of the working-age population.
    candidates = working_age & ~employed & ~(school | college | (university & ~part_time))
    candidates &= ~(disabled & (group <= 2) & (group >= 1))
    share = min(1.0, 0.03 * int(working_age.sum()) / max(int(candidates.sum()), 1))
    unemployed = candidates & (rng.random(n) < share)
    idx = persons[unemployed]
    unemp_from = np.maximum(today - rng.integers(0, 240, n), eighteen)
    facts.add(idx, "unemployment", "registered", "enbek", unemp_from[idx])
    # Most of them worked (with wages and contributions) until the month before registering.
    reg_month = month_start(ymd(unemp_from)[0], ymd(unemp_from)[1])
    adult_y, adult_m, _ = ymd(eighteen)
    first_full = month_start(adult_y, adult_m + 1)  # the first whole month as an adult
    job_start = np.maximum(add_months(reg_month, -lrng.integers(4, 48, n)), first_full)
    worked = unemployed & (lrng.random(n) < 0.7) & (job_start < reg_month)
    idx = persons[worked]
    for kind, detail, amount in (
        ("income", "wages", _tenge_to_tiyn(wage)),
        ("social_insurance", "contribution", contribution),
    ):
        facts.add(
            idx,
            kind,
            detail,
            "sgd" if kind == "income" else "gfss",
            job_start[idx],
            amount=amount[idx],
            valid_until=reg_month[idx] - 1,
        )

    # Pensions: years of participation, and the monthly pension as income.
    pm, min_share, max_share = _BASE_PENSION[min(max(as_of.year, 2024), 2026)]
    participation = np.clip(np.round(rng.normal(28, 8, n)), 0, 45).astype(np.int64)
    base = pm * np.clip(min_share + 0.02 * np.maximum(participation - 10, 0), min_share, max_share)
    pension = base + _lognormal(rng, 65_000.0, 0.5, n)
    idx = persons[pensioner]
    facts.add(idx, "pension", "retirement", "enpf", retire_on[idx], quantity=participation[idx])
    facts.add(
        idx, "income", "pension", "enpf", retire_on[idx], amount=_tenge_to_tiyn(pension[idx], 1)
    )

    # State benefits already paid (ГЦВП): most, not all, of those entitled receive them, so the
    # proactive campaigns have someone left to find.
    year_key = min(max(as_of.year, 2024), 2026)
    allowance = pm * _DISABILITY_PM[group]
    gets_allowance = disabled & ~employed & (rng.random(n) < 0.85)
    idx = persons[gets_allowance]
    facts.add(
        idx, "income", "benefits", "gcvp", dis_from[idx], amount=_tenge_to_tiyn(allowance[idx], 1)
    )
    baby = is_child & alive & (birth > add_months(np.full(n, today), -18))
    baby_family = np.zeros(n_fam, dtype=bool)
    baby_family[fam[baby]] = True
    # The child's order is its place among the family's children, counted from the oldest.
    order = np.clip(kids[fam] - 1 - child_no, 0, 3)
    youngest_order = np.zeros(n_fam, dtype=np.int64)
    youngest_order[fam[is_child & (child_no == 0)]] = order[is_child & (child_no == 0)]
    # Mothers at home with a baby who worked, insured, until the month of the birth: the fund
    # pays them (the insured payment), not the budget allowance.
    birth_month = month_start(*ymd(youngest_birth[fam])[:2])
    worked_start = np.maximum(add_months(birth_month, -lrng.integers(8, 60, n)), first_full)
    leave = (is_mother & alive & ~employed & baby_family[fam] & (lrng.random(n) < 0.35)) & (
        worked_start < birth_month
    )
    # One past job each: the registered unemployed above already have theirs.
    leave &= ~worked
    idx = persons[leave]
    for kind, detail, amount in (
        ("income", "wages", _tenge_to_tiyn(wage)),
        ("social_insurance", "contribution", contribution),
    ):
        facts.add(
            idx,
            kind,
            detail,
            "sgd" if kind == "income" else "gfss",
            worked_start[idx],
            amount=amount[idx],
            valid_until=birth_month[idx] - 1,
        )
    carer = is_mother & alive & ~employed & ~gets_allowance & baby_family[fam]
    carer &= rng.random(n) < 0.75
    carer &= ~leave
    idx = persons[carer]
    care_amount = _CHILD_CARE_MRP[youngest_order[fam]] * _MRP[year_key]
    care_from = np.maximum(youngest_birth[fam], from_on)
    facts.add(
        idx,
        "income",
        "benefits",
        "gcvp",
        care_from[idx],
        amount=_tenge_to_tiyn(care_amount[idx], 1),
    )

    # Mothers' awards: Altyn alka for seven or more children, Kumis alka for six; older women
    # whose children have left home hold them too, some with the Soviet-era titles.
    kids_p = kids[fam]
    u = rng.random(n)
    family_award = np.select(
        [kids_p >= 7, kids_p == 6, kids_p == 5],
        [
            np.where(u < 0.85, _ALTYN, _NO_AWARD),
            np.where(u < 0.75, _KUMIS, _NO_AWARD),
            np.where(u < 0.3, _KUMIS, _NO_AWARD),
        ],
        default=_NO_AWARD,
    )
    family_award = np.where(is_mother & alive, family_award, _NO_AWARD)
    award_from = np.minimum(
        youngest_birth[fam] + (rng.uniform(0.5, 3.0, n) * YEAR).astype(np.int64), today
    )
    older_woman = alive & female & (years >= 55) & ~is_child & (family_award == _NO_AWARD)
    u2 = rng.random(n)
    soviet = born_year < 1965
    elder_award = np.where(
        soviet,
        np.select(
            [u2 < 0.3, u2 < 0.45, u2 < 0.6, u2 < 0.8],
            [_HEROINE, _GLORY_1, _GLORY_2, _ALTYN],
            default=_KUMIS,
        ),
        np.where(u2 < 0.5, _ALTYN, _KUMIS),
    )
    elder = older_woman & (rng.random(n) < 0.035)
    award = np.where(elder, elder_award, family_award)
    award_from = np.where(
        elder,
        np.minimum(birth + (rng.uniform(38, 50, n) * YEAR).astype(np.int64), today),
        award_from,
    )
    idx = persons[award != _NO_AWARD]
    facts.add(idx, "award", _AWARDS[award[idx]], "awards", award_from[idx])

    # Property (per household, on the head) and loans (per adult).
    head_idx = start
    owner_ok = alive[head_idx]
    region_wealth = plan.wage_factor[place]
    has_home = owner_ok & (rng.random(n_fam) < 0.55)
    homes = rng.choice([1, 2, 3], size=n_fam, p=[0.85, 0.12, 0.03])
    home_value = _lognormal(rng, 18_000_000 * region_wealth, 0.6, n_fam) * homes
    has_car = owner_ok & (rng.random(n_fam) < 0.33)
    cars = rng.choice([1, 2], size=n_fam, p=[0.9, 0.1])
    car_value = _lognormal(rng, 4_500_000.0, 0.6, n_fam) * cars
    owned_since = np.maximum(
        today - (rng.random(n_fam) * 20 * YEAR).astype(np.int64), eighteen[head_idx]
    )
    fams = np.flatnonzero(has_home)
    facts.add(
        head_idx[fams],
        "property",
        "real_estate",
        "property_registry",
        owned_since[fams],
        amount=_tenge_to_tiyn(home_value[fams], 1000),
        quantity=homes[fams],
    )
    fams = np.flatnonzero(has_car)
    car_since = np.maximum(
        today - (rng.random(n_fam) * 12 * YEAR).astype(np.int64), eighteen[head_idx]
    )
    facts.add(
        head_idx[fams],
        "property",
        "vehicle",
        "property_registry",
        car_since[fams],
        amount=_tenge_to_tiyn(car_value[fams], 1000),
        quantity=cars[fams],
    )
    consumer = alive & (years >= 21) & (years <= 70) & (rng.random(n) < 0.20)
    consumer_amount = np.clip(_lognormal(rng, 700_000.0, 0.9, n), 20_000, 20_000_000)
    consumer_from = np.maximum(today - (rng.random(n) * 4 * YEAR).astype(np.int64), eighteen)
    idx = persons[consumer]
    facts.add(
        idx,
        "loan",
        "consumer",
        "credit_bureau",
        consumer_from[idx],
        amount=_tenge_to_tiyn(consumer_amount[idx]),
    )
    mortgage = alive & (years >= 25) & (years <= 60) & (rng.random(n) < 0.05)
    mortgage_amount = _lognormal(rng, 13_000_000.0, 0.5, n)
    mortgage_from = np.maximum(today - (rng.random(n) * 15 * YEAR).astype(np.int64), eighteen)
    idx = persons[mortgage]
    facts.add(
        idx,
        "loan",
        "mortgage",
        "credit_bureau",
        mortgage_from[idx],
        amount=_tenge_to_tiyn(mortgage_amount[idx], 1000),
    )

    # Civil registry: births in the last year, deaths.
    idx = persons[birth > today - 365]
    facts.add(idx, "birth", "registered", "civil_registry", birth[idx])
    idx = persons[dead]
    facts.add(idx, "death", "registered", "civil_registry", death[idx])

    national_id = np.array(allocator.assign(birth, female), dtype=object)
    links = _links(
        lrng,
        fam=fam,
        start=start,
        htype=htype,
        role=role,
        female=female,
        alive=alive,
        years=years,
        birth=birth,
        from_on=from_on,
        is_mother=is_mother,
        is_father=is_father,
        national_id=national_id,
    )
    numbers = np.arange(first_number, first_number + n_fam, dtype=np.int64)
    return Tables(
        family_number=numbers,
        family_ref=np.array([family_ref(seed, x) for x in numbers.tolist()], dtype=object),
        family_kato=kato,
        national_id=national_id,
        last_name=last_name.astype(object),
        first_name=first_name.astype(object),
        patronymic=patronymic.astype(object),
        birth_on=birth,
        sex=SEX_NAMES[female.astype(np.int64)],
        phone=phone,
        language=LANG_NAMES[language],
        region_kato=kato[fam],
        address=fam_address[fam],
        death_on=death.astype(np.int64),
        member_family=fam.astype(np.int64),
        role=ROLE_NAMES[role],
        from_on=from_on.astype(np.int64),
        until_on=until_on.astype(np.int64),
        **facts.columns(),
        **links,
    )


def _links(
    rng: np.random.Generator,
    *,
    fam: I64,
    start: I64,
    htype: I64,
    role: I64,
    female: B,
    alive: B,
    years: I64,
    birth: I64,
    from_on: I64,
    is_mother: B,
    is_father: B,
    national_id: O,
) -> dict[str, np.ndarray]:
    """Parent-child links of a block (see the module's docstring), by the parent's index."""
    n_fam = len(start)
    n = len(fam)
    assert len(role) == n  # noqa: S101 - one role per person
    mother_of = np.full(n_fam, -1, dtype=np.int64)
    mother_of[fam[is_mother]] = np.flatnonzero(is_mother)
    father_of = np.full(n_fam, -1, dtype=np.int64)
    father_of[fam[is_father]] = np.flatnonzero(is_father)
    children = np.flatnonzero(role == CHILD)
    parents_at_home = np.flatnonzero(role == PARENT)
    heads = start[fam[parents_at_home]]
    minors = np.flatnonzero((role == OTHER) & (years < 18) & (rng.random(n) < 0.5))
    parts: list[tuple[I64, I64, str, I64, I64]] = []
    for holder, relation in ((mother_of, "mother"), (father_of, "father")):
        parent = holder[fam[children]]
        kids = children[parent >= 0]
        parts.append((parent[parent >= 0], kids, relation, birth[kids], np.full(len(kids), -1)))
    for want_female, relation in ((True, "mother"), (False, "father")):
        sel = female[parents_at_home] == want_female
        # The head's parent must be older than the head (always so when generated).
        parts.append(
            (
                parents_at_home[sel],
                heads[sel],
                relation,
                birth[heads[sel]],
                np.full(int(sel.sum()), -1),
            )
        )
    guardian = start[fam[minors]]
    parts.append((guardian, minors, "guardian", from_on[minors], np.full(len(minors), -1)))
    # Young single adults living on their own are older children of a mother in a later
    # family of the block (18 to 42 years older than them, alive).
    singles = np.flatnonzero(
        (role == HEAD) & (htype[fam] == SINGLE) & alive & (years >= 18) & (years <= 30)
    )
    mothers = np.flatnonzero(is_mother & alive)
    if len(singles) and len(mothers):
        after = np.searchsorted(fam[mothers], fam[singles], side="right")
        room = len(mothers) - after
        pick = after + (rng.random(len(singles)) * np.maximum(room, 1)).astype(np.int64)
        pick = np.minimum(pick, len(mothers) - 1)
        mother = mothers[pick]
        gap = (birth[singles] - birth[mother]) / YEAR
        ok = (room > 0) & (gap >= 18) & (gap <= 42) & (rng.random(len(singles)) < 0.6)
        kids = singles[ok]
        parts.append((mother[ok], kids, "mother", birth[kids], np.full(len(kids), -1)))
    parent = np.concatenate([p[0] for p in parts]).astype(np.int64)
    child = np.concatenate([p[1] for p in parts]).astype(np.int64)
    relations = np.concatenate([np.full(len(p[0]), p[2], dtype=object) for p in parts])
    since = np.concatenate([p[3] for p in parts]).astype(np.int64)
    order = np.argsort(parent, kind="stable")
    return {
        "link_parent": parent[order],
        "link_child": child[order],
        "link_child_nid": national_id[child[order]],
        "link_relation": relations[order],
        "link_from": np.maximum(since[order], birth[child[order]]),
        "link_until": np.full(len(order), NONE_DAY, dtype=np.int64),
    }


def generate(
    *,
    seed: int,
    families: int,
    as_of: date,
    plan: Plan,
    allocator: SerialAllocator,
    chunk_families: int,
    first_chunk_families: int | None = None,
) -> Iterator[Tables]:
    """Chunks of `chunk_families` families (the first may be smaller, and so may the last),
    in order. The random blocks and the chunks are independent: a chunk may end inside a block.
    """
    n_blocks = -(-families // BLOCK_FAMILIES)
    pending: list[Tables] = []
    pending_families = 0
    chunk = min(first_chunk_families or chunk_families, chunk_families)
    for block in range(n_blocks):
        part = generate_block(
            seed=seed,
            block=block,
            families=min(BLOCK_FAMILIES, families - block * BLOCK_FAMILIES),
            as_of=as_of,
            plan=plan,
            allocator=allocator,
        )
        pending.append(part)
        pending_families += part.families
        while pending_families >= chunk:
            merged = Tables.concat(pending)
            yield merged.slice_families(0, chunk)
            rest = merged.slice_families(chunk, merged.families)
            pending = [rest] if rest.families else []
            pending_families = rest.families
            chunk = chunk_families
    if pending_families:
        yield Tables.concat(pending)


_DAY_1900 = _days(date(1900, 1, 1))
# Every date from 1900 to 2100 as ISO text, and None last: formatting becomes a lookup, and
# equal dates share one str object (cheap to pickle, to bind and to compare).
_DAY_TEXT = np.concatenate(
    [
        np.datetime_as_string(
            np.arange(_DAY_1900, _days(date(2101, 1, 1)), dtype=np.int64).astype("datetime64[D]"),
            unit="D",
        ).astype(object),
        np.array([None], dtype=object),
    ]
)


def iso_dates(days: I64) -> O:
    """ISO date strings, None where the day is NONE_DAY."""
    index = days - _DAY_1900
    missing = days == NONE_DAY
    inside = (index >= 0) & (index < len(_DAY_TEXT) - 1)
    if bool((inside | missing).all()):
        return _DAY_TEXT[np.where(missing, len(_DAY_TEXT) - 1, index)]
    text = np.datetime_as_string(np.where(missing, 0, days).astype("datetime64[D]"), unit="D")
    out = text.astype(object)
    out[missing] = None
    return out


def optional_ints(values: I64) -> O:
    """Python ints, None where the value is NONE_INT."""
    out = values.astype(object)
    out[values == NONE_INT] = None
    return out


class Digest:
    """A SHA-256 over generated rows in load order, keyed by natural keys (family ref, ИИН)
    instead of database ids, which depend on what the store already holds.

    Families, persons (with their membership), facts and parent-child links are hashed as four
    streams, so the digest does not depend on how the rows were cut into chunks.
    """

    def __init__(self) -> None:
        self._streams = [hashlib.sha256() for _ in range(4)]

    def add_rows(self, stream: int, rows: Iterable[tuple[object, ...]]) -> None:
        """Rows of one stream: 0 families, 1 persons, 2 facts, 3 links (see `update`)."""
        self._streams[stream].update("".join(repr(row) + "\n" for row in rows).encode())

    def update(self, tables: Tables) -> None:
        self.add_rows(0, zip(tables.family_ref.tolist(), tables.family_kato.tolist(), strict=True))
        person_columns = (
            tables.national_id,
            tables.last_name,
            tables.first_name,
            tables.patronymic,
            iso_dates(tables.birth_on),
            tables.sex,
            tables.phone,
            tables.language,
            tables.region_kato,
            tables.address,
            iso_dates(tables.death_on),
            tables.family_ref[tables.member_family],
            tables.role,
            iso_dates(tables.from_on),
            iso_dates(tables.until_on),
        )
        self.add_rows(1, zip(*(c.tolist() for c in person_columns), strict=True))
        fact_columns = (
            tables.national_id[tables.fact_person],
            tables.fact_kind,
            tables.fact_detail,
            tables.fact_qualifier,
            optional_ints(tables.fact_amount),
            optional_ints(tables.fact_quantity),
            iso_dates(tables.fact_valid_from),
            iso_dates(tables.fact_valid_until),
            tables.fact_source,
        )
        self.add_rows(2, zip(*(c.tolist() for c in fact_columns), strict=True))
        link_columns = (
            tables.national_id[tables.link_parent],
            tables.link_child_nid,
            tables.link_relation,
            iso_dates(tables.link_from),
            iso_dates(tables.link_until),
        )
        self.add_rows(3, zip(*(c.tolist() for c in link_columns), strict=True))

    def hexdigest(self) -> str:
        combined = hashlib.sha256()
        for stream in self._streams:
            combined.update(stream.digest())
        return combined.hexdigest()
