"""Synthetic `person` and `fact` Arrow tables for tests and benchmarks, deterministic by seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

# Region prefixes of KATO codes with rough relative populations (thousands, 2024; not statistics
# to quote: they only shape the synthetic population).
_REGIONS: dict[str, int] = {
    "10": 605,
    "11": 785,
    "15": 930,
    "19": 1520,
    "23": 700,
    "27": 690,
    "31": 1220,
    "33": 700,
    "35": 1130,
    "39": 830,
    "43": 840,
    "47": 790,
    "55": 750,
    "59": 530,
    "61": 2100,
    "62": 220,
    "63": 720,
    "71": 1420,
    "75": 2230,
    "79": 1220,
}

# Number of children per family (0..8): about 6.5 % of families have four or more.
_CHILDREN_P = np.array([0.29, 0.20, 0.22, 0.20, 0.045, 0.018, 0.01, 0.008, 0.006])

PERSON_SCHEMA = pa.schema(
    [
        ("person_id", pa.int64()),
        ("family_id", pa.int64()),
        ("role", pa.string()),
        ("sex", pa.string()),
        ("birth_on", pa.date32()),
        ("death_on", pa.date32()),
        ("region_kato", pa.string()),
    ]
)
FACT_SCHEMA = pa.schema(
    [
        ("person_id", pa.int64()),
        ("kind", pa.string()),
        ("detail", pa.string()),
        ("qualifier", pa.string()),
        ("amount_minor", pa.int64()),
        ("quantity", pa.int32()),
        ("valid_from", pa.date32()),
        ("valid_until", pa.date32()),
        ("source", pa.string()),
    ]
)
# Parent-child links: birth (mother, father), adoption (adoptive_mother, adoptive_father) and
# guardianship (guardian), with the child's life dates so that a mother's children count
# wherever they live, and the link's own validity.
LINK_SCHEMA = pa.schema(
    [
        ("child_id", pa.int64()),
        ("parent_id", pa.int64()),
        ("relation", pa.string()),
        ("child_birth_on", pa.date32()),
        ("child_death_on", pa.date32()),
        ("valid_from", pa.date32()),
        ("valid_until", pa.date32()),
        ("source", pa.string()),
    ]
)

_EPOCH = np.datetime64("1970-01-01", "D")


@dataclass(frozen=True)
class Population:
    """The input tables of the rules engine: persons, facts and parent-child links."""

    person: pa.Table
    fact: pa.Table
    link: pa.Table = field(default_factory=LINK_SCHEMA.empty_table)


def _codes(values: list[str], index: np.ndarray[Any, Any]) -> pa.Array:
    """A string column from small-vocabulary codes, built in C++ rather than per row."""
    dictionary = pa.array(values, pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(index, pa.int32()), dictionary).cast(pa.string())


def _dates(days: np.ndarray[Any, Any], mask: np.ndarray[Any, Any] | None = None) -> pa.Array:
    return pa.array(days.astype("int32"), pa.int32(), mask=mask).cast(pa.date32())


class _Facts:
    """Accumulates fact columns as numpy blocks, one block per kind of fact."""

    KINDS: ClassVar[list[str]] = [
        "income",
        "unemployment",
        "disability",
        "study",
        "award",
        "pension",
        "property",
        "loan",
        "birth",
        "death",
        "social_insurance",
    ]
    DETAILS: ClassVar[list[str]] = [
        "wages",
        "pension",
        "benefits",
        "other",
        "registered",
        "group_1",
        "group_2",
        "group_3",
        "child",
        "school",
        "college",
        "university",
        "altyn_alka",
        "kumis_alka",
        "mother_heroine",
        "maternal_glory_1",
        "maternal_glory_2",
        "retirement",
        "real_estate",
        "vehicle",
        "consumer",
        "mortgage",
        "contribution",
    ]
    QUALIFIERS: ClassVar[list[str]] = [
        "",
        "general_illness",
        "occupational",
        "from_childhood",
        "other",
        "full_time",
        "part_time",
    ]
    SOURCES: ClassVar[list[str]] = [
        "kgd",
        "enpf",
        "gfss",
        "mtszn",
        "mon",
        "zags",
        "gbdfl",
        "mvd",
        "pkb",
    ]

    def __init__(self) -> None:
        self.blocks: list[dict[str, np.ndarray[Any, Any]]] = []

    def add(
        self,
        person_id: np.ndarray[Any, Any],
        kind: str,
        detail: str | np.ndarray[Any, Any],
        source: str,
        valid_from: np.ndarray[Any, Any] | int,
        *,
        valid_until: np.ndarray[Any, Any] | None = None,
        qualifier: str | np.ndarray[Any, Any] = "",
        amount: np.ndarray[Any, Any] | None = None,
        quantity: np.ndarray[Any, Any] | None = None,
    ) -> None:
        n = len(person_id)
        if n == 0:
            return

        def index(vocab: list[str], value: str | np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
            if isinstance(value, str):
                return np.full(n, vocab.index(value), np.int32)
            uniques, inverse = np.unique(value, return_inverse=True)
            return np.array([vocab.index(str(v)) for v in uniques], np.int32)[inverse]

        self.blocks.append(
            {
                "person_id": person_id.astype(np.int64),
                "kind": np.full(n, self.KINDS.index(kind), np.int32),
                "detail": index(self.DETAILS, detail),
                "qualifier": index(self.QUALIFIERS, qualifier),
                "amount": (np.zeros(n, np.int64) if amount is None else amount.astype(np.int64)),
                "has_amount": np.full(n, amount is not None),
                "quantity": (
                    np.zeros(n, np.int32) if quantity is None else quantity.astype(np.int32)
                ),
                "has_quantity": np.full(n, quantity is not None),
                "valid_from": np.broadcast_to(valid_from, n).astype(np.int32),
                "valid_until": (
                    np.zeros(n, np.int32) if valid_until is None else valid_until.astype(np.int32)
                ),
                "has_until": np.full(n, valid_until is not None),
                "source": np.full(n, self.SOURCES.index(source), np.int32),
            }
        )

    def table(self) -> pa.Table:
        cols = {k: np.concatenate([b[k] for b in self.blocks]) for k in self.blocks[0]}
        qualifier = _codes(self.QUALIFIERS, cols["qualifier"])
        qualifier = pa.array(
            qualifier.to_numpy(zero_copy_only=False), pa.string(), mask=cols["qualifier"] == 0
        )
        return pa.Table.from_arrays(
            [
                pa.array(cols["person_id"], pa.int64()),
                _codes(self.KINDS, cols["kind"]),
                _codes(self.DETAILS, cols["detail"]),
                qualifier,
                pa.array(cols["amount"], pa.int64(), mask=~cols["has_amount"]),
                pa.array(cols["quantity"], pa.int32(), mask=~cols["has_quantity"]),
                _dates(cols["valid_from"]),
                _dates(cols["valid_until"], mask=~cols["has_until"]),
                _codes(self.SOURCES, cols["source"]),
            ],
            schema=FACT_SCHEMA,
        )


def generate(families: int, *, seed: int = 0, as_of: date = date(2026, 1, 1)) -> Population:
    """Build `person` and `fact` for `families` families living on `as_of`.

    About 3.3 persons per family; roughly 6 % of families have four or more children, 4 % of
    persons have a disability, a third of adults carry a consumer loan or a mortgage, and a few
    families have lost their head. Ids are 1..n for families and persons.
    """
    rng = np.random.default_rng(seed)
    today = int((np.datetime64(as_of, "D") - _EPOCH).astype(int))
    f = families

    prefixes = list(_REGIONS)
    weights = np.array([_REGIONS[p] for p in prefixes], float)
    region_idx = rng.choice(len(prefixes), size=f, p=weights / weights.sum())
    head_age = np.clip(rng.normal(46, 15, f), 20, 92).astype(np.int64)
    head_male = rng.random(f) < 0.7
    spouse = rng.random(f) < np.where(head_age < 70, 0.76, 0.45)
    n_children = rng.choice(len(_CHILDREN_P), size=f, p=_CHILDREN_P / _CHILDREN_P.sum())
    n_children = np.where(head_age > 62, n_children // 2, n_children)
    n_children = np.where(head_age < 24, np.minimum(n_children, 1), n_children)
    parent = (rng.random(f) < 0.12) & (head_age < 55)
    size = 1 + spouse + n_children + parent

    fam = np.repeat(np.arange(f), size)
    n = len(fam)
    offsets = np.concatenate([[0], np.cumsum(size)[:-1]])
    pos = np.arange(n) - offsets[fam]
    child_start = 1 + spouse[fam].astype(np.int64)
    is_head = pos == 0
    is_spouse = (pos == 1) & spouse[fam]
    is_child = (pos >= child_start) & (pos < child_start + n_children[fam])
    is_parent = ~(is_head | is_spouse | is_child)
    role = np.select([is_head, is_spouse, is_child], [0, 1, 2], 3)

    hage = head_age[fam]
    age = np.where(is_head, hage, 0)
    age = np.where(is_spouse, np.clip(hage + rng.normal(-2, 4, n), 18, 95), age)
    span = np.clip(hage - 18, 1, 24)
    age = np.where(is_child, np.floor(rng.random(n) * span), age)
    age = np.where(is_parent, np.clip(hage + 26 + rng.normal(0, 4, n), 60, 99), age)
    age = age.astype(np.int64)
    male = np.where(is_head, head_male[fam], rng.random(n) < 0.5)
    male = np.where(is_spouse, ~head_male[fam], male)
    male = np.where(is_parent, rng.random(n) < 0.3, male)
    birth = today - (age * 365.25 + rng.random(n) * 364).astype(np.int64)

    # Deaths: 0.5 % of families lost their head (survivor cases); 3 % of live-in parents died.
    dead = (is_head & (rng.random(n) < 0.005) & (size[fam] > 1)) | (
        is_parent & (rng.random(n) < 0.03)
    )
    death = today - (rng.random(n) * 1000).astype(np.int64)
    person_id = np.arange(1, n + 1, dtype=np.int64)
    family_id = (fam + 1).astype(np.int64)
    region = _codes([p + "0000000" for p in prefixes], region_idx[fam])
    person = pa.Table.from_arrays(
        [
            pa.array(person_id),
            pa.array(family_id),
            _codes(["head", "spouse", "child", "parent"], role),
            _codes(["F", "M"], male.astype(np.int32)),
            _dates(birth),
            _dates(death, mask=~dead),
            region,
        ],
        schema=PERSON_SCHEMA,
    )

    facts = _Facts()
    alive = ~dead
    adult = alive & (age >= 18)
    working_age = adult & np.where(male, age < 63, age < 61)
    retired = adult & ~working_age
    u = rng.random(n)

    # Full-time study: school 7-17, college/university for 45 % of 18-22 year-olds.
    school = alive & (age >= 7) & (age <= 17)
    facts.add(
        person_id[school], "study", "school", "mon", birth[school] + 7 * 365, qualifier="full_time"
    )
    higher = alive & (age >= 18) & (age <= 22) & (u < 0.45)
    level = np.where(rng.random(n) < 0.6, "university", "college")[higher]
    mode = np.where(rng.random(n) < 0.85, "full_time", "part_time")[higher]
    facts.add(person_id[higher], "study", level, "mon", birth[higher] + 18 * 365, qualifier=mode)
    mode_full = np.zeros(n, bool)
    mode_full[higher] = mode == "full_time"
    student = higher & mode_full

    # Wages: lognormal around a 280 000 ₸ median, 3 % reported twice (tax and pension fund).
    wage_p = np.where(male, 0.74, 0.62)
    employed = working_age & ~student & (rng.random(n) < wage_p)
    wage = (np.exp(rng.normal(np.log(280_000), 0.6, n)) * 100).astype(np.int64)
    since = today - (rng.random(n) * 3000).astype(np.int64)
    facts.add(person_id[employed], "income", "wages", "kgd", since[employed], amount=wage[employed])
    dup = employed & (rng.random(n) < 0.03)
    facts.add(
        person_id[dup],
        "income",
        "wages",
        "enpf",
        since[dup],
        amount=(wage[dup] * rng.uniform(0.9, 1.1, int(dup.sum()))),
    )

    # Registered unemployed: lost a job in the last 10 months, wages until the day before.
    jobless = working_age & ~employed & ~student & (rng.random(n) < 0.14)
    registered = today - (rng.random(n) * 300).astype(np.int64)
    facts.add(person_id[jobless], "unemployment", "registered", "mtszn", registered[jobless])
    facts.add(
        person_id[jobless],
        "income",
        "wages",
        "kgd",
        registered[jobless] - 900,
        valid_until=registered[jobless] - 1,
        amount=wage[jobless],
    )

    # Pensions: participation years and a pension income.
    years = np.clip(rng.normal(22, 9, n), 0, 45).astype(np.int64)
    facts.add(
        person_id[retired],
        "pension",
        "retirement",
        "enpf",
        birth[retired] + 61 * 365,
        quantity=years[retired],
    )
    pension = (rng.uniform(90_000, 260_000, n) * 100).astype(np.int64)
    facts.add(
        person_id[retired],
        "income",
        "pension",
        "enpf",
        birth[retired] + 61 * 365,
        amount=pension[retired],
    )

    # Disability: about 4 %, more often with age; children get the "child" category.
    p_dis = np.where(age < 18, 0.015, np.where(age < 60, 0.04, 0.09))
    disabled = alive & (rng.random(n) < p_dis)
    group = np.where(
        age < 18, "child", rng.choice(["group_1", "group_2", "group_3"], n, p=[0.15, 0.45, 0.40])
    )
    cause = rng.choice(
        ["general_illness", "occupational", "from_childhood", "other"], n, p=[0.8, 0.07, 0.1, 0.03]
    )
    dis_from = today - (rng.random(n) * 2500).astype(np.int64)
    dis_from = np.maximum(dis_from, birth + 30)
    facts.add(
        person_id[disabled],
        "disability",
        group[disabled],
        "mtszn",
        dis_from[disabled],
        qualifier=cause[disabled],
    )

    # Awards: mothers of six or more; a few older women from earlier titles.
    kids = n_children[fam]
    mother = alive & ~male & (is_head | is_spouse)
    kumis = mother & (kids == 6)
    altyn = mother & (kids >= 7)
    old_award = alive & ~male & (age >= 55) & (rng.random(n) < 0.03)
    title = rng.choice(
        ["altyn_alka", "kumis_alka", "mother_heroine", "maternal_glory_1", "maternal_glory_2"], n
    )
    award_from = today - (rng.random(n) * 4000).astype(np.int64)
    facts.add(person_id[kumis], "award", "kumis_alka", "mtszn", award_from[kumis])
    facts.add(person_id[altyn], "award", "altyn_alka", "mtszn", award_from[altyn])
    facts.add(person_id[old_award], "award", title[old_award], "mtszn", award_from[old_award])

    # Property and loans.
    home = alive & is_head & (rng.random(n) < 0.65)
    facts.add(
        person_id[home],
        "property",
        "real_estate",
        "gbdfl",
        since[home],
        quantity=rng.choice([1, 2, 3], int(home.sum()), p=[0.8, 0.15, 0.05]),
    )
    car = adult & (is_head | is_spouse) & (rng.random(n) < 0.35)
    facts.add(person_id[car], "property", "vehicle", "mvd", since[car], quantity=np.ones(car.sum()))
    consumer = adult & (age < 70) & (rng.random(n) < 0.22)
    facts.add(
        person_id[consumer],
        "loan",
        "consumer",
        "pkb",
        today - 200,
        amount=(rng.uniform(50_000, 3_000_000, int(consumer.sum())) * 100),
    )
    mortgage = adult & (age < 65) & (rng.random(n) < 0.07)
    facts.add(
        person_id[mortgage],
        "loan",
        "mortgage",
        "pkb",
        today - 900,
        amount=(rng.uniform(5e6, 4e7, int(mortgage.sum())) * 100),
    )

    # Social insurance: employers pay contributions for 85 % of the employed (one fact over
    # the employment here; the registry's file has a row per month), and had paid them for
    # most of the jobless before they lost the job.
    insured = employed & (rng.random(n) < 0.85)
    facts.add(
        person_id[insured],
        "social_insurance",
        "contribution",
        "gfss",
        since[insured],
        amount=wage[insured] // 20,
    )
    was_insured = jobless & (rng.random(n) < 0.8)
    facts.add(
        person_id[was_insured],
        "social_insurance",
        "contribution",
        "gfss",
        registered[was_insured] - 900,
        valid_until=registered[was_insured] - 1,
        amount=wage[was_insured] // 20,
    )

    # Births of the last two years and deaths are registered facts too.
    baby = is_child & (age < 2)
    facts.add(person_id[baby], "birth", "registered", "zags", birth[baby])
    facts.add(person_id[dead], "death", "registered", "zags", death[dead])
    return Population(person=person, fact=facts.table(), link=_links(person, is_child, male))


def _links(
    person: pa.Table, is_child: np.ndarray[Any, Any], male: np.ndarray[Any, Any]
) -> pa.Table:
    """Birth links of each child to the head and spouse of its family (by sex)."""
    family = person["family_id"].to_numpy()
    role = person["role"].to_numpy(zero_copy_only=False)
    ids = person["person_id"].to_numpy()
    parents = (role == "head") | (role == "spouse")
    children = np.flatnonzero(is_child)
    parts: list[pa.Table] = []
    for is_male, relation in ((False, "mother"), (True, "father")):
        who = np.flatnonzero(parents & (male == is_male))
        by_family = np.zeros(int(family.max(initial=0)) + 1, np.int64)
        by_family[family[who]] = ids[who]
        parent = by_family[family[children]]
        kids = children[parent > 0]
        taken = pa.array(kids)
        parts.append(
            pa.Table.from_arrays(
                [
                    pa.array(ids[kids]),
                    pa.array(parent[parent > 0]),
                    pa.array(np.full(len(kids), relation)),
                    person["birth_on"].take(taken),
                    person["death_on"].take(taken),
                    person["birth_on"].take(taken),
                    pa.nulls(len(kids), pa.date32()),
                    pa.array(np.full(len(kids), "zags")),
                ],
                schema=LINK_SCHEMA,
            )
        )
    return pa.concat_tables(parts).combine_chunks()
