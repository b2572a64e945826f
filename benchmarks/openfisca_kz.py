"""The ten KZ programs of packs/kz written as an OpenFisca tax-benefit system (for comparison).

Runs in its own virtual environment, never the project's (see bench_openfisca_compare.py):

    python3 -m venv var/openfisca-venv && var/openfisca-venv/bin/pip install openfisca-core==46.0.1
    var/openfisca-venv/bin/python benchmarks/openfisca_kz.py INPUT.npz PARAMS.json OUT.npz

INPUT.npz holds one array per person input variable (the built-ins our engine derives from the
registry's facts: age, retirement, incomes, disability, awards...) plus `person_id` and `fkey`
(the family). PARAMS.json holds the parameter values and the rounding of each program's version
in force in the month, read from our compiled pack, so both sides use the same numbers. The
formulas restate each program's variables, conditions and amount in OpenFisca's vector style.
Writes `<program>__eligible` and `<program>__amount` (tiyn) per person or family to OUT.npz and
prints the load, build and compute times as JSON.

Where OpenFisca differs: its float variables are float32, so money stays in int variables
(tiyn) and each amount is computed in float64 inside its formula; DECIMAL arithmetic (ours) vs
binary floats (here) is bridged by rounding to 1e-6 of the rounding unit before rounding. The
ASP poverty line is a float variable (float32): exact for 2024-2026 (whole tiyn below 2**24).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
from openfisca_core.entities import build_entity
from openfisca_core.parameters import ParameterNode
from openfisca_core.periods import MONTH
from openfisca_core.simulations import SimulationBuilder
from openfisca_core.taxbenefitsystems import TaxBenefitSystem
from openfisca_core.variables import Variable

ROLES = ("head", "spouse", "child", "parent", "other")  # codes 0..4 of the `role` input
HEAD, SPOUSE, PARENT = 0, 1, 3

Person = build_entity(key="person", plural="persons", label="Person", is_person=True)
Family = build_entity(
    key="family",
    plural="families",
    label="Family (members and deceased members)",
    roles=[{"key": "member", "plural": "members", "label": "Member"}],
)

# name -> value type of the person inputs (our engine's built-ins for the month)
INPUTS: dict[str, type] = {
    "role": int,
    "sex_f": bool,
    "is_member": bool,
    "is_deceased": bool,
    "age": int,
    "age_months": int,
    "study_full_time": bool,
    "retired": bool,
    "disability_group": int,
    "disability_general_illness": bool,
    "child_disability": bool,
    "child_order": int,  # 0 = unknown
    "wages_avg_12m": int,
    "wages_avg_24m": int,
    "wage_months_60m": int,
    "unemployed": bool,
    "unemployed_months": int,
    "born_in_period": bool,
    "award_altyn_alka": bool,
    "award_kumis_alka": bool,
    "award_maternal_glory_1": bool,
    "award_maternal_glory_2": bool,
    "award_mother_heroine": bool,
    "pension_years": int,
    "consumer_loan": bool,
    "income_avg_prev_quarter": int,
}
PERSON_PROGRAMS = (
    "awarded_mothers",
    "base_pension",
    "birth_allowance",
    "child_care",
    "disability",
    "disabled_child_care",
    "job_loss",
)
FAMILY_PROGRAMS = ("asp", "large_family", "survivor")
ROUNDING: dict[str, tuple[str, int]] = {}  # program -> (mode, unit), set from PARAMS.json


def variable(name: str, entity: Any, value_type: type, formula: Any = None) -> type[Variable]:
    attrs: dict[str, Any] = {
        "value_type": value_type,
        "entity": entity,
        "definition_period": MONTH,
        "label": name,
    }
    if formula is not None:
        attrs["formula"] = formula
    return type(name, (Variable,), attrs)


def step(x: np.ndarray, node: Any) -> np.ndarray:
    """`coef[x]` of the pack: the value at the largest key <= x (NaN below the first)."""
    keys = sorted(node, key=lambda k: int(k[1:]))
    out = np.full(x.shape, np.nan)
    for key in keys:
        out = np.where(x >= int(key[1:]), float(node[key]), out)
    return out


def rounded(program: str, eligible: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """The pack's rounding of the version in force; 0 when not eligible."""
    mode, unit = ROUNDING[program]
    units = np.round(np.maximum(raw, 0) / unit, 6)
    if mode == "ceil":
        units = np.ceil(units)
    elif mode == "floor":
        units = np.floor(units)
    elif mode == "half_up":
        units = np.floor(units + 0.5)
    return np.where(eligible, units * unit, 0).astype(np.int64)


