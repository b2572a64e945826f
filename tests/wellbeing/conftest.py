"""Well-being fixtures: the test methodology, and runs stored in the test's session."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from socialcard.wellbeing import service
from socialcard.wellbeing.methodology import Methodology, load_methodology
from socialcard.wellbeing.schemas import RunRead
from tests.wellbeing.helpers import BOUNDARY_FAMILIES, PERIOD, Member, make_pack, tables

Families = dict[int, list[Member]]


@pytest.fixture(scope="session")
def methodology(tmp_path_factory: pytest.TempPathFactory) -> Methodology:
    return load_methodology(make_pack(tmp_path_factory.mktemp("pack")))


@pytest.fixture
def boundary_families() -> Families:
    return {k: v[0] for k, v in BOUNDARY_FAMILIES.items()}


@pytest.fixture
def score_run(session: Session, methodology: Methodology) -> Callable[..., RunRead]:
    """Score hand-made families into the test's session and return the run."""

    def run(families: Families, period: str = PERIOD) -> RunRead:
        person, fact = tables(families)
        return service.score(
            session, methodology=methodology, period=period, person=person, fact=fact
        )

    return run
