"""Benchmark: our rules engine and OpenFisca side by side on the same ten KZ programs and data.

The issue's yardstick: OpenFisca, fed numpy arrays, computes nine of these benefits for
1,000,000 families in about 1.5 s (build and compute) on one core. This runs both on the same
population and checks that they agree, so the times are for the same work:

    python3 -m venv var/openfisca-venv
    var/openfisca-venv/bin/pip install openfisca-core==46.0.1   # never into the project venv
    python benchmarks/bench_openfisca_compare.py --families 1000000

Steps (each engine in its own process, pinned with `taskset`):

1. The synthetic registry (`engine.synthetic.generate`, as bench_rules.py) is written once to
   Arrow files under var/bench/openfisca_compare/.
2. Ours, `taskset -c 0` with DuckDB threads=1, then `taskset -c 0,1` with threads=2: load the
   registry into the engine (one-off), then `Engine.evaluate(period)` (best of --repeat; a
   whole-registry run computes its stages in numpy, `rules/engine/vectorized.py`, so DuckDB's
   threads matter only for the load and the fallback). The
   one-core run also exports, for OpenFisca, every person's built-ins for the month (age,
   retirement, incomes, disability, awards...: what our engine derives from the 4.8 M facts)
   as numpy arrays, the pack's parameter values and roundings in force, and our results.
3. OpenFisca (`benchmarks/openfisca_kz.py` in var/openfisca-venv), `taskset -c 0`, OMP, BLAS and
   numexpr threads 1: load the arrays, build the simulation (entities, roles, inputs) and
   compute the ten programs' eligibility and amount (best of --repeat).
4. Agreement: per program, eligible count and total amount in tiyn on both sides, and the
   number of persons or families whose eligibility or amount differ (must be 0).

What each side does: OpenFisca starts from the built-ins (derived by our engine), so its work
is the rules proper: pack variables, family aggregates, conditions, amounts and rounding. Our
`evaluate` does that and also derives the built-ins from the facts (the "person base" stage),
reported on its own so the like-for-like part can be read too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "bench" / "openfisca_compare"
OPENFISCA_PYTHON = ROOT / "var" / "openfisca-venv" / "bin" / "python"
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}
ROLE_CODES = {"head": 0, "spouse": 1, "child": 2, "parent": 3}  # anything else: other (4)

# person inputs OpenFisca reads: built-in column -> SQL giving the array (openfisca_kz.INPUTS)
INPUT_SQL = {
    "role": "CASE role WHEN 'head' THEN 0 WHEN 'spouse' THEN 1 WHEN 'child' THEN 2"
    " WHEN 'parent' THEN 3 ELSE 4 END",
    "sex_f": "coalesce(sex = 'F', false)",
    "is_member": "is_member",
    "is_deceased": "is_deceased",
    "age": "age",
    "age_months": "age_months",
    "study_full_time": "study_full_time",
    "retired": "retired",
    "disability_group": "disability_group",
    "disability_general_illness": "disability_cause = 'general_illness'",
    "child_disability": "child_disability",
    "child_order": "coalesce(child_order, 0)",
    "wages_avg_12m": "wages_avg_12m",
    "wages_avg_24m": "wages_avg_24m",
    "wage_months_60m": "wage_months_60m",
    "unemployed": "unemployed",
    "unemployed_months": "unemployed_months",
    "born_in_period": "born_in_period",
    "award_altyn_alka": "award_altyn_alka",
    "award_kumis_alka": "award_kumis_alka",
    "award_maternal_glory_1": "award_maternal_glory_1",
    "award_maternal_glory_2": "award_maternal_glory_2",
    "award_mother_heroine": "award_mother_heroine",
    "pension_years": "pension_years",
    "consumer_loan": "consumer_loan",
    "income_avg_prev_quarter": "income_avg_prev_quarter",
}
INT32_MAX = 2**31 - 1


def registry_files(families: int, seed: int, period: str) -> tuple[Path, Path]:
    """The synthetic registry as Arrow files (generated once per size, seed and month)."""
    from socialcard.rules.engine.periods import Period
    from socialcard.rules.engine.synthetic import generate

    stem = WORK / f"registry_{families}_{seed}_{period}"
    person_path, fact_path = stem.with_suffix(".person.arrow"), stem.with_suffix(".fact.arrow")
    if not (person_path.exists() and fact_path.exists()):
        WORK.mkdir(parents=True, exist_ok=True)
        population = generate(families, seed=seed, as_of=Period.parse(period).end)
        feather.write_feather(population.person, person_path, compression="uncompressed")
        feather.write_feather(population.fact, fact_path, compression="uncompressed")
    return person_path, fact_path


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return float(value)
    return value


def _arrays(table: pa.Table) -> dict[str, np.ndarray]:
    return {n: table[n].to_numpy() for n in table.column_names}


def export_for_openfisca(engine: Any, result: Any, out: Path) -> dict[str, int]:
    """Write inputs.npz, params.json and ours.npz; return the sizes."""
    compiled, bound, names = engine.compiled, result.bound, result.names
    prefixes = {plan.prefix: plan.program.id.split(".", 1)[1] for plan in compiled.programs}
    prefixes["pk"] = "kz"
    parameters: dict[str, dict[str, Any]] = {}
    for key, value in bound.param_values.items():
        prefix, name = key.removeprefix("prm:").split("_", 1)
        parameters.setdefault(prefixes[prefix], {})[name] = _plain(value)
    rounding = {}
    for plan in compiled.programs:
        vp = bound.active.get(plan.program.id)
        if vp is not None:
            rounding[prefixes[plan.prefix]] = [vp.version.rounding.mode, vp.version.rounding.unit]
    params = {
        "period": str(bound.period),
        "instant": bound.period.start.isoformat(),
        "parameters": parameters,
        "rounding": rounding,
    }
    (out / "params.json").write_text(json.dumps(params, indent=1))

    con = engine.con
    view = bound.person_base.replace("zzstage_pbraw", names["pb"])
    columns = ", ".join(f"{sql} AS {name}" for name, sql in INPUT_SQL.items())
    person = con.sql(f"SELECT person_id, fkey, {columns} FROM ({view}) ORDER BY person_id")
    inputs = _arrays(person.to_arrow_table())
    family_income = con.execute(
        f"SELECT max(s) FROM (SELECT sum(income_avg_prev_quarter) FILTER (WHERE is_member) AS s"
        f" FROM ({view}) GROUP BY fkey)"
    ).fetchall()[0]
    if int(family_income[0] or 0) > INT32_MAX:  # OpenFisca's int variables are int32
        raise SystemExit("a family's income passes int32 tiyn: OpenFisca would overflow")
    for name in ("wages_avg_12m", "wages_avg_24m", "income_avg_prev_quarter"):
        if inputs[name].max() > INT32_MAX:
            raise SystemExit(f"{name} passes int32 tiyn: OpenFisca would overflow")
    np.savez(out / "inputs.npz", **inputs)

    ours: dict[str, np.ndarray] = {}
    family_cols, person_cols = [], []
    for plan in compiled.programs:
        short = prefixes[plan.prefix]
        pair = (
            f"{plan.eligible_column} AS {short}__eligible, {plan.amount_column} AS {short}__amount"
        )
        (family_cols if plan.program.entity == "family" else person_cols).append(pair)
    for table, key, cols in (
        (names["fr"], "fkey", family_cols),
        (names["pr"], "person_id", person_cols),
    ):
        arrow = con.sql(f"SELECT {key}, {', '.join(cols)} FROM {table} ORDER BY {key}")
        ours.update(_arrays(arrow.to_arrow_table()))
    if not np.array_equal(ours["person_id"], inputs["person_id"]):
        raise SystemExit("person results and inputs are not in the same order")
    np.savez(out / "ours.npz", **ours)
    return {"persons": len(inputs["person_id"]), "families": len(ours["fkey"])}


def run_ours(args: argparse.Namespace) -> int:
    """One engine process: load, evaluate --repeat times, print timings as JSON."""
    from socialcard.rules.engine.compiler import load_pack
    from socialcard.rules.engine.periods import Period
    from socialcard.rules.engine.runtime import Engine

    period = Period.parse(args.period)
    person_path, fact_path = registry_files(args.families, args.seed, args.period)
    t0 = time.perf_counter()
    person, fact = feather.read_table(person_path), feather.read_table(fact_path)
    t1 = time.perf_counter()
    compiled = load_pack(ROOT / "packs" / "kz")
    t2 = time.perf_counter()
    engine = Engine(compiled, threads=args.threads)
    cpu0 = time.process_time()
    engine.load(person, fact)
    load = {"wall": time.perf_counter() - t2, "cpu": time.process_time() - cpu0}
    del person, fact
    runs = []
    result = None
    for _ in range(args.repeat):
        if result is not None:
            result.drop()
        wall, cpu = time.perf_counter(), time.process_time()
        result = engine.evaluate(period)
        runs.append(
            {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
            | {k: v for k, v in result.timings.items() if k != "total"}
        )
    assert result is not None
    report: dict[str, Any] = {
        "path": result.path,
        "why_duckdb": result.why_duckdb,
        "threads": args.threads,
        "affinity": sorted(os.sched_getaffinity(0)),
        "read_arrow_s": t1 - t0,
        "compile_s": t2 - t1,
        "load_s": load,
        "runs": runs,
    }
    if args.export:
        report["sizes"] = export_for_openfisca(engine, result, WORK)
    print(json.dumps(report))
    return 0


def _child(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        command, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{command[0]} failed ({done.returncode})")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def compare() -> tuple[list[dict[str, Any]], bool]:
    ours, theirs = np.load(WORK / "ours.npz"), np.load(WORK / "openfisca.npz")
    if not np.array_equal(ours["fkey"], theirs["family_id"]):
        raise SystemExit("the two sides have different families")
    rows, agree = [], True
    programs = sorted({k.split("__")[0] for k in ours.files if "__" in k})
    for program in programs:
        e1, e2 = ours[f"{program}__eligible"], theirs[f"{program}__eligible"].astype(bool)
        a1 = ours[f"{program}__amount"].astype(np.int64)
        a2 = theirs[f"{program}__amount"].astype(np.int64)
        differ = int(np.count_nonzero((e1 != e2) | (a1 != a2)))
        agree = agree and differ == 0
        rows.append(
            {
                "program": program,
                "entities": len(e1),
                "eligible_ours": int(e1.sum()),
                "eligible_openfisca": int(e2.sum()),
                "amount_ours": int(a1.sum()),
                "amount_openfisca": int(a2.sum()),
                "entities_differing": differ,
            }
        )
    return rows, agree


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("mode", nargs="?", default="compare", choices=("compare", "ours"))
    parser.add_argument("--families", type=int, default=1_000_000)
    parser.add_argument("--period", default="2026-03")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="(ours mode) DuckDB threads")
    parser.add_argument("--export", action="store_true", help="(ours mode) write the arrays")
    args = parser.parse_args()
    if args.mode == "ours":
        return run_ours(args)
    if not OPENFISCA_PYTHON.exists():
        raise SystemExit(f"no OpenFisca at {OPENFISCA_PYTHON}: see this file's docstring")
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    registry_files(args.families, args.seed, args.period)
    prepare_s = time.perf_counter() - t0
    base = [
        sys.executable,
        __file__,
        "ours",
        f"--families={args.families}",
        f"--period={args.period}",
        f"--seed={args.seed}",
        f"--repeat={args.repeat}",
    ]
    ours_one = _child(["taskset", "-c", "0", *base, "--threads=1", "--export"], ONE_THREAD)
    ours_two = _child(["taskset", "-c", "0,1", *base, "--threads=2"])
    of_script = str(ROOT / "benchmarks" / "openfisca_kz.py")
    of_runs = [
        _child(
            [
                "taskset",
                "-c",
                "0",
                str(OPENFISCA_PYTHON),
                of_script,
                str(WORK / "inputs.npz"),
                str(WORK / "params.json"),
                str(WORK / "openfisca.npz"),
            ],
            ONE_THREAD,
        )
        for _ in range(args.repeat)
    ]
    version = subprocess.run(
        [str(OPENFISCA_PYTHON), "-c", "import importlib.metadata as m;"
         " print(m.version('openfisca-core'), m.version('numpy'))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    rows, agree = compare()

    def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return min(runs, key=lambda r: r["wall"])

    of_best = min((r["openfisca_s"] for r in of_runs), key=lambda t: t["build"] + t["compute"])
    of_list = ", ".join(
        f"{r['openfisca_s']['build'] + r['openfisca_s']['compute']:.2f}" for r in of_runs
    )
    print(f"date {started}, load average before {load_before}, after {os.getloadavg()}")
    print(
        f"registry: {args.families:,} families, {ours_one['sizes']['persons']:,} persons,"
        f" {ours_one['sizes']['families']:,} family keys, period {args.period}"
        f" (prepared in {prepare_s:.1f} s)"
    )
    print(f"OpenFisca-Core {version[0]} (numpy {version[1]}), one core (taskset -c 0)")
    print(
        f"  load arrays {of_best['load']:.2f} s, tax-benefit system {of_best['system']:.2f} s,"
        f" build {of_best['build']:.2f} s, compute {of_best['compute']:.2f} s;"
        f" build + compute {of_best['build'] + of_best['compute']:.2f} s"
        f" (runs: {of_list})"
    )
    for label, report in (("one core, DuckDB threads=1", ours_one), ("two cores", ours_two)):
        b = best(report["runs"])
        walls = ", ".join(f"{r['wall']:.2f}" for r in report["runs"])
        stages = ", ".join(f"{k} {v:.2f}" for k, v in b.items() if k not in ("wall", "cpu"))
        print(
            f"ours, {label} (affinity {report['affinity']}, stages in {report['path']}"
            f"{' because ' + report['why_duckdb'] if report['why_duckdb'] else ''}):"
            f" compile {report['compile_s']:.2f} s,"
            f" load {report['load_s']['wall']:.2f} s wall / {report['load_s']['cpu']:.2f} s CPU;"
            f" evaluate best {b['wall']:.2f} s wall / {b['cpu']:.2f} s CPU ({stages});"
            f" runs {walls}"
        )
    print("agreement (tiyn):")
    for row in rows:
        print(
            f"  {row['program']:20} {row['entities']:>9,} entities  eligible"
            f" {row['eligible_ours']:>9,} / {row['eligible_openfisca']:>9,}  amount"
            f" {row['amount_ours']:>16,} / {row['amount_openfisca']:>16,}"
            f"  differing {row['entities_differing']}"
        )
    print(f"agree: {agree}")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
