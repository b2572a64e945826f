"""Doctests of pure helpers, the fact vocabulary, and the engine's purity."""

from __future__ import annotations

import ast
import doctest
from pathlib import Path

import pytest

from socialcard.registry.enums import FACT_DETAILS as REGISTRY_DETAILS
from socialcard.rules import service as rules_service
from socialcard.rules.engine import explain, periods
from socialcard.rules.engine.builtins import FACT_CODES, WELLBEING_SCALES
from socialcard.rules.engine.loader import FACT_DETAILS

ENGINE = Path(periods.__file__).parent
ALLOWED_IMPORTS = {"duckdb", "sqlglot", "yaml", "pyarrow", "numpy", "socialcard"}


@pytest.mark.parametrize("module", [periods, explain, rules_service])
def test_doctests(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0


def test_fact_vocabulary_matches_the_registry() -> None:
    assert {str(k): v for k, v in REGISTRY_DETAILS.items()} == FACT_DETAILS
    # Besides the registry's kinds: a family's well-being, which the adapter adds as facts.
    derived = {("wellbeing", scale) for scale in WELLBEING_SCALES}
    assert set(FACT_CODES) - derived == {(k, d) for k, ds in FACT_DETAILS.items() for d in ds}
    assert not any(kind == "wellbeing" for kind in FACT_DETAILS)


def test_engine_is_pure() -> None:
    """rules/engine imports DuckDB, sqlglot, PyYAML, PyArrow and itself only."""
    for file in ENGINE.glob("*.py"):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                import sys

                if top in sys.stdlib_module_names or top == "__future__":
                    continue
                assert top in ALLOWED_IMPORTS, f"{file.name} imports {name}"
                if top == "socialcard":
                    assert name.startswith("socialcard.rules.engine"), f"{file.name}: {name}"
