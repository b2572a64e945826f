"""Built-in variables computed from the `person` and `fact` tables for a period.

What a missing fact means (the engine never guesses):

- no income fact overlapping a window: zero income for the days it does not cover;
- no disability fact: no disability (`disabled` false, `disability_group` 0, cause '');
- no study fact: not studying; no unemployment fact: not registered as unemployed;
- no award, pension, property or loan fact: none (false or 0);
- no death fact and no `death_on`: alive.

A fact "holds in the period" when its validity overlaps the period. Incomes are monthly rates:
an average over a window weights each fact by the days it covers, so a wage that started mid
window counts for its days only; results are whole tiyn.

When two agencies report the same income (same person, detail and start date) the larger amount
counts once. For the other kinds duplicates cannot add up: flags are "any", counts and amounts
take the maximum, and the disability group the most severe one.

Period constants are written as `zzper_*` placeholders and bound to literals per period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from socialcard.rules.engine.model import RetirementStep, T
from socialcard.rules.engine.periods import Period, add_months


@dataclass(frozen=True)
class PersonBuiltin:
    """A person-level built-in: SQL over the prepared person row `p` and fact aggregates `fa`."""

    name: str
    type: T
    unit: str
    title: dict[str, str]
    sql: str
    aggs: tuple[str, ...] = ()
    retirement: bool = False  # needs the pack's retirement-age schedule


def _t(kk: str, ru: str, en: str) -> dict[str, str]:
    return {"kk": kk, "ru": ru, "en": en}


# --- the prepared (period-independent) input -----------------------------------------------
# Facts become small integer codes with validity as day numbers, and each carries the bit it
# sets in the per-person `flags` aggregate, so a period's work is integer arithmetic.
FACT_CODES: dict[tuple[str, str], int] = {
    ("income", "wages"): 1,
    ("income", "pension"): 2,
    ("income", "benefits"): 3,
    ("income", "other"): 4,
    ("unemployment", "registered"): 5,
    ("disability", "group_1"): 6,
    ("disability", "group_2"): 7,
    ("disability", "group_3"): 8,
    ("disability", "child"): 9,
    ("study", "school"): 10,
    ("study", "college"): 11,
    ("study", "university"): 12,
    ("award", "altyn_alka"): 13,
    ("award", "kumis_alka"): 14,
    ("award", "mother_heroine"): 15,
    ("award", "maternal_glory_1"): 16,
    ("award", "maternal_glory_2"): 17,
    ("pension", "retirement"): 18,
    ("property", "real_estate"): 19,
    ("property", "vehicle"): 20,
    ("loan", "consumer"): 21,
    ("loan", "mortgage"): 22,
    ("birth", "registered"): 23,
    ("death", "registered"): 24,
    ("social_insurance", "contribution"): 26,
    # Not registry facts: a family's well-being result, one fact per member and scoring run,
    # valid from the run's period until the next scored period (`WELLBEING_SCALES`).
    ("wellbeing", "level"): 28,
    ("wellbeing", "category"): 29,
}
# Codes of facts the engine derives from parent-child links when it prepares its input (they
# are not in the registry's vocabulary): a child of a woman who reached 8 alive (on the mother,
# from the 8th birthday, `quantity` its ordinal), and the caring parent's social-insurance
# contributions copied onto the child (see `prepare_link_sql`).
RAISED8_CODE = 25
CONTRIBUTION_CODE = 26
CARER_CONTRIBUTION_CODE = 27
# Facts that count back before the period (income and contribution windows), not only when live.
LOOKBACK_CODES_SQL = "(f.code <= 4 OR f.code BETWEEN 26 AND 27)"


def looks_back(code: int) -> bool:
    """Whether a fact of this code is read over windows before the period (`LOOKBACK_CODES_SQL`)."""
    return code <= 4 or CONTRIBUTION_CODE <= code <= CARER_CONTRIBUTION_CODE


# The family's well-being result as a rule input (the adapter, `wellbeing.inputs`, writes it as
# facts of kind `wellbeing`): `quantity` is the level's position in its scale (1-based) and
# `amount_minor` the id of the scoring run. The 2023 methodology (order No. 267) grades A..E
# (A best); the 2025 scoring model numbers categories 1..6 (6 high well-being, REFERENCE.md §3).
WELLBEING_SCALES: dict[str, tuple[str, ...]] = {
    "level": ("A", "B", "C", "D", "E"),
    "category": ("1", "2", "3", "4", "5", "6"),
}
# A built-in and the built-in holding the scoring run it came from: wherever a version reads
# the first, its decisions also keep the second (the run id is part of the explanation).
RUN_OF = {"wellbeing_level": "wellbeing_level_run", "wellbeing_category": "wellbeing_category_run"}


def wellbeing_code_sql(scale: str, column: str) -> str:
    """The level code (text) of a scale from its 1-based position in `column`."""
    whens = " ".join(
        f"WHEN {column} = {i} THEN '{code}'"
        for i, code in enumerate(WELLBEING_SCALES[scale], start=1)
    )
    return f"CASE {whens} END"


# Parent-child links (the `link` input). The legal mother of a child is its adoptive mother
# where there is one, else its birth mother: birth order and "raised to age 8" count her
# children. The caring parent is the child's mother living in the child's family, else its
# father there, else a guardian there (adoptive parents as parents), living and with an open link.
MOTHER_RELATIONS = ("mother", "adoptive_mother")
LINK_RELATIONS = ("mother", "father", "adoptive_mother", "adoptive_father", "guardian")
CARER_PRIORITY = {
    "mother": 0,
    "adoptive_mother": 0,
    "father": 1,
    "adoptive_father": 1,
    "guardian": 2,
}
RAISED_AGE = 8
QUALIFIER_CODES = {
    "general_illness": 1,
    "occupational": 2,
    "from_childhood": 3,
    "other": 4,
    "full_time": 5,
    "part_time": 6,
}
STUDY_FT_BIT = 31
DISABILITY_BIT = 32  # 16 bits: (group rank - 1) * 4 + (cause rank - 1), most severe lowest
OPEN_END = "DATE '2200-01-01'"
_EPOCH = "DATE '1970-01-01'"


def _code_sql() -> str:
    kinds: dict[str, list[tuple[str, int]]] = {}
    for (kind, detail), code in FACT_CODES.items():
        kinds.setdefault(kind, []).append((detail, code))
    parts = [
        f"WHEN '{kind}' THEN CASE detail "
        + " ".join(f"WHEN '{d}' THEN {c}" for d, c in details)
        + " END"
        for kind, details in kinds.items()
    ]
    return f"CAST(CASE kind {' '.join(parts)} END AS TINYINT)"


def _qual_sql() -> str:
    whens = " ".join(f"WHEN '{q}' THEN {c}" for q, c in QUALIFIER_CODES.items())
    return f"CAST(CASE qualifier {whens} END AS TINYINT)"


def legal_mother_sql(link: str) -> str:
    """Each child's legal mother (adoptive before birth mother, then the latest link): the
    relation `prepare_person_sql` and `prepare_fact_sql` read as `mothers`."""
    return (
        "SELECT child_id, parent_id, child_birth_on AS b, child_death_on AS d FROM (SELECT"
        " l.*, row_number() OVER (PARTITION BY l.child_id ORDER BY CASE l.relation WHEN"
        " 'adoptive_mother' THEN 0 ELSE 1 END, l.valid_from DESC NULLS LAST, l.parent_id) AS rn"
        f" FROM {link} AS l WHERE l.relation IN ('mother', 'adoptive_mother')"
        " AND l.parent_id IS NOT NULL AND l.child_id IS NOT NULL) WHERE rn = 1"
    )


def carer_sql(person: str, fact: str, link: str) -> str:
    """Each person's caring parent in their own family (`CARER_PRIORITY`, then the lower id):
    the relation (child_id, carer_id) `prepare_person_sql` and `prepare_fact_sql` read as
    `carers`."""
    priority = " ".join(f"WHEN '{r}' THEN {n}" for r, n in CARER_PRIORITY.items())
    return (
        "SELECT child_id, parent_id AS carer_id FROM (SELECT l.child_id, l.parent_id,"
        f" row_number() OVER (PARTITION BY l.child_id ORDER BY CASE l.relation {priority} END,"
        f" l.parent_id) AS rn FROM {link} AS l JOIN {person} AS c ON c.person_id = l.child_id"
        f" JOIN {person} AS q ON q.person_id = l.parent_id WHERE c.family_id IS NOT NULL"
        " AND q.family_id = c.family_id AND q.death_on IS NULL AND l.valid_until IS NULL"
        f" AND l.relation IN ({', '.join(repr(r) for r in CARER_PRIORITY)}) AND q.person_id"
        f" NOT IN (SELECT person_id FROM {fact} WHERE kind = 'death' AND person_id IS NOT NULL))"
        " WHERE rn = 1"
    )


def prepare_person_sql(
    person: str,
    fact: str,
    retirement: tuple[str, str] | None,
    *,
    mothers: str | None = None,
    carers: str | None = None,
) -> str:
    """The prepared person table: keys, birth as integers, deaths merged, birth rank, and the
    retirement age of the pack's schedule (it depends on sex and birth date only).

    With parent-child links (`mothers` as `legal_mother_sql`, `carers` as `carer_sql`, each
    computed once by the caller for both prepared tables): `birth_rank` (the order of birth
    among the legal mother's children, wherever they live) and `carer_id` (the caring parent
    in the person's family).
    """
    years, months = retirement or ("NULL", "NULL")
    if mothers is None or carers is None:
        lineage_cols = "CAST(NULL AS INTEGER) AS birth_rank, CAST(NULL AS BIGINT) AS carer_id"
        lineage_join = ""
    else:
        lineage_cols = "CAST(lr.birth_rank AS INTEGER) AS birth_rank, lc.carer_id"
        lineage_join = (
            " LEFT JOIN (SELECT child_id, row_number() OVER (PARTITION BY parent_id ORDER BY b"
            f" NULLS LAST, child_id) AS birth_rank FROM {mothers}) AS lr"
            f" ON lr.child_id = p.person_id LEFT JOIN {carers} AS lc ON lc.child_id = p.person_id"
        )
    return (
        f"SELECT p.person_id, p.family_id, coalesce(p.family_id, -p.person_id) AS fkey, p.role,"
        f" {years} AS retire_age, CAST({months} AS INTEGER) AS retire_months,"
        " p.sex, p.region_kato, p.birth_on, least(p.death_on, d.death_fact) AS death_on,"
        " CAST(year(p.birth_on) * 10000 + month(p.birth_on) * 100 + day(p.birth_on) AS INTEGER)"
        " AS b_int, CAST(year(p.birth_on) * 12 + month(p.birth_on) AS INTEGER) AS b_ym,"
        " CAST(day(p.birth_on) AS INTEGER) AS b_day,"
        f" CAST(p.birth_on - {_EPOCH} AS INTEGER) AS b_d,"
        f" CAST(least(p.death_on, d.death_fact) - {_EPOCH} AS INTEGER) AS d_d,"
        f" CAST(cr.child_rank AS INTEGER) AS child_rank, {lineage_cols} FROM {person} AS p"
        f" LEFT JOIN (SELECT person_id, min(valid_from) AS death_fact FROM {fact} WHERE kind ="
        " 'death' GROUP BY person_id) AS d ON d.person_id = p.person_id"
        # The children's rank in a narrow subquery of their own: a window over the whole
        # person row sorted every column of 3 M rows (seconds at 1 M families).
        " LEFT JOIN (SELECT person_id, row_number() OVER (PARTITION BY coalesce(family_id,"
        f" -person_id) ORDER BY birth_on, person_id) AS child_rank FROM {person} WHERE role ="
        f" 'child') AS cr ON cr.person_id = p.person_id{lineage_join}"
    )


def prepare_fact_sql(
    fact: str, *, mothers: str | None = None, carers: str | None = None
) -> tuple[str, str]:
    """The prepared fact table: codes, day numbers, flag bits; duplicate incomes merged.

    Two agencies reporting the same income (person, detail, start date) count once, with the
    larger amount and the later end. Deaths are merged into the person table. With `mothers`
    (`legal_mother_sql`), each legal mother gets a derived fact per child that reached age 8
    alive (from that birthday, `quantity` its ordinal); with `carers` (`carer_sql`), each
    person gets a copy of their caring parent's contributions. Returns the statement, which reads a
    relation named `coded`, and the SQL of `coded` itself.
    """
    vf = f"CAST(valid_from - {_EPOCH} AS INTEGER)"
    vt = f"CAST(least(coalesce(valid_until, {OPEN_END}), {OPEN_END}) - {_EPOCH} AS INTEGER)"
    bit = (
        "(CAST(1 AS BIGINT) << code) | CASE"
        f" WHEN code BETWEEN 6 AND 9 THEN CAST(1 AS BIGINT) << ({DISABILITY_BIT} + (code - 6) * 4"
        " + least(coalesce(qual, 4), 4) - 1)"
        f" WHEN code BETWEEN 10 AND 12 AND qual = 5 THEN CAST(1 AS BIGINT) << {STUDY_FT_BIT}"
        " ELSE 0 END"
    )
    coded = (
        f"SELECT person_id, kind, {_code_sql()} AS code, {_qual_sql()} AS qual, amount_minor,"
        f" quantity, {vf} AS vf, {vt} AS vt FROM {fact} WHERE kind <> 'death'"
    )
    derived = ""
    if mothers is not None:
        eighth = f"(b + INTERVAL {RAISED_AGE} YEAR)"
        derived += (
            f" UNION ALL SELECT parent_id, CAST({RAISED8_CODE} AS TINYINT), CAST(NULL AS TINYINT),"
            " CAST(NULL AS BIGINT), CAST(row_number() OVER (PARTITION BY parent_id ORDER BY e8,"
            " child_id) AS INTEGER), e8, CAST(DATE '2200-01-01' - DATE '1970-01-01' AS INTEGER)"
            f" FROM (SELECT parent_id, child_id, CAST(CAST({eighth} AS DATE) - {_EPOCH} AS"
            f" INTEGER) AS e8 FROM {mothers} WHERE b IS NOT NULL AND (d IS NULL"
            f" OR d >= CAST({eighth} AS DATE)))"
        )
    if carers is not None:
        derived += (
            f" UNION ALL SELECT c.child_id, CAST({CARER_CONTRIBUTION_CODE} AS TINYINT),"
            " CAST(NULL AS TINYINT), o.amount_minor, o.quantity, o.vf, o.vt FROM"
            f" {carers} AS c JOIN coded AS o ON o.person_id = c.carer_id"
            f" AND o.code = {CONTRIBUTION_CODE}"
        )
    return (
        f"SELECT person_id, code, qual, amt, qty, vf, vt, {bit} AS bit FROM ("
        "SELECT person_id, code, CAST(NULL AS TINYINT) AS qual, max(amount_minor) AS amt,"
        " CAST(NULL AS INTEGER) AS qty, vf, max(vt) AS vt FROM coded WHERE kind = 'income'"
        " AND code IS NOT NULL GROUP BY person_id, code, vf UNION ALL SELECT person_id, code,"
        " qual, amount_minor, quantity, vf, vt FROM coded WHERE kind <> 'income' AND code IS NOT"
        f" NULL{derived}) ORDER BY person_id"
    ), coded


# --- per-period aggregates over the prepared facts `f` -------------------------------------
def _ov(start: str, end: str) -> str:
    """Days a fact's validity overlaps [start, end] (day numbers)."""
    return f"greatest(0, least(f.vt, {end}) - greatest(f.vf, {start}) + 1)"


_LIVE = "f.vf <= zzper_pe_d AND f.vt >= zzper_ps_d"


def _sum_amount(start: str, end: str, which: str) -> str:
    """Sum of monthly amount x days covered. A DOUBLE accumulator is exact here (integers
    below 2**53: 10**12 tiyn a month over 1 826 days) and far cheaper than HUGEINT."""
    return f"sum(CAST(f.amt AS DOUBLE) * {_ov(start, end)}) FILTER (WHERE {which})"


_WINDOWS = (3, 6, 12, 24, 60)
_INSURANCE_WINDOWS = (12, 24, 60)

FACT_AGGS: dict[str, str] = {
    "flags": f"bit_or(f.bit) FILTER (WHERE {_LIVE})",
    "unemp_since": f"max(f.vf) FILTER (WHERE f.code = 5 AND {_LIVE})",
    "pens_years": f"max(f.qty) FILTER (WHERE f.code = 18 AND {_LIVE})",
    "re_cnt": f"max(f.qty) FILTER (WHERE f.code = 19 AND {_LIVE})",
    "veh_cnt": f"max(f.qty) FILTER (WHERE f.code = 20 AND {_LIVE})",
    "cons_amt": f"max(f.amt) FILTER (WHERE f.code = 21 AND {_LIVE})",
    "r8_cnt": f"max(f.qty) FILTER (WHERE f.code = {RAISED8_CODE} AND {_LIVE})",
    "wb_lvl": f"max(f.qty) FILTER (WHERE f.code = 28 AND {_LIVE})",
    "wb_lvl_run": f"max(f.amt) FILTER (WHERE f.code = 28 AND {_LIVE})",
    "wb_cat": f"max(f.qty) FILTER (WHERE f.code = 29 AND {_LIVE})",
    "wb_cat_run": f"max(f.amt) FILTER (WHERE f.code = 29 AND {_LIVE})",
    "inc_m": _sum_amount("zzper_ps_d", "zzper_pe_d", "f.code <= 4"),
    "wag_m": _sum_amount("zzper_ps_d", "zzper_pe_d", "f.code = 1"),
    "inc_q": _sum_amount("zzper_qs_d", "zzper_qe_d", "f.code <= 4"),
    **{f"inc_{n}m": _sum_amount(f"zzper_w{n}s_d", "zzper_we_d", "f.code <= 4") for n in _WINDOWS},
    **{f"wag_{n}m": _sum_amount(f"zzper_w{n}s_d", "zzper_we_d", "f.code = 1") for n in _WINDOWS},
    **{
        f"wdays_{n}m": f"sum(CAST({_ov(f'zzper_w{n}s_d', 'zzper_we_d')} AS DOUBLE))"
        " FILTER (WHERE f.code = 1)"
        for n in _WINDOWS
    },
    **{
        f"{prefix}_{n}m": f"sum(CAST({_ov(f'zzper_w{n}s_d', 'zzper_we_d')} AS DOUBLE))"
        f" FILTER (WHERE f.code = {code})"
        for prefix, code in (("idays", CONTRIBUTION_CODE), ("cdays", CARER_CONTRIBUTION_CODE))
        for n in _INSURANCE_WINDOWS
    },
}

# How far back each income aggregate reads (months before the period start).
AGG_LOOKBACK: dict[str, int] = {
    "inc_q": 6,
    **{f"inc_{n}m": n for n in _WINDOWS},
    **{f"wag_{n}m": n for n in _WINDOWS},
    **{f"wdays_{n}m": n for n in _WINDOWS},
    **{f"{p}_{n}m": n for p in ("idays", "cdays") for n in _INSURANCE_WINDOWS},
}
# Aggregates over windows before the period (their facts are read back to the lookback).
INCOME_AGGS = frozenset(
    k for k in FACT_AGGS if k.startswith(("inc_", "wag_", "wdays_", "idays_", "cdays_"))
)


def _flag(bit: int) -> str:
    return f"coalesce((fa.flags >> {bit}) & 1 = 1, false)"


def _any_flags(bits: range) -> str:
    mask = sum(1 << b for b in bits)
    return f"coalesce(fa.flags & {mask} <> 0, false)"


# The most severe disability record: the lowest set bit of the 16 disability bits.
# Helpers shared by several built-ins, computed once per row in layers before them.
HELPERS: list[dict[str, str]] = [
    {
        "h_age": "((zzper_ps_int - p.b_int) // 10000)",
        # Full months at the period start; a child born later in the period (after its
        # first day) is 0 months old, not -1 (it is not born yet at the start, and a month
        # program decides for it in its birth month).
        "h_age_months": (
            "greatest(0, zzper_ps_ym - p.b_ym - CASE WHEN p.b_day > zzper_ps_day THEN 1 ELSE 0 END)"
        ),
        "h_dis": f"((coalesce(p.flags, 0) >> {DISABILITY_BIT}) & 65535)",
        "h_unemp": f"CAST({_EPOCH} + p.unemp_since AS DATE)",
    },
    # The most severe disability record: the lowest set bit of the 16 disability bits.
    {
        "h_dis_index": (
            "CASE WHEN p.h_dis <> 0 THEN CAST(floor(log2(p.h_dis & -p.h_dis)) AS INTEGER) END"
        )
    },
]
_DIS = "p.h_dis"
_DIS_INDEX = "p.h_dis_index"
_AGE = "p.h_age"
_AGE_MONTHS = "p.h_age_months"
_UNEMP_DATE = "p.h_unemp"


def _money(agg: str, days: str) -> str:
    return f"CAST(round(coalesce(fa.{agg}, 0) / {days}) AS BIGINT)"


def _income_builtins() -> list[PersonBuiltin]:
    out = [
        PersonBuiltin(
            "income_month",
            T.INT,
            "money",
            _t(
                "кезеңдегі айлық табыс",
                "ежемесячный доход в периоде",
                "monthly income in the period",
            ),
            _money("inc_m", "zzper_pd"),
            ("inc_m",),
        ),
        PersonBuiltin(
            "wages_month",
            T.INT,
            "money",
            _t(
                "кезеңдегі айлық жалақы",
                "ежемесячная заработная плата в периоде",
                "monthly wages in the period",
            ),
            _money("wag_m", "zzper_pd"),
            ("wag_m",),
        ),
        PersonBuiltin(
            "income_avg_prev_quarter",
            T.INT,
            "money",
            _t(
                "алдыңғы тоқсандағы орташа айлық табыс",
                "среднемесячный доход за предыдущий квартал",
                "average monthly income in the previous quarter",
            ),
            _money("inc_q", "zzper_qd"),
            ("inc_q",),
        ),
    ]
    for n in _WINDOWS:
        out.append(
            PersonBuiltin(
                f"income_avg_{n}m",
                T.INT,
                "money",
                _t(
                    f"соңғы {n} айдағы орташа айлық табыс",
                    f"среднемесячный доход за последние {n} мес.",
                    f"average monthly income over the last {n} months",
                ),
                _money(f"inc_{n}m", f"zzper_w{n}d"),
                (f"inc_{n}m",),
            )
        )
        out.append(
            PersonBuiltin(
                f"wages_avg_{n}m",
                T.INT,
                "money",
                _t(
                    f"соңғы {n} айдағы орташа айлық жалақы",
                    f"среднемесячная заработная плата за последние {n} мес.",
                    f"average monthly wages over the last {n} months",
                ),
                _money(f"wag_{n}m", f"zzper_w{n}d"),
                (f"wag_{n}m",),
            )
        )
        # Days covered by wages / 30.4375 (an average month), rounded.
        out.append(
            PersonBuiltin(
                f"wage_months_{n}m",
                T.INT,
                "months",
                _t(
                    f"соңғы {n} айда жалақы алған айлар",
                    f"месяцев с заработной платой за последние {n} мес.",
                    f"months with wages in the last {n} months",
                ),
                f"CAST(least({n}, round(coalesce(fa.wdays_{n}m, 0) / 30.4375)) AS INTEGER)",
                (f"wdays_{n}m",),
            )
        )
    return out


def _insurance_builtins() -> list[PersonBuiltin]:
    """Months with social-insurance contributions (ГФСС) in windows before the period: the
    person's own, and the caring parent's (`has_carer`) for a child."""
    out: list[PersonBuiltin] = []
    for n in _INSURANCE_WINDOWS:
        out.append(
            PersonBuiltin(
                f"insured_months_{n}m",
                T.INT,
                "months",
                _t(
                    f"соңғы {n} айда әлеуметтік аударымдар төленген айлар",
                    f"месяцев с социальными отчислениями за последние {n} мес.",
                    f"months with social insurance contributions in the last {n} months",
                ),
                f"CAST(least({n}, round(coalesce(fa.idays_{n}m, 0) / 30.4375)) AS INTEGER)",
                (f"idays_{n}m",),
            )
        )
        out.append(
            PersonBuiltin(
                f"carer_insured_months_{n}m",
                T.INT,
                "months",
                _t(
                    f"күтуші ата-ананың соңғы {n} айдағы әлеуметтік аударымдары (ай)",
                    f"месяцев с социальными отчислениями родителя, осуществляющего уход,"
                    f" за последние {n} мес.",
                    f"months with social insurance contributions of the caring parent in the"
                    f" last {n} months",
                ),
                f"CAST(least({n}, round(coalesce(fa.cdays_{n}m, 0) / 30.4375)) AS INTEGER)",
                (f"cdays_{n}m",),
            )
        )
    return out


_AWARDS = {
    "altyn_alka": (13, _t("«Алтын алқа» алқасы", "подвеска «Алтын алқа»", "Altyn Alka pendant")),
    "kumis_alka": (14, _t("«Күміс алқа» алқасы", "подвеска «Күміс алқа»", "Kumis Alka pendant")),
    "mother_heroine": (
        15,
        _t("«Батыр ана» атағы", "звание «Мать-героиня»", "Mother Heroine title"),
    ),
    "maternal_glory_1": (
        16,
        _t(
            "«Ана даңқы» I дәрежелі ордені",
            "орден «Материнская слава» I степени",
            "Maternal Glory order, 1st class",
        ),
    ),
    "maternal_glory_2": (
        17,
        _t(
            "«Ана даңқы» II дәрежелі ордені",
            "орден «Материнская слава» II степени",
            "Maternal Glory order, 2nd class",
        ),
    ),
}

PERSON_BUILTINS: dict[str, PersonBuiltin] = {
    b.name: b
    for b in [
        PersonBuiltin("person_id", T.INT, "number", _t("тұлға", "лицо", "person"), "p.person_id"),
        PersonBuiltin("family_id", T.INT, "number", _t("отбасы", "семья", "family"), "p.family_id"),
        PersonBuiltin(
            "role",
            T.TEXT,
            "text",
            _t("отбасындағы рөлі", "роль в семье", "role in the family"),
            "p.role",
        ),
        PersonBuiltin("sex", T.TEXT, "text", _t("жынысы", "пол", "sex"), "p.sex"),
        PersonBuiltin(
            "region",
            T.TEXT,
            "text",
            _t("өңір (ӘАОЖ)", "регион (КАТО)", "region (KATO)"),
            "p.region_kato",
        ),
        PersonBuiltin(
            "birth_on",
            T.DATE,
            "date",
            _t("туған күні", "дата рождения", "date of birth"),
            "p.birth_on",
        ),
        PersonBuiltin(
            "death_on",
            T.DATE,
            "date",
            _t("қайтыс болған күні", "дата смерти", "date of death"),
            "p.death_on",
        ),
        PersonBuiltin("age", T.INT, "years", _t("жасы", "возраст", "age"), _AGE),
        PersonBuiltin(
            "age_end",
            T.INT,
            "years",
            _t("кезең соңындағы жасы", "возраст на конец периода", "age at the end of the period"),
            "((zzper_pe_int - p.b_int) // 10000)",
        ),
        PersonBuiltin(
            "age_months",
            T.INT,
            "months",
            _t("жасы (ай)", "возраст (мес.)", "age in months"),
            _AGE_MONTHS,
        ),
        PersonBuiltin(
            "born_in_period",
            T.BOOL,
            "bool",
            _t("кезеңде туған", "родился в периоде", "born in the period"),
            "(p.b_d BETWEEN zzper_ps_d AND zzper_pe_d)",
        ),
        PersonBuiltin(
            "is_member",
            T.BOOL,
            "bool",
            _t("отбасының тірі мүшесі", "живой член семьи", "living family member"),
            "(p.b_d <= zzper_pe_d AND (p.d_d IS NULL OR p.d_d >= zzper_ps_d))",
        ),
        PersonBuiltin(
            "is_deceased",
            T.BOOL,
            "bool",
            _t("қайтыс болған", "умер", "deceased"),
            "coalesce(p.d_d <= zzper_pe_d, false)",
        ),
        PersonBuiltin(
            "child_order",
            T.INT,
            "count",
            _t("баланың туу реті", "очерёдность рождения ребёнка", "birth order of the child"),
            "p.child_rank",
        ),
        PersonBuiltin(
            "birth_order",
            T.INT,
            "count",
            _t(
                "ананың балаларының арасындағы туу реті",
                "очерёдность рождения среди детей матери",
                "birth order among the mother's children",
            ),
            # Among the legal mother's children wherever they live; a child without a known
            # mother: among the children of its family (`child_order`).
            "coalesce(p.birth_rank, p.child_rank)",
        ),
        PersonBuiltin(
            "children_raised_to_8",
            T.INT,
            "count",
            _t(
                "8 жасқа дейін тәрбиелеген балалары",
                "детей, воспитанных до 8 лет",
                "children raised to age 8",
            ),
            # Her (birth or adoptive) children who reached age 8 alive by the period's end,
            # wherever they live now (REFERENCE.md §2: retirement at 53 for five or more).
            "coalesce(fa.r8_cnt, 0)",
            ("r8_cnt",),
        ),
        PersonBuiltin(
            "has_carer",
            T.BOOL,
            "bool",
            _t(
                "отбасында ата-анасы немесе қорғаншысы бар",
                "в семье есть родитель или опекун",
                "a parent or guardian lives in the family",
            ),
            "(p.carer_id IS NOT NULL)",
        ),
        *_insurance_builtins(),
        PersonBuiltin(
            "retirement_age",
            T.NUM,
            "years",
            _t("зейнеткерлік жас", "пенсионный возраст", "retirement age"),
            "p.retire_age",
            retirement=True,
        ),
        PersonBuiltin(
            "retired",
            T.BOOL,
            "bool",
            _t(
                "зейнеткерлік жасқа толған", "достиг пенсионного возраста", "reached retirement age"
            ),
            f"({_AGE_MONTHS} >= p.retire_months)",
            retirement=True,
        ),
        *_income_builtins(),
        PersonBuiltin(
            "unemployed",
            T.BOOL,
            "bool",
            _t(
                "жұмыссыз ретінде тіркелген",
                "зарегистрирован безработным",
                "registered as unemployed",
            ),
            _flag(5),
            ("flags",),
        ),
        PersonBuiltin(
            "unemployed_months",
            T.INT,
            "months",
            _t(
                "жұмыссыз ретінде тіркелгеннен бергі толық айлар",
                "полных месяцев с регистрации безработным",
                "full months since registering as unemployed",
            ),
            f"coalesce(greatest(0, zzper_ps_ym - (year({_UNEMP_DATE}) * 12"
            f" + month({_UNEMP_DATE})) - CASE WHEN day({_UNEMP_DATE}) > zzper_ps_day"
            " THEN 1 ELSE 0 END), 0)",
            ("unemp_since",),
        ),
        PersonBuiltin(
            "disabled",
            T.BOOL,
            "bool",
            _t("мүгедектігі бар", "имеет инвалидность", "has a disability"),
            f"coalesce({_DIS} <> 0, false)",
            ("flags",),
        ),
        PersonBuiltin(
            "disability_group",
            T.INT,
            "number",
            _t("мүгедектік тобы", "группа инвалидности", "disability group"),
            f"coalesce(CASE WHEN {_DIS} <> 0 AND {_DIS_INDEX} < 12 THEN {_DIS_INDEX} // 4"
            " + 1 END, 0)",
            ("flags",),
        ),
        PersonBuiltin(
            "disability_cause",
            T.TEXT,
            "text",
            _t("мүгедектік себебі", "причина инвалидности", "cause of disability"),
            f"coalesce(CASE WHEN {_DIS} <> 0 THEN CASE {_DIS_INDEX} % 4 WHEN 0 THEN"
            " 'general_illness' WHEN 1 THEN 'occupational' WHEN 2 THEN"
            " 'from_childhood' ELSE 'other' END END, '')",
            ("flags",),
        ),
        PersonBuiltin(
            "child_disability",
            T.BOOL,
            "bool",
            _t("мүгедектігі бар бала", "ребёнок с инвалидностью", "child with a disability"),
            f"(coalesce({_DIS} <> 0, false) AND {_AGE} < 18)",
            ("flags",),
        ),
        PersonBuiltin(
            "studying",
            T.BOOL,
            "bool",
            _t("оқиды", "учится", "studying"),
            _any_flags(range(10, 13)),
            ("flags",),
        ),
        PersonBuiltin(
            "study_level",
            T.TEXT,
            "text",
            _t("оқу деңгейі", "уровень обучения", "level of study"),
            f"CASE WHEN {_flag(12)} THEN 'university' WHEN {_flag(11)} THEN 'college'"
            f" WHEN {_flag(10)} THEN 'school' ELSE '' END",
            ("flags",),
        ),
        PersonBuiltin(
            "study_full_time",
            T.BOOL,
            "bool",
            _t("күндізгі оқу", "очное обучение", "full-time study"),
            _flag(STUDY_FT_BIT),
            ("flags",),
        ),
        *[
            PersonBuiltin(f"award_{a}", T.BOOL, "bool", title, _flag(bit), ("flags",))
            for a, (bit, title) in _AWARDS.items()
        ],
        PersonBuiltin(
            "pensioner",
            T.BOOL,
            "bool",
            _t("зейнетақы алушы", "получатель пенсии", "receives a retirement pension"),
            _flag(18),
            ("flags",),
        ),
        PersonBuiltin(
            "pension_years",
            T.INT,
            "years",
            _t(
                "зейнетақы жүйесіне қатысу өтілі",
                "стаж участия в пенсионной системе",
                "years of participation in the pension system",
            ),
            "coalesce(fa.pens_years, 0)",
            ("pens_years",),
        ),
        PersonBuiltin(
            "real_estate_count",
            T.INT,
            "count",
            _t("жылжымайтын мүлік саны", "объектов недвижимости", "real estate objects"),
            "coalesce(fa.re_cnt, 0)",
            ("re_cnt",),
        ),
        PersonBuiltin(
            "vehicle_count",
            T.INT,
            "count",
            _t("көлік құралдары", "транспортных средств", "vehicles"),
            "coalesce(fa.veh_cnt, 0)",
            ("veh_cnt",),
        ),
        PersonBuiltin(
            "consumer_loan",
            T.BOOL,
            "bool",
            _t("тұтынушылық несие", "потребительский кредит", "consumer loan"),
            _flag(21),
            ("flags",),
        ),
        PersonBuiltin(
            "consumer_loan_minor",
            T.INT,
            "money",
            _t(
                "тұтынушылық несие қалдығы",
                "остаток потребительского кредита",
                "outstanding consumer loan",
            ),
            "coalesce(fa.cons_amt, 0)",
            ("cons_amt",),
        ),
        PersonBuiltin(
            "mortgage", T.BOOL, "bool", _t("ипотека", "ипотека", "mortgage"), _flag(22), ("flags",)
        ),
        PersonBuiltin(
            "birth_registered",
            T.BOOL,
            "bool",
            _t("туу тіркелген", "рождение зарегистрировано", "birth registered"),
            _flag(23),
            ("flags",),
        ),
        # The family's well-being of the latest scoring run valid for the period (NULL: the
        # family is in no such run); see `WELLBEING_SCALES` and `wellbeing.inputs`.
        PersonBuiltin(
            "wellbeing_level",
            T.TEXT,
            "text",
            _t(
                "отбасының әл-ауқат деңгейі (2023, A-E)",
                "уровень благополучия семьи (2023, A-E)",
                "family well-being level (2023, A-E)",
            ),
            wellbeing_code_sql("level", "fa.wb_lvl"),
            ("wb_lvl",),
        ),
        PersonBuiltin(
            "wellbeing_level_run",
            T.INT,
            "number",
            _t(
                "әл-ауқат деңгейін бағалау (нөмірі)",
                "оценка уровня благополучия (номер)",
                "well-being scoring run (level)",
            ),
            "fa.wb_lvl_run",
            ("wb_lvl_run",),
        ),
        PersonBuiltin(
            "wellbeing_category",
            T.TEXT,
            "text",
            _t(
                "отбасының әл-ауқат санаты (2025, 1-6)",
                "категория благосостояния семьи (2025, 1-6)",
                "family well-being category (2025, 1-6)",
            ),
            wellbeing_code_sql("category", "fa.wb_cat"),
            ("wb_cat",),
        ),
        PersonBuiltin(
            "wellbeing_category_run",
            T.INT,
            "number",
            _t(
                "әл-ауқат санатын бағалау (нөмірі)",
                "оценка категории благосостояния (номер)",
                "well-being scoring run (category)",
            ),
            "fa.wb_cat_run",
            ("wb_cat_run",),
        ),
    ]
}

# Family-level built-ins, written in the rule language itself over the living members.
FAMILY_BUILTINS: dict[str, tuple[str, T, str, dict[str, str]]] = {
    "family_size": (
        "count(member)",
        T.INT,
        "count",
        _t("отбасы мүшелерінің саны", "членов семьи", "family members"),
    ),
    "children_under_18": (
        "count(member) filter (where member.age < 18)",
        T.INT,
        "count",
        _t("18 жасқа толмаған балалар", "детей до 18 лет", "children under 18"),
    ),
    "adults": (
        "count(member) filter (where member.age >= 18)",
        T.INT,
        "count",
        _t("ересектер", "взрослых", "adults"),
    ),
    "disabled_members": (
        "count(member) filter (where member.disabled)",
        T.INT,
        "count",
        _t("мүгедектігі бар мүшелер", "членов семьи с инвалидностью", "members with a disability"),
    ),
    "deceased_members": (
        "count(deceased)",
        T.INT,
        "count",
        _t("қайтыс болған мүшелер", "умерших членов семьи", "deceased members"),
    ),
    "family_income_month": (
        "sum(member.income_month)",
        T.INT,
        "money",
        _t("отбасының айлық табысы", "ежемесячный доход семьи", "family monthly income"),
    ),
    "family_income_prev_quarter": (
        "sum(member.income_avg_prev_quarter)",
        T.INT,
        "money",
        _t(
            "алдыңғы тоқсандағы отбасының орташа айлық табысы",
            "среднемесячный доход семьи за предыдущий квартал",
            "family average monthly income in the previous quarter",
        ),
    ),
    "family_income_avg_3m": (
        "sum(member.income_avg_3m)",
        T.INT,
        "money",
        _t(
            "соңғы 3 айдағы отбасының орташа айлық табысы",
            "среднемесячный доход семьи за 3 мес.",
            "family average monthly income over 3 months",
        ),
    ),
    "family_income_avg_12m": (
        "sum(member.income_avg_12m)",
        T.INT,
        "money",
        _t(
            "соңғы 12 айдағы отбасының орташа айлық табысы",
            "среднемесячный доход семьи за 12 мес.",
            "family average monthly income over 12 months",
        ),
    ),
    "income_per_capita_month": (
        "family_income_month / nullif(family_size, 0)",
        T.NUM,
        "money",
        _t("жан басына шаққандағы табыс", "доход на члена семьи", "income per family member"),
    ),
    "income_per_capita_prev_quarter": (
        "family_income_prev_quarter / nullif(family_size, 0)",
        T.NUM,
        "money",
        _t(
            "алдыңғы тоқсандағы жан басына шаққандағы табыс",
            "среднедушевой доход за предыдущий квартал",
            "per-capita income in the previous quarter",
        ),
    ),
    "income_per_capita_3m": (
        "family_income_avg_3m / nullif(family_size, 0)",
        T.NUM,
        "money",
        _t(
            "соңғы 3 айдағы жан басына шаққандағы табыс",
            "среднедушевой доход за 3 мес.",
            "per-capita income over 3 months",
        ),
    ),
    "consumer_loans": (
        "bool_or(member.consumer_loan)",
        T.BOOL,
        "bool",
        _t("тұтынушылық несиелер бар", "есть потребительские кредиты", "has consumer loans"),
    ),
    "mortgages": (
        "bool_or(member.mortgage)",
        T.BOOL,
        "bool",
        _t("ипотека бар", "есть ипотека", "has a mortgage"),
    ),
    "family_region": (
        "coalesce(min(member.region) filter (where member.role = 'head'), min(member.region))",
        T.TEXT,
        "text",
        _t("отбасы өңірі", "регион семьи", "family region"),
    ),
    # Every member carries the family's result (the same value), so any member's is it.
    **{
        name: (
            f"max(member.{name})",
            PERSON_BUILTINS[name].type,
            PERSON_BUILTINS[name].unit,
            PERSON_BUILTINS[name].title,
        )
        for name in (
            "wellbeing_level",
            "wellbeing_level_run",
            "wellbeing_category",
            "wellbeing_category_run",
        )
    },
}

# Built-ins every evaluation computes, whether or not a rule uses them.
ALWAYS_PERSON = ("person_id", "family_id", "region", "is_member", "is_deceased")
ALWAYS_FAMILY = ("family_size", "family_region")


def retirement_sql(schedule: dict[str, list[RetirementStep]]) -> tuple[str, str]:
    """SQL for the retirement age (years) and the same in months, by sex and birth date.

    A step (year Y, age A) applies to a person who reaches age A during Y or later years
    until the next step, so the age is fixed by birth-date cohorts computed here.
    """
    years_cases: list[str] = []
    months_cases: list[str] = []
    for sex, steps in sorted(schedule.items()):
        ordered = sorted(steps, key=lambda s: s.year)
        parts_y: list[str] = []
        parts_m: list[str] = []
        for i, step in enumerate(ordered):
            months = int(step.age * 12)
            lo = add_months(date(step.year, 1, 1), -months)
            conds: list[str] = []
            if i > 0:
                conds.append(f"p.birth_on >= DATE '{lo.isoformat()}'")
            if i + 1 < len(ordered):
                hi = add_months(date(ordered[i + 1].year, 1, 1), -months)
                conds.append(f"p.birth_on < DATE '{hi.isoformat()}'")
            cond = " AND ".join(conds) or "TRUE"
            parts_y.append(f"WHEN {cond} THEN {step.age}")
            parts_m.append(f"WHEN {cond} THEN {months}")
        last = ordered[-1]
        parts_y.append(f"ELSE {last.age}")
        parts_m.append(f"ELSE {int(last.age * 12)}")
        years_cases.append(f"WHEN p.sex = '{sex}' THEN CASE {' '.join(parts_y)} END")
        months_cases.append(f"WHEN p.sex = '{sex}' THEN CASE {' '.join(parts_m)} END")
    return (
        f"CAST(CASE {' '.join(years_cases)} END AS DECIMAL(4,1))",
        f"CASE {' '.join(months_cases)} END",
    )


def period_constants(period: Period) -> dict[str, str]:
    """The SQL literal of every `zzper_*` placeholder for a period."""

    def d(day: date) -> str:
        return f"DATE '{day.isoformat()}'"

    def n(day: date) -> str:
        return str((day - date(1970, 1, 1)).days)

    ps, pe = period.start, period.end
    out = {
        "zzper_ps": d(ps),
        "zzper_pe": d(pe),
        "zzper_ps_int": str(ps.year * 10000 + ps.month * 100 + ps.day),
        "zzper_pe_int": str(pe.year * 10000 + pe.month * 100 + pe.day),
        "zzper_ps_ym": str(ps.year * 12 + ps.month),
        "zzper_ps_day": str(ps.day),
        "zzper_pd": str((pe - ps).days + 1),
        "zzper_ps_d": n(ps),
        "zzper_pe_d": n(pe),
        "zzper_we_d": n(ps - timedelta(days=1)),
    }
    for months in _WINDOWS:
        start, end = period.months_before(months)
        out[f"zzper_w{months}s_d"] = n(start)
        out[f"zzper_w{months}d"] = str((end - start).days + 1)
    qs, qe = period.previous_quarter()
    out["zzper_qs_d"], out["zzper_qe_d"], out["zzper_qd"] = n(qs), n(qe), str((qe - qs).days + 1)
    return out


def income_lookback_start(period: Period, aggs: set[str]) -> int:
    """The earliest day number any used income aggregate reads, for pruning income facts."""
    months = max((AGG_LOOKBACK.get(a, 0) for a in aggs), default=0)
    return (add_months(period.start, -months) - date(1970, 1, 1)).days