def count(family: Any, mask: np.ndarray) -> np.ndarray:
    return family.sum(mask.astype(np.int32))


# --- pack-level and program variables -----------------------------------------------------------


def f_dependent_child(person: Any, period: Any) -> np.ndarray:
    age = person("age", period)
    return (age < 18) | ((age < 23) & person("study_full_time", period))


def f_birth_order(person: Any, period: Any) -> np.ndarray:
    order = person("child_order", period)
    return np.where(order > 0, order, 1)


def members(family: Any, period: Any) -> np.ndarray:
    return family.members("is_member", period)


def f_family_size(family: Any, period: Any) -> np.ndarray:
    return count(family, members(family, period))


def f_adults(family: Any, period: Any) -> np.ndarray:
    return count(family, members(family, period) & (family.members("age", period) >= 18))


def f_family_income(family: Any, period: Any) -> np.ndarray:
    income = family.members("income_avg_prev_quarter", period).astype(np.float64)
    return family.sum(np.where(members(family, period), income, 0.0))


def f_consumer_loans(family: Any, period: Any) -> np.ndarray:
    return count(family, members(family, period) & family.members("consumer_loan", period)) > 0


def f_dependent_children(family: Any, period: Any) -> np.ndarray:
    return count(family, members(family, period) & family.members("dependent_child", period))


def f_children_1_to_6(family: Any, period: Any) -> np.ndarray:
    age = family.members("age", period)
    return count(family, members(family, period) & (age >= 1) & (age <= 6))


def f_able_bodied(family: Any, period: Any) -> np.ndarray:
    m = family.members
    group = m("disability_group", period)
    able = (
        (m("age", period) >= 18)
        & ~m("retired", period)
        & (group != 1)
        & (group != 2)
        & ~m("study_full_time", period)
    )
    return count(family, members(family, period) & able)


def f_insured_mothers(family: Any, period: Any) -> np.ndarray:
    m = family.members
    role = m("role", period)
    mother = m("sex_f", period) & ((role == HEAD) | (role == SPOUSE))
    return count(family, members(family, period) & mother & (m("wages_avg_12m", period) > 0))


def f_breadwinners_lost(family: Any, period: Any) -> np.ndarray:
    role = family.members("role", period)
    deceased = family.members("is_deceased", period)
    return count(family, deceased & ((role == HEAD) | (role == SPOUSE)))


def f_dependants(family: Any, period: Any) -> np.ndarray:
    m = family.members
    role = m("role", period)
    group = m("disability_group", period)
    adult_dependant = ((role == HEAD) | (role == SPOUSE) | (role == PARENT)) & (
        m("retired", period) | (group == 1) | (group == 2)
    )
    return count(family, members(family, period) & (m("dependent_child", period) | adult_dependant))


# --- family programs ---------------------------------------------------------------------------


def f_poverty_line(family: Any, period: Any, parameters: Any) -> np.ndarray:
    p = parameters(period)
    line = max(
        p.asp.median_income_share * p.asp.median_income_per_capita,
        p.asp.poverty_line_share * p.kz.pm,
    )
    return np.full(family.count, line)


def asp_eligible(family: Any, period: Any) -> np.ndarray:
    size = family("family_size", period)
    income = family("family_income_prev_quarter", period)
    within = income <= family("poverty_line", period).astype(np.float64) * size
    return (size > 0) & within & ~family("consumer_loans", period)


def asp_amount(family: Any, period: Any, parameters: Any) -> np.ndarray:
    p = parameters(period)
    raw = (
        family("poverty_line", period).astype(np.float64) * family("family_size", period)
        - family("family_income_prev_quarter", period)
        + p.asp.child_supplement * p.kz.mrp * family("children_1_to_6", period)
    )
    return rounded("asp", family("asp__eligible", period), raw)


def large_family_eligible(family: Any, period: Any) -> np.ndarray:
    return (family("family_size", period) > 0) & (family("dependent_children", period) >= 4)


def large_family_amount(family: Any, period: Any, parameters: Any) -> np.ndarray:
    p = parameters(period)
    children = family("dependent_children", period)
    scale = step(children, p.large_family.coef)
    coef = np.where(children >= 8, p.large_family.per_child_8plus * children, scale)
    return rounded("large_family", family("large_family__eligible", period), p.kz.mrp * coef)


