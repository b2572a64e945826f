"""The pure rules engine: YAML packs compiled to SQL and evaluated in DuckDB.

Use `load_pack(path)` to read and check a pack (every problem reported at once as a
PackError), then `Engine(compiled).load(person, fact, link)` and `.evaluate(period)` for a
batch, `OnlineEvaluator(compiled).evaluate(person, fact, period, link=...)` for one household
(`link`: parent-child links, `synthetic.LINK_SCHEMA`), `run_cases` for the pack's rule tests
and `simulate` for what-if. This package imports no other socialcard domain: only DuckDB,
sqlglot, PyYAML, PyArrow, numpy and the standard library.
"""

from socialcard.rules.engine.cases import CaseResult, household_tables, run_cases
from socialcard.rules.engine.compiler import CompiledPack, compile_pack, load_pack
from socialcard.rules.engine.explain import Decision, Explanation
from socialcard.rules.engine.loader import load_cases, parse_pack
from socialcard.rules.engine.periods import Period
from socialcard.rules.engine.problems import EvaluationError, PackError, Problem, RulesEngineError
from socialcard.rules.engine.runtime import BatchResult, Engine, Household, OnlineEvaluator
from socialcard.rules.engine.simulate import Simulation, simulate, simulate_loaded

__all__ = [
    "BatchResult",
    "CaseResult",
    "CompiledPack",
    "Decision",
    "Engine",
    "EvaluationError",
    "Explanation",
    "Household",
    "OnlineEvaluator",
    "PackError",
    "Period",
    "Problem",
    "RulesEngineError",
    "Simulation",
    "compile_pack",
    "household_tables",
    "load_cases",
    "load_pack",
    "parse_pack",
    "run_cases",
    "simulate",
    "simulate_loaded",
]
