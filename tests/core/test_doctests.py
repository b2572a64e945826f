"""Doctests of pure helpers run with the suite."""

from __future__ import annotations

import doctest

import pytest

from socialcard.registry import identifiers


@pytest.mark.parametrize("module", [identifiers])
def test_doctests(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0