def survivor_eligible(family: Any, period: Any) -> np.ndarray:
    return (
        (family("family_size", period) > 0)
        & (family("breadwinners_lost", period) >= 1)
        & (family("dependants", period) >= 1)
    )


def survivor_amount(family: Any, period: Any, parameters: Any) -> np.ndarray:
    p = parameters(period)
    raw = p.kz.pm * step(family("dependants", period), p.survivor.coef)
    return rounded("survivor", family("survivor__eligible", period), raw)


# --- person programs ---------------------------------------------------------------------------


def higher_award(person: Any, period: Any) -> np.ndarray:
    return (
        person("award_altyn_alka", period)
        | person("award_mother_heroine", period)
        | person("award_maternal_glory_1", period)
        | person("award_maternal_glory_2", period)
    )


def awarded_mothers_eligible(person: Any, period: Any) -> np.ndarray:
    awarded = person("higher_award", period) | person("award_kumis_alka", period)
    return person("is_member", period) & awarded


def awarded_mothers_amount(person: Any, period: Any, parameters: Any) -> np.ndarray:
    p = parameters(period)
    coef = np.where(
        person("higher_award", period), p.awarded_mothers.higher_coef, p.awarded_mothers.kumis_coef
    )
    eligible = person("awarded_mothers__eligible", period)
    return rounded("awarded_mothers", eligible, p.kz.mrp * coef)


def base_pension_eligible(person: Any, period: Any) -> np.ndarray:
    return person("is_member", period) & person("retired", period)


def base_pension_amount(person: Any, period: Any, parameters: Any) -> np.ndarray:
    p = parameters(period).base_pension
    years = np.maximum(0, person("pension_years", period) - p.base_years)
    share = np.minimum(p.max_share, p.min_share + p.share_per_year * years)
    raw = parameters(period).kz.pm * share
    return rounded("base_pension", person("base_pension__eligible", period), raw)


def birth_allowance_eligible(person: Any, period: Any) -> np.ndarray:
    return person("is_member", period) & person("born_in_period", period)


def birth_allowance_amount(person: Any, period: Any, parameters: Any) -> np.ndarray:
    p = parameters(period)
    b = p.birth_allowance
    coef = np.where(
        person("birth_order", period) >= 4, b.coef_fourth_and_later, b.coef_first_to_third
    )
    eligible = person("birth_allowance__eligible", period)
    return rounded("birth_allowance", eligible, p.kz.mrp * coef)


def child_care_eligible(person: Any, period: Any, parameters: Any) -> np.ndarray:
    p = parameters(period).child_care
    young = person("age_months", period) < p.max_age_months
    return person("is_member", period) & young & (person.family("insured_mothers", period) == 0)


def child_care_amount(person: Any, period: Any, parameters: Any) -> np.ndarray:
    p = parameters(period)
    raw = p.kz.mrp * step(person("birth_order", period), p.child_care.coef)
    return rounded("child_care", person("child_care__eligible", period), raw)


def disability_eligible(person: Any, period: Any) -> np.ndarray:
    group = person("disability_group", period)
    return (
        person("is_member", period)
        & (person("age", period) >= 18)
        & (group >= 1)
        & (group <= 3)
        & person("disability_general_illness", period)
    )


def disability_amount(person: Any, period: Any, parameters: Any) -> np.ndarray:
    p = parameters(period)
    raw = p.kz.pm * step(person("disability_group", period), p.disability.coef)
    return rounded("disability", person("disability__eligible", period), raw)


def disabled_child_care_eligible(person: Any, period: Any) -> np.ndarray:
    adults = person.family("adults", period)
    return person("is_member", period) & person("child_disability", period) & (adults >= 1)


def disabled_child_care_amount(person: Any, period: Any, parameters: Any) -> np.ndarray:
    p = parameters(period)
    raw = np.full(person.count, p.kz.pm * p.disabled_child_care.coef)
    eligible = person("disabled_child_care__eligible", period)
    return rounded("disabled_child_care", eligible, raw)


def participation(person: Any, period: Any) -> np.ndarray:
    months = person("wage_months_60m", period) + person("unemployed_months", period)
    return np.minimum(60, months)


def months_paid(person: Any, period: Any, parameters: Any) -> np.ndarray:
    paid = step(person("participation", period), parameters(period).job_loss.paid_months)
    return np.nan_to_num(paid, nan=0.0).astype(np.int32)


