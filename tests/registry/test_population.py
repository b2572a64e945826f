"""`socialcard generate`: the synthetic population loaded into the store (SQLite and PostgreSQL).

The generator commits chunk by chunk, so these tests use `committed_engine` (wiped around each).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import date
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, func, inspect, select, text
from sqlalchemy.orm import Session, aliased
from typer.testing import CliRunner

from socialcard.cli.main import app
from socialcard.core.clock import today, utcnow
from socialcard.core.metadata import metadata
from socialcard.registry.identifiers import make_iin, validate_iin
from socialcard.registry.models import Event, Fact, Family, FamilyMember, Person, PersonLink
from socialcard.registry.population.errors import GenerationError, SeedAlreadyGenerated
from socialcard.registry.population.generator import Tables, iso_dates, optional_ints
from socialcard.registry.population.loader import (
    GenerateReport,
    _Writer,
    generate_population,
    iter_tables,
)
from socialcard.registry.validation import (
    FactRow,
    MemberRow,
    PersonRow,
    validate_fact,
    validate_member,
    validate_person,
)

FAMILIES = 200
_PRAGMAS = ("cache_size", "wal_autocheckpoint", "foreign_keys", "journal_mode")
AS_OF = date(2025, 6, 30)


def _generate(engine: Engine, **overrides: Any) -> GenerateReport:
    arguments: dict[str, Any] = {"families": FAMILIES, "seed": 1, "as_of": AS_OF}
    arguments.update(overrides)
    return generate_population(engine, **arguments)


def _count(engine: Engine, model: Any) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _store_rows(engine: Engine) -> tuple[list[tuple[Any, ...]], ...]:
    """Every generated row by natural keys, sorted: comparable across stores and runs."""
    with Session(engine) as session:
        families = sorted(session.execute(select(Family.ref, Family.region_kato)))
        persons = sorted(
            (
                p.national_id,
                p.last_name,
                p.first_name,
                p.patronymic,
                _iso(p.birth_on),
                p.sex,
                p.phone,
                p.language,
                p.region_kato,
                p.address,
                _iso(p.death_on),
                ref,
                m.role,
                _iso(m.from_on),
                _iso(m.until_on),
            )
            for p, m, ref in session.execute(
                select(Person, FamilyMember, Family.ref)
                .join(FamilyMember, FamilyMember.person_id == Person.id)
                .join(Family, Family.id == FamilyMember.family_id)
            )
        )
        facts = sorted(
            (
                nid,
                f.kind,
                f.detail,
                f.qualifier,
                f.amount_minor,
                f.quantity,
                _iso(f.valid_from),
                _iso(f.valid_until),
                f.source,
            )
            for f, nid in session.execute(
                select(Fact, Person.national_id).join(Person, Person.id == Fact.person_id)
            )
        )
        parent = aliased(Person)
        child = aliased(Person)
        links = sorted(
            (p, c, relation, _iso(since))
            for p, c, relation, since in session.execute(
                select(
                    parent.national_id,
                    child.national_id,
                    PersonLink.relation,
                    PersonLink.valid_from,
                )
                .join(parent, parent.id == PersonLink.parent_id)
                .join(child, child.id == PersonLink.child_id)
            )
        )
    return families, persons, facts, links


def _generated_rows(**arguments: Any) -> tuple[list[tuple[Any, ...]], ...]:
    """The same rows straight from the generator (an empty store's ИИН serials)."""
    families: list[tuple[Any, ...]] = []
    persons: list[tuple[Any, ...]] = []
    facts: list[tuple[Any, ...]] = []
    links: list[tuple[Any, ...]] = []
    for t in iter_tables(**arguments):
        families.extend(zip(t.family_ref.tolist(), t.family_kato.tolist(), strict=True))
        person_columns = (
            t.national_id,
            t.last_name,
            t.first_name,
            t.patronymic,
            iso_dates(t.birth_on),
            t.sex,
            t.phone,
            t.language,
            t.region_kato,
            t.address,
            iso_dates(t.death_on),
            t.family_ref[t.member_family],
            t.role,
            iso_dates(t.from_on),
            iso_dates(t.until_on),
        )
        persons.extend(zip(*(c.tolist() for c in person_columns), strict=True))
        fact_columns = (
            t.national_id[t.fact_person],
            t.fact_kind,
            t.fact_detail,
            t.fact_qualifier,
            optional_ints(t.fact_amount),
            optional_ints(t.fact_quantity),
            iso_dates(t.fact_valid_from),
            iso_dates(t.fact_valid_until),
            t.fact_source,
        )
        facts.extend(zip(*(c.tolist() for c in fact_columns), strict=True))
        links.extend(
            zip(
                t.national_id[t.link_parent].tolist(),
                t.link_child_nid.tolist(),
                t.link_relation.tolist(),
                iso_dates(t.link_from).tolist(),
                strict=True,
            )
        )
    return sorted(families), sorted(persons), sorted(facts), sorted(links)


class TestGeneratePopulation:
    def test_loads_what_it_reports(self, committed_engine: Engine) -> None:
        report = _generate(committed_engine)
        assert report.families == FAMILIES == _count(committed_engine, Family)
        assert report.persons == _count(committed_engine, Person)
        assert report.members == _count(committed_engine, FamilyMember) == report.persons
        assert report.facts == _count(committed_engine, Fact)
        assert 2.5 * FAMILIES <= report.persons <= 4.5 * FAMILIES
        with Session(committed_engine) as session:
            kinds = Counter(session.scalars(select(Fact.kind)).all())
        assert kinds == report.facts_by_kind

    def test_every_reference_holds(self, committed_engine: Engine, backend: str) -> None:
        _generate(committed_engine)
        with committed_engine.connect() as conn:
            if backend == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            dangling = conn.exec_driver_sql(
                "SELECT count(*) FROM registry_family_member m "
                "LEFT JOIN registry_family f ON f.id = m.family_id "
                "LEFT JOIN registry_person p ON p.id = m.person_id "
                "WHERE f.id IS NULL OR p.id IS NULL"
            ).scalar()
            orphan_facts = conn.exec_driver_sql(
                "SELECT count(*) FROM registry_fact x "
                "LEFT JOIN registry_person p ON p.id = x.person_id WHERE p.id IS NULL"
            ).scalar()
        assert dangling == orphan_facts == 0

    def test_writes_no_life_events(self, committed_engine: Engine) -> None:
        _generate(committed_engine)
        assert _count(committed_engine, Event) == 0

    def test_every_row_passes_the_importers_validators(self, committed_engine: Engine) -> None:
        _generate(committed_engine)
        now = today()
        with Session(committed_engine) as session:
            for p in session.scalars(select(Person)):
                row = {c: getattr(p, c) for c in PersonRow._fields if c != "country"}
                assert validate_person(row, today=now) == PersonRow(**{**row, "country": p.country})
            for m, p, f in session.execute(
                select(FamilyMember, Person, Family)
                .join(Person, Person.id == FamilyMember.person_id)
                .join(Family, Family.id == FamilyMember.family_id)
            ):
                member = {
                    "family_ref": f.ref,
                    "region_kato": f.region_kato,
                    "national_id": p.national_id,
                    "role": m.role,
                    "from_on": m.from_on,
                    "until_on": m.until_on,
                }
                assert validate_member(member, today=now) == MemberRow(**member)
            for fact, nid in session.execute(
                select(Fact, Person.national_id).join(Person, Person.id == Fact.person_id)
            ):
                values = {c: getattr(fact, c) for c in FactRow._fields if c != "national_id"}
                got = validate_fact({**values, "national_id": nid}, kind=fact.kind, today=now)
                assert got == FactRow(national_id=nid, **values)
                assert fact.source
                assert fact.batch_id is None
                assert fact.superseded_at is None

    def test_national_ids_are_valid_unique_and_match_birth_and_sex(
        self, committed_engine: Engine
    ) -> None:
        _generate(committed_engine)
        with Session(committed_engine) as session:
            persons = session.execute(select(Person.national_id, Person.birth_on, Person.sex)).all()
        assert len({nid for nid, _, _ in persons}) == len(persons)
        for nid, birth_on, sex in persons:
            decoded = validate_iin(nid)
            assert (decoded.birth_on, decoded.sex) == (birth_on, sex)

    def test_children_are_younger_and_parents_older_than_the_head(
        self, committed_engine: Engine
    ) -> None:
        _generate(committed_engine)
        by_family: dict[int, list[tuple[str, date]]] = {}
        with Session(committed_engine) as session:
            for family_id, role, birth_on in session.execute(
                select(FamilyMember.family_id, FamilyMember.role, Person.birth_on).join(
                    Person, Person.id == FamilyMember.person_id
                )
            ):
                by_family.setdefault(family_id, []).append((role, birth_on))
        assert len(by_family) == FAMILIES
        for members in by_family.values():
            roles = Counter(role for role, _ in members)
            assert roles["head"] == 1
            assert roles["spouse"] <= 1
            elders = [born for role, born in members if role in ("head", "spouse")]
            head = next(born for role, born in members if role == "head")
            for role, born in members:
                if role == "child":
                    assert all(born > elder for elder in elders)
                if role == "parent":
                    assert born < head

    def test_each_living_person_has_one_open_membership(self, committed_engine: Engine) -> None:
        _generate(committed_engine)
        with Session(committed_engine) as session:
            rows = session.execute(
                select(Person.id, Person.death_on, FamilyMember.until_on).join(
                    FamilyMember, FamilyMember.person_id == Person.id
                )
            ).all()
        assert len({person_id for person_id, _, _ in rows}) == len(rows)
        for _, death_on, until_on in rows:
            assert until_on == death_on  # open (None) while alive, closed on the day of death

    def test_the_dead_have_a_death_fact(self, committed_engine: Engine) -> None:
        _generate(committed_engine, families=1500)
        with Session(committed_engine) as session:
            dead = dict(
                session.execute(
                    select(Person.id, Person.death_on).where(Person.death_on.is_not(None))
                ).all()
            )
            deaths = dict(
                session.execute(
                    select(Fact.person_id, Fact.valid_from).where(Fact.kind == "death")
                ).all()
            )
        assert dead
        assert deaths == dead

    def test_share_of_large_families_is_plausible(self, committed_engine: Engine) -> None:
        _generate(committed_engine, families=2000)
        minors: Counter[int] = Counter()
        with Session(committed_engine) as session:
            for family_id, birth_on in session.execute(
                select(FamilyMember.family_id, Person.birth_on)
                .join(Person, Person.id == FamilyMember.person_id)
                .where(FamilyMember.until_on.is_(None))
            ):
                if (AS_OF.year - birth_on.year) - (
                    (AS_OF.month, AS_OF.day) < (birth_on.month, birth_on.day)
                ) < 18:
                    minors[family_id] += 1
        share = sum(1 for n in minors.values() if n >= 4) / 2000
        assert 0.04 <= share <= 0.09

    def test_same_seed_gives_the_same_rows(self, committed_engine: Engine) -> None:
        first = _generate(committed_engine, with_digest=True)
        rows = _store_rows(committed_engine)
        assert rows == _generated_rows(families=FAMILIES, seed=1, as_of=AS_OF)
        _wipe_registry(committed_engine)
        second = _generate(committed_engine, with_digest=True, batch_size=64)
        assert second.digest == first.digest
        assert _store_rows(committed_engine) == rows

    def test_a_worker_process_writes_the_same_rows(self, committed_engine: Engine) -> None:
        report = _generate(committed_engine, batch_size=70, parallel=True, with_digest=True)
        assert report.families == FAMILIES
        assert _store_rows(committed_engine) == _generated_rows(
            families=FAMILIES, seed=1, as_of=AS_OF
        )

    def test_the_same_seed_again_is_refused(self, committed_engine: Engine) -> None:
        _generate(committed_engine)
        before = _count(committed_engine, Person)
        with pytest.raises(SeedAlreadyGenerated, match="seed 1"):
            _generate(committed_engine, families=10)
        assert _count(committed_engine, Person) == before

    def test_another_seed_adds_families_with_unique_national_ids(
        self, committed_engine: Engine
    ) -> None:
        first = _generate(committed_engine)
        second = _generate(committed_engine, seed=2)
        assert _count(committed_engine, Family) == 2 * FAMILIES
        assert _count(committed_engine, Person) == first.persons + second.persons
        with Session(committed_engine) as session:
            distinct = session.scalar(select(func.count(func.distinct(Person.national_id))))
        assert distinct == first.persons + second.persons

    def test_orm_inserts_after_a_load_get_fresh_ids(self, committed_engine: Engine) -> None:
        _generate(committed_engine)
        iin = make_iin(date(1991, 3, 3), "F", 4321)
        assert iin is not None
        with Session(committed_engine) as session:
            highest = session.scalar(select(func.max(Person.id)))
            family = Family(ref="ORM-1", region_kato="750000000")
            person = Person(
                national_id=iin,
                last_name="Тестова",
                first_name="Айгерім",
                birth_on=date(1991, 3, 3),
                sex="F",
                region_kato="750000000",
            )
            session.add_all([family, person])
            session.flush()
            session.add(
                FamilyMember(family_id=family.id, person_id=person.id, role="head", from_on=AS_OF)
            )
            session.add(
                Fact(
                    person_id=person.id,
                    kind="income",
                    detail="wages",
                    amount_minor=300_000_00,
                    valid_from=AS_OF,
                    source="sgd",
                )
            )
            session.commit()
            assert highest is not None
            assert person.id > highest

    def test_indexes_match_the_migration_after_a_load(self, committed_engine: Engine) -> None:
        before = _indexes(committed_engine)
        _generate(committed_engine)
        assert _indexes(committed_engine) == before
        with committed_engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata()) == []

    @pytest.mark.usefixtures("postgres_only")
    def test_the_planner_has_statistics_of_the_load(self, committed_engine: Engine) -> None:
        # Without them a family read scanned a whole index until autovacuum came round.
        with committed_engine.connect() as conn:
            started = conn.scalar(text("SELECT clock_timestamp()"))
        _generate(committed_engine, families=37)
        with committed_engine.connect() as conn:
            analyzed = conn.execute(
                text(
                    "SELECT relname FROM pg_stat_user_tables "
                    "WHERE relname LIKE 'registry_%' AND last_analyze >= :started"
                ),
                {"started": started},
            ).scalars()
            assert set(analyzed) >= {
                "registry_family",
                "registry_person",
                "registry_family_member",
                "registry_fact",
            }

    def test_an_index_left_missing_is_recreated(self, committed_engine: Engine) -> None:
        before = _indexes(committed_engine)
        with committed_engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_registry_person_region_kato")
        _generate(committed_engine, families=20)
        assert _indexes(committed_engine) == before

    @pytest.mark.usefixtures("postgres_only")
    def test_a_table_with_its_own_trigger_keeps_every_trigger(
        self, committed_engine: Engine
    ) -> None:
        # With a trigger of someone else's on a loaded table, replica mode (which would skip
        # it) is not used: the trigger sees every row.
        with committed_engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE popgen_seen (n bigint NOT NULL)")
            conn.exec_driver_sql(
                "CREATE FUNCTION popgen_count() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN INSERT INTO popgen_seen VALUES (NEW.id); RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER popgen_count AFTER INSERT ON registry_fact "
                "FOR EACH ROW EXECUTE FUNCTION popgen_count()"
            )
        try:
            report = _generate(committed_engine, families=30)
            with committed_engine.connect() as conn:
                seen = conn.exec_driver_sql("SELECT count(*) FROM popgen_seen").scalar()
            assert seen == report.facts
        finally:
            with committed_engine.begin() as conn:
                conn.exec_driver_sql("DROP TRIGGER popgen_count ON registry_fact")
                conn.exec_driver_sql("DROP FUNCTION popgen_count()")
                conn.exec_driver_sql("DROP TABLE popgen_seen")

    def test_a_chunk_whose_references_do_not_hold_is_rolled_back(
        self, committed_engine: Engine
    ) -> None:
        # Families written one id off from what the memberships and the check expect.
        class OffByOne(_Writer):
            def _copy(self, conn: Connection, t: Tables, ids: Any) -> None:
                super()._copy(conn, t, dataclasses.replace(ids, family=ids.family + 1))

        tables = next(iter(iter_tables(families=20, seed=9, as_of=AS_OF)))
        with (
            OffByOne(committed_engine, utcnow()) as writer,
            pytest.raises(GenerationError, match="foreign keys do not hold"),
        ):
            writer.write(tables)
        assert _count(committed_engine, Family) == 0
        assert _count(committed_engine, Person) == 0

    def test_sqlite_connection_settings_are_restored(
        self, committed_engine: Engine, backend: str
    ) -> None:
        if backend != "sqlite":
            pytest.skip("SQLite pragmas")
        with committed_engine.connect() as conn:
            before = [conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in _PRAGMAS]
        _generate(committed_engine)
        for _ in range(3):  # whichever pooled connection comes back
            with committed_engine.connect() as conn:
                assert [conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in _PRAGMAS] == before

    def test_a_region_restricts_every_code(self, committed_engine: Engine) -> None:
        _generate(committed_engine, region="750000000")
        with Session(committed_engine) as session:
            codes = set(session.scalars(select(Person.region_kato))) | set(
                session.scalars(select(Family.region_kato))
            )
        assert codes
        assert all(code.startswith("75") for code in codes)

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"region": "990000000"}, "unknown region"),
            ({"as_of": date(2999, 1, 1)}, "in the future"),
            ({"families": 0}, "at least 1"),
        ],
    )
    def test_bad_arguments_are_refused_before_writing(
        self, committed_engine: Engine, overrides: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(GenerationError, match=message):
            _generate(committed_engine, **overrides)
        assert _count(committed_engine, Family) == 0


class TestGenerateCommand:
    def test_generates_into_the_configured_store(self, committed_engine: Engine) -> None:
        result = CliRunner().invoke(
            app, ["generate", "--families", "50", "--seed", "3", "--no-progress"]
        )
        assert result.exit_code == 0, result.output
        assert "generated 50 families" in result.output
        assert _count(committed_engine, Family) == 50

    def test_a_repeated_seed_exits_non_zero_with_the_reason(self, committed_engine: Engine) -> None:
        runner = CliRunner()
        arguments = ["generate", "--families", "20", "--seed", "4", "--no-progress"]
        assert runner.invoke(app, arguments).exit_code == 0
        result = runner.invoke(app, arguments)
        assert result.exit_code == 1
        assert "already holds 20 families generated from seed 4" in result.output


def _indexes(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    found: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        inspector = inspect(conn)
        for table in (
            "registry_family",
            "registry_person",
            "registry_family_member",
            "registry_fact",
        ):
            found[table] = sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in inspector.get_indexes(table)
            )
    return found


def _wipe_registry(engine: Engine) -> None:
    with engine.begin() as conn:
        for model in (PersonLink, Fact, FamilyMember, Person, Family):
            conn.execute(model.__table__.delete())
