"""Registry families and stored scoring runs for the outreach tests (in the test's session)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from socialcard.wellbeing import service as wellbeing_service
from socialcard.wellbeing.models import WellbeingResult, WellbeingRun
from tests.factories import make_family, make_person

METHODOLOGY = "kz.wellbeing.cks_2023"
_phones = itertools.count(2_000_001)


@dataclass
class Household:
    family_id: int
    head_id: int
    phone: str
    language: str


def household(
    session: Session,
    *,
    language: str = "ru",
    region: str = "351010000",
    adult: bool = True,
    child_born: date = date(2024, 6, 1),
) -> Household:
    phone = f"+7702{next(_phones):07d}"
    head = make_person(
        session,
        birth_on=date(1988, 1, 1) if adult else date(2012, 1, 1),
        phone=phone,
        language=language,
        region_kato=region,
    )
    child = make_person(session, birth_on=child_born, phone=None, language=language)
    family = make_family(session, [(head, "head"), (child, "child")], region_kato=region)
    return Household(family.id, head.id, phone, language)


def stored_run(session: Session, period: str, levels: dict[int, tuple[str, set[str]]]) -> int:
    """A run of the 2023 methodology: each family's level and the indicators that held."""
    definition = wellbeing_service.load(METHODOLOGY).definition()
    codes = [i["code"] for i in definition["indicators"]]
    run = WellbeingRun(
        methodology_id=METHODOLOGY,
        methodology_sha256=definition["sha256"],
        period=period,
        families=len(levels),
        level_counts={lv["code"]: 0 for lv in definition["levels"]},
        definition=definition,
        timings={},
    )
    session.add(run)
    session.flush()
    for family_id, (level, held) in levels.items():
        session.add(
            WellbeingResult(
                run_id=run.id,
                family_id=family_id,
                region_kato="351010000",
                level=level,
                score=0,
                economic=0,
                social=0,
                housing=0,
                health=0,
                education=0,
                indicators="".join("1" if c in held else "0" for c in codes),
            )
        )
    session.flush()
    return run.id