def job_loss_eligible(person: Any, period: Any, parameters: Any) -> np.ndarray:
    p = parameters(period).job_loss
    return (
        person("is_member", period)
        & person("unemployed", period)
        & ~person("retired", period)
        & (person("participation", period) >= p.min_participation_months)
        & (person("unemployed_months", period) < person("months_paid", period))
    )


def job_loss_amount(person: Any, period: Any, parameters: Any) -> np.ndarray:
    p = parameters(period)
    cap = p.job_loss.income_cap_mzp * p.kz.mzp
    basis = np.minimum(person("wages_avg_24m", period).astype(np.float64), cap)
    raw = basis * p.job_loss.replacement
    return rounded("job_loss", person("job_loss__eligible", period), raw)


FORMULAS: list[tuple[str, Any, type, Any]] = [
    ("dependent_child", Person, bool, f_dependent_child),
    ("birth_order", Person, int, f_birth_order),
    ("higher_award", Person, bool, higher_award),
    ("participation", Person, int, participation),
    ("months_paid", Person, int, months_paid),
    ("family_size", Family, int, f_family_size),
    ("adults", Family, int, f_adults),
    # int32 tiyn (float32 would round it); the export checks that every family's sum fits
    ("family_income_prev_quarter", Family, int, f_family_income),
    ("consumer_loans", Family, bool, f_consumer_loans),
    ("dependent_children", Family, int, f_dependent_children),
    ("children_1_to_6", Family, int, f_children_1_to_6),
    ("able_bodied", Family, int, f_able_bodied),
    ("insured_mothers", Family, int, f_insured_mothers),
    ("breadwinners_lost", Family, int, f_breadwinners_lost),
    ("dependants", Family, int, f_dependants),
    ("poverty_line", Family, float, f_poverty_line),
]
for _program in FAMILY_PROGRAMS:
    FORMULAS.append((f"{_program}__eligible", Family, bool, globals()[f"{_program}_eligible"]))
    FORMULAS.append((f"{_program}__amount", Family, int, globals()[f"{_program}_amount"]))
for _program in PERSON_PROGRAMS:
    FORMULAS.append((f"{_program}__eligible", Person, bool, globals()[f"{_program}_eligible"]))
    FORMULAS.append((f"{_program}__amount", Person, int, globals()[f"{_program}_amount"]))


def tax_benefit_system(params: dict[str, Any]) -> TaxBenefitSystem:
    system = TaxBenefitSystem([Person, Family])
    for name, value_type in INPUTS.items():
        system.add_variable(variable(name, Person, value_type))
    for name, entity, value_type, formula in FORMULAS:
        system.add_variable(variable(name, entity, value_type, formula))
    day = params["instant"]

    def node(values: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in values.items():
            if isinstance(value, dict):
                out[key] = {f"k{k}": {"values": {day: v}} for k, v in value.items()}
            else:
                out[key] = {"values": {day: value}}
        return out

    system.parameters = ParameterNode(
        "", data={group: node(values) for group, values in params["parameters"].items()}
    )
    ROUNDING.update({k: (v[0], int(v[1])) for k, v in params["rounding"].items()})
    return system


def main(argv: list[str]) -> int:
    input_path, params_path, out_path = argv
    t0 = time.perf_counter()
    with open(params_path) as handle:
        params = json.load(handle)
    data = dict(np.load(input_path))
    t1 = time.perf_counter()
    system = tax_benefit_system(params)
    t2 = time.perf_counter()
    builder = SimulationBuilder()
    builder.create_entities(system)
    builder.declare_person_entity("person", data["person_id"])
    family_ids = np.unique(data["fkey"])
    families = builder.declare_entity("family", family_ids)
    builder.join_with_persons(families, data["fkey"], np.zeros(len(data["fkey"]), np.int32))
    simulation = builder.build(system)
    period = params["period"]
    for name in INPUTS:
        simulation.set_input(name, period, data[name])
    t3 = time.perf_counter()
    out: dict[str, np.ndarray] = {"family_id": family_ids}
    for program in (*FAMILY_PROGRAMS, *PERSON_PROGRAMS):
        for part in ("eligible", "amount"):
            out[f"{program}__{part}"] = simulation.calculate(f"{program}__{part}", period)
    t4 = time.perf_counter()
    np.savez(out_path, **out)
    timings = {"load": t1 - t0, "system": t2 - t1, "build": t3 - t2, "compute": t4 - t3}
    print(json.dumps({"openfisca_s": timings, "cpu_s": time.process_time()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
