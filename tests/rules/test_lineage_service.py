"""The rules service reads parent-child links and contributions from the registry: a batch
run (in the session and over ADBC) and the online evaluation decide as the pack's cases do."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from socialcard.registry.models import Person, PersonLink
from socialcard.rules import service
from tests.factories import make_fact, make_family, make_person

PERIOD = "2026-03"


def _link(session: Session, child: Person, parent: Person, relation: str) -> None:
    session.add(
        PersonLink(
            child_id=child.id,
            parent_id=parent.id,
            relation=relation,
            valid_from=child.birth_on,
            source="civil_registry",
        )
    )
    session.flush()


def _lineage(session: Session) -> tuple[int, int, int, int]:
    """A mother with a newborn; her three older children live in another family. A father
    alone with his baby, insured. Returns (newborn, its family, father's family, his baby)."""
    mother = make_person(session, sex="F", birth_on=date(1988, 2, 2))
    newborn = make_person(session, sex="M", birth_on=date(2026, 3, 5))
    home = make_family(session, [(mother, "head"), (newborn, "child")])
    grandmother = make_person(session, sex="F", birth_on=date(1960, 1, 1))
    older = [make_person(session, sex="F", birth_on=date(2010 + i, 6, 1)) for i in range(3)]
    make_family(session, [(grandmother, "head"), *((c, "child") for c in older)])
    for child in [*older, newborn]:
        _link(session, child, mother, "mother")

    father = make_person(session, sex="M", birth_on=date(1990, 3, 3))
    baby = make_person(session, sex="F", birth_on=date(2025, 12, 1))
    own = make_family(session, [(father, "head"), (baby, "child")])
    other_mother = make_person(session, sex="F", birth_on=date(1992, 4, 4))
    make_family(session, [(other_mother, "head")])
    _link(session, baby, father, "father")
    _link(session, baby, other_mother, "mother")
    make_fact(
        session,
        father,
        kind="social_insurance",
        detail="contribution",
        amount_minor=17_500_00,
        valid_from=date(2026, 1, 1),
        valid_until=date(2026, 1, 31),
        source="gfss",
    )
    return newborn.id, home.id, own.id, baby.id


def _decision(run_id: int, session: Session, program: str, entity: int) -> tuple[bool, int]:
    for d in service.eligible_decisions(session, run_id=run_id, program_id=program):
        if d.entity_id == entity:
            return True, int(d.amount_minor or 0)
    return False, 0


class TestLineageInTheStore:
    def test_a_batch_run_counts_the_mothers_children_elsewhere(self, session: Session):
        newborn, _, _, baby = _lineage(session)
        run = service.run_rules(
            session, period=PERIOD, snapshot=service.session_snapshot(session, period=PERIOD)
        )
        assert _decision(run.id, session, "kz.birth_allowance", newborn) == (True, 272475_00)
        # The single father caring for his baby is insured: no budget allowance.
        assert _decision(run.id, session, "kz.child_care", baby) == (False, 0)

    def test_the_online_evaluation_reads_the_links_of_the_family(self, session: Session):
        newborn, home, father_family, baby = _lineage(session)
        result = service.evaluate_family(session, family_id=home, period=PERIOD)
        birth = next(
            d
            for d in result.decisions
            if d.program_id == "kz.birth_allowance" and d.person_id == newborn
        )
        assert (birth.eligible, birth.amount_minor) == (True, 272475_00)
        care = service.evaluate_family(session, family_id=father_family, period=PERIOD)
        decision = next(
            d for d in care.decisions if d.program_id == "kz.child_care" and d.person_id == baby
        )
        assert decision.eligible is False
        assert decision.conditions["parent_in_family"] is True
        assert decision.conditions["parent_not_insured"] is False

    def test_a_run_over_the_committed_registry_reads_the_links(self, committed_engine: Engine):
        with Session(committed_engine, expire_on_commit=False) as session:
            newborn, _, _, _ = _lineage(session)
            session.commit()
            run = service.run_rules(session, period=PERIOD)
            session.commit()
            assert _decision(run.id, session, "kz.birth_allowance", newborn) == (
                True,
                272475_00,
            )


class TestAdoptedAway:
    def test_a_child_adopted_by_another_mother_is_not_counted_online_or_in_batch(
        self, session: Session
    ):
        mother = make_person(session, sex="F", birth_on=date(1985, 2, 2))
        newborn = make_person(session, sex="M", birth_on=date(2026, 3, 5))
        home = make_family(session, [(mother, "head"), (newborn, "child")])
        adopter = make_person(session, sex="F", birth_on=date(1975, 1, 1))
        older = [make_person(session, sex="F", birth_on=date(2008 + i, 6, 1)) for i in range(3)]
        make_family(session, [(adopter, "head"), *((c, "child") for c in older)])
        for child in [*older, newborn]:
            _link(session, child, mother, "mother")
        _link(session, older[0], adopter, "adoptive_mother")
        run = service.run_rules(
            session, period=PERIOD, snapshot=service.session_snapshot(session, period=PERIOD)
        )
        assert _decision(run.id, session, "kz.birth_allowance", newborn.id) == (True, 164350_00)
        online = service.evaluate_family(session, family_id=home.id, period=PERIOD)
        birth = next(
            d
            for d in online.decisions
            if d.program_id == "kz.birth_allowance" and d.person_id == newborn.id
        )
        assert birth.amount_minor == 164350_00


class TestGeneratedPopulation:
    def test_every_lineage_program_has_eligible_persons_in_the_generated_month(
        self, committed_engine: Engine
    ):
        from socialcard.registry.population.loader import generate_population

        generate_population(
            committed_engine,
            families=1500,
            seed=5,
            region="750000000",
            as_of=date(2026, 3, 31),
        )
        period = PERIOD
        with Session(committed_engine) as session:
            run = service.run_rules(session, period=period)
            session.commit()
            apart = session.execute(
                text(
                    "SELECT count(*) FROM registry_person_link l"
                    " JOIN registry_family_member c ON c.person_id = l.child_id"
                    " AND c.until_on IS NULL JOIN registry_family_member p"
                    " ON p.person_id = l.parent_id AND p.until_on IS NULL"
                    " WHERE c.family_id <> p.family_id"
                )
            ).scalar_one()
            assert apart > 0  # children living apart from their mother
            counts = {
                program: len(
                    list(service.eligible_decisions(session, run_id=run.id, program_id=program))
                )
                for program in (
                    "kz.job_loss",
                    "kz.child_care",
                    "kz.birth_allowance",
                    "kz.base_pension",
                )
            }
        print(counts)  # noqa: T201
        assert all(count > 0 for count in counts.values()), counts
