"""Run compiled packs in DuckDB: in batch over the registry, or online for one household.

Both paths run the same bound SQL stages; the online path feeds them a household's own tiny
`person` and `fact` tables, the batch path the whole registry loaded once.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from socialcard.rules.engine import vectorized
from socialcard.rules.engine.builtins import (
    carer_sql,
    legal_mother_sql,
    prepare_fact_sql,
    prepare_person_sql,
)
from socialcard.rules.engine.columnar import FactArrays
from socialcard.rules.engine.compiler import Bound, CompiledPack, ProgramPlan, VersionPlan
from socialcard.rules.engine.explain import Decision
from socialcard.rules.engine.families import FamilyIndex
from socialcard.rules.engine.interpret import Program
from socialcard.rules.engine.loader import ROLES
from socialcard.rules.engine.model import Scalar
from socialcard.rules.engine.periods import Period
from socialcard.rules.engine.problems import EvaluationError
from socialcard.rules.engine.synthetic import LINK_SCHEMA

# The input contract: names and types the adapter hands over (extra columns are ignored).
PERSON_SELECT = (
    "SELECT CAST(person_id AS BIGINT) AS person_id, CAST(family_id AS BIGINT) AS family_id,"
    " CAST(role AS VARCHAR) AS role, CAST(sex AS VARCHAR) AS sex,"
    " CAST(birth_on AS DATE) AS birth_on, CAST(death_on AS DATE) AS death_on,"
    " CAST(region_kato AS VARCHAR) AS region_kato FROM {source}"
)
FACT_SELECT = (
    "SELECT CAST(person_id AS BIGINT) AS person_id, CAST(kind AS VARCHAR) AS kind,"
    " CAST(detail AS VARCHAR) AS detail, CAST(qualifier AS VARCHAR) AS qualifier,"
    " CAST(amount_minor AS BIGINT) AS amount_minor, CAST(quantity AS INTEGER) AS quantity,"
    " CAST(valid_from AS DATE) AS valid_from, CAST(valid_until AS DATE) AS valid_until,"
    " CAST(source AS VARCHAR) AS source FROM {source}"
)
LINK_SELECT = (
    "SELECT CAST(child_id AS BIGINT) AS child_id, CAST(parent_id AS BIGINT) AS parent_id,"
    " CAST(relation AS VARCHAR) AS relation, CAST(child_birth_on AS DATE) AS child_birth_on,"
    " CAST(child_death_on AS DATE) AS child_death_on, CAST(valid_from AS DATE) AS valid_from,"
    " CAST(valid_until AS DATE) AS valid_until FROM {source}"
)


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection set up for the engine."""
    config: dict[str, Any] = {"preserve_insertion_order": False}
    if threads:
        config["threads"] = threads
    return duckdb.connect(":memory:", config=config)


def _perfect_hash_bits(con: duckdb.DuckDBPyConnection, persons: str) -> int:
    """Bits of the person/family key ranges, so DuckDB can group by a perfect hash table."""
    row = con.execute(
        f"SELECT min(person_id), max(person_id), max(family_id) FROM {persons}"
    ).fetchall()[0]
    if row is None or row[0] is None:
        return 12
    low, high, family_high = (int(v or 0) for v in row)
    span = max(high - low, high + max(family_high, 0)) + 1
    return max(12, min(26, span.bit_length() + 1))


@dataclass
class _Row:
    columns: dict[str, int]
    values: tuple[Any, ...]

    def get(self, column: str) -> Any:
        index = self.columns.get(column)
        return None if index is None else self.values[index]


def make_decision(
    compiled: CompiledPack,
    plan: ProgramPlan,
    vp: VersionPlan | None,
    row: _Row | _Dict,
    bound: Bound,
) -> Decision:
    """A Decision from one result row (batch or online)."""
    program = plan.program
    person_level = program.entity == "person"
    entity_id = row.get("person_id") if person_level else row.get("family_id")
    if entity_id is None:
        entity_id = -int(row.get("first_person_id") or 0)
    decision = Decision(
        program=program,
        entity_id=int(entity_id),
        family_id=row.get("family_id"),
        period=str(bound.period),
        version=vp.version if vp else None,
        eligible=bool(row.get(plan.eligible_column)),
        amount_minor=row.get(plan.amount_column),
    )
    if vp is None:
        return decision
    for cond in vp.conditions:
        decision.conditions[cond.name] = row.get(cond.column)
        decision.templates[cond.name] = cond.explain
    for symbol in vp.used:
        name = f"family.{symbol.name}" if person_level and symbol.level == "family" else symbol.name
        decision.variables[name] = row.get(symbol.column)
        decision.units[name] = symbol.unit
        decision.titles[name] = symbol.title
    for symbol in vp.params:
        param = compiled.params[symbol.key]
        decision.parameters[symbol.name] = bound.param_values.get(symbol.key)
        decision.units[symbol.name] = param.unit
        decision.titles[symbol.name] = param.title or {}
    return decision


@dataclass
class ProgramSummary:
    """How many entities a program covers in a period and what it costs."""

    program_id: str
    entity: str
    version: str | None
    evaluated: int
    eligible: int
    amount_minor: int


@dataclass
class BatchResult:
    """One batch evaluation: Arrow tables registered in the engine's connection.

    `person_base` holds every person's built-ins and variables, `family_result` each family's
    variables and family program outputs, `person_result` the person program outputs.
    """

    engine: Engine
    bound: Bound
    names: dict[str, str]  # stage -> registered name
    tables: dict[str, pa.Table]
    timings: dict[str, float] = field(default_factory=dict)
    views: list[str] = field(default_factory=list)
    path: str = "duckdb"  # how the family and person stages ran: "numpy" or "duckdb"
    why_duckdb: str = ""  # why a whole-registry run did not run them in numpy

    @property
    def period(self) -> Period:
        return self.bound.period

    def _active(self, program_id: str) -> tuple[ProgramPlan, VersionPlan | None]:
        plan = self.engine.compiled.program_plan(program_id)
        if plan.program.period != self.period.kind:
            raise EvaluationError(f"{program_id} is evaluated per {plan.program.period}")
        return plan, self.bound.active.get(program_id)

    def _source(self, plan: ProgramPlan) -> tuple[str, str]:
        """The relation holding a program's decisions and its entity key column."""
        if plan.program.entity == "family":
            return self.names["fr"], "fkey"
        if "pr" not in self.names:
            raise EvaluationError(f"{plan.program.id} was not evaluated for {self.period}")
        view = self.bound.person_view(self.names["pr"], self.names["fr"], pb_raw=self.names["pb"])
        return f"({view})", "person_id"

    def summary(self) -> list[ProgramSummary]:
        """Per program: entities evaluated, eligible, and the total amount in minor units."""
        out: list[ProgramSummary] = []
        for plan in self.engine.compiled.programs:
            if plan.program.period != self.period.kind:
                continue
            vp = self.bound.active.get(plan.program.id)
            if plan.program.entity == "family":
                table, guard = self.names["fr"], "f_family_size > 0"
            else:
                table, guard = self.names["pr"], "is_member"
            row = self.engine.con.execute(
                f"SELECT count(*) FILTER (WHERE {guard}), count(*) FILTER (WHERE"
                f" {plan.eligible_column}), coalesce(sum({plan.amount_column}), 0) FROM {table}"
            ).fetchall()[0]
            out.append(
                ProgramSummary(
                    plan.program.id,
                    plan.program.entity,
                    vp.version.label if vp else None,
                    int(row[0]),
                    int(row[1]),
                    int(row[2]),
                )
            )
        return out

    def decisions(
        self, program_id: str, *, eligible_only: bool = True, limit: int | None = None
    ) -> Iterator[Decision]:
        """Decisions of one program, optionally only the eligible ones, by entity id."""
        plan, vp = self._active(program_id)
        source, key = self._source(plan)
        where = f" WHERE {plan.eligible_column}" if eligible_only else ""
        lim = f" LIMIT {int(limit)}" if limit is not None else ""
        table = self.engine.con.sql(
            f"SELECT * FROM {source} AS s{where} ORDER BY {key}{lim}"
        ).to_arrow_table()
        for batch in table.to_batches(10_000):
            for record in batch.to_pylist():
                yield make_decision(self.engine.compiled, plan, vp, _Dict(record), self.bound)

    def decision(self, program_id: str, entity_id: int) -> Decision:
        """The decision for one person (person programs) or family (family programs)."""
        plan, vp = self._active(program_id)
        source, key = self._source(plan)
        cursor = self.engine.con.execute(
            f"SELECT * FROM {source} AS s WHERE {key} = ?", [entity_id]
        )
        rows = cursor.fetchall()
        if not rows:
            raise EvaluationError(f"no {plan.program.entity} {entity_id} in this evaluation")
        columns = {d[0]: i for i, d in enumerate(cursor.description or [])}
        return make_decision(self.engine.compiled, plan, vp, _Row(columns, rows[0]), self.bound)

    def to_arrow(self, program_id: str, *, eligible_only: bool = True) -> pa.Table:
        """One program's rows: ids, region, eligibility, amount, conditions and variables."""
        plan, vp = self._active(program_id)
        source, key = self._source(plan)
        conds = ", ".join(f"'{c.name}': {c.column}" for c in (vp.conditions if vp else []))
        used = ", ".join(f"'{s.name}': {s.column}" for s in (vp.used if vp else []))
        where = f" WHERE {plan.eligible_column}" if eligible_only else ""
        sql = (
            f"SELECT {key} AS entity_id, family_id, region,"
            f" {plan.eligible_column} AS eligible, {plan.amount_column} AS amount_minor"
            + (f", {{{conds}}} AS conditions" if conds else "")
            + (f", {{{used}}} AS variables" if used else "")
            + f" FROM {source} AS s{where}"
        )
        return self.engine.con.sql(sql).to_arrow_table()

    def release(self, stage: str) -> None:
        """Free one stage's table early (the person base once the results are made: a
        whole-registry run's consumer reads only those); its summary and views need it."""
        name = self.names.pop(stage, None)
        if name is not None:
            self.engine.con.unregister(name)
        self.tables.pop(stage, None)

    def drop(self) -> None:
        """Free the result tables (and the input views of a filtered run)."""
        for name in self.names.values():
            self.engine.con.unregister(name)
        for view in self.views:
            self.engine.con.execute(f"DROP VIEW IF EXISTS {view}")
        self.tables.clear()


class Engine:
    """Batch evaluation of a compiled pack over a loaded registry snapshot."""

    def __init__(
        self, compiled: CompiledPack, *, threads: int | None = None, vectorize: bool = True
    ) -> None:
        """`vectorize`: run a whole-registry batch's stages in numpy where they allow it
        (`vectorized.py`); False keeps them in DuckDB (the agreement tests compare both)."""
        self.compiled = compiled
        self.con = connect(threads)
        self.vectorize = vectorize
        self._ids = itertools.count(1)
        self.loaded = False
        self._persons: pa.Table | None = None  # prepared persons, by family then person_id
        self._facts: FactArrays | None = None
        self._families: FamilyIndex | None = None
        self._segments: vectorized.Segments | None = None
        self._person_cols: dict[str, vectorized.Col] = {}  # person columns, converted once
        self._schemas: dict[str, pa.Schema] = {}  # stage SQL (names generic) -> its types
        self._tables = False  # person_input and fact_input kept in DuckDB

    def load(self, person: Any, fact: Any, link: Any = None, *, keep_tables: bool = True) -> float:
        """Copy `person` and `fact` (Arrow tables or anything DuckDB scans) in, prepared once.

        Preparing is period-independent (codes, day numbers, merged duplicates and deaths,
        birth ranks, parent-child links), so every later evaluation, what-if or period reuses
        it. `link`: the parent-child links (`synthetic.LINK_SCHEMA`), if any. Without
        `keep_tables` only the arrays of the whole-registry first stage stay (about 1 GB less
        at 1 M families); `evaluate(family_ids=...)` then needs a new load.
        """
        started = time.perf_counter()
        con = self.con
        con.register("load_person", person)
        con.register("load_fact", fact)
        link_src: str | None = None
        if link is not None:
            con.register("load_link", link)
            link_src = "(" + LINK_SELECT.format(source="load_link") + ")"
        try:
            person_src = "(" + PERSON_SELECT.format(source="load_person") + ")"
            fact_src = "(" + FACT_SELECT.format(source="load_fact") + ")"
            for table in ("person_input", "fact_input", "carer_input", "mother_input"):
                con.execute(f"DROP TABLE IF EXISTS {table}")
            # Role, sex and region as ENUMs: the many comparisons and the family-region
            # aggregates become integer work (measured ~15 % of a batch). Unknown literals
            # in rules still compare as plain text. A role outside the registry's vocabulary
            # reads as 'other'.
            for name in ("sc_role", "sc_sex", "sc_region"):
                con.execute(f"DROP TYPE IF EXISTS {name}")
            con.execute(f"CREATE TYPE sc_role AS ENUM ({', '.join(repr(r) for r in ROLES)})")
            con.execute("CREATE TYPE sc_sex AS ENUM ('F', 'M')")
            con.execute(
                "CREATE TYPE sc_region AS ENUM (SELECT DISTINCT region_kato FROM load_person"
                " WHERE region_kato IS NOT NULL ORDER BY 1)"
            )
            roles = ", ".join(repr(r) for r in ROLES)
            mothers = carers = None
            if link_src is not None:
                # Each read by both prepared tables: computed once (links joined with persons).
                con.execute(f"CREATE TABLE mother_input AS {legal_mother_sql(link_src)}")
                con.execute(
                    f"CREATE TABLE carer_input AS {carer_sql(person_src, fact_src, link_src)}"
                )
                mothers, carers = "mother_input", "carer_input"
            # Without kept tables the prepared inputs are views, read once into the arrays
            # below (materializing them first cost about 1.5 s at 1 M families).
            kind = "TABLE" if keep_tables else "TEMP VIEW"
            con.execute(
                f"CREATE {kind} person_input AS SELECT * REPLACE ("
                f"CAST(CASE WHEN role IN ({roles}) THEN role ELSE 'other' END AS sc_role) AS role,"
                " CAST(CASE WHEN sex IN ('F', 'M') THEN sex END AS sc_sex) AS sex,"
                " CAST(region_kato AS sc_region) AS region_kato) FROM ("
                + prepare_person_sql(
                    person_src,
                    fact_src,
                    self.compiled.retirement,
                    mothers=mothers,
                    carers=carers,
                )
                + ")"
            )
            body, coded = prepare_fact_sql(fact_src, mothers=mothers, carers=carers)
            con.execute(f"CREATE {kind} fact_input AS WITH coded AS ({coded}) {body}")
            # The same prepared tables as arrays, for a whole-registry run; persons by family,
            # so that each family's members are one run of rows (`vectorized.Segments`).
            # One chunk per column, so that numpy reads the columns without copying them.
            self._persons = (
                con.sql("SELECT * FROM person_input ORDER BY fkey, person_id")
                .to_arrow_table()
                .combine_chunks()
            )
            person_ids = self._persons["person_id"].to_numpy().astype(np.int64)
            facts = con.sql(
                "SELECT person_id, code, amt, qty, vf, vt, bit FROM fact_input"
            ).to_arrow_table()
            self._facts = FactArrays(person_ids, facts)
            del facts
            self._families = FamilyIndex.build(self._persons)
            self._segments = vectorized.Segments.of(self._families.index)
            self._person_cols = {}
            self._schemas = {}
            self._tables = keep_tables
            if not keep_tables:
                con.execute("DROP VIEW fact_input")
                con.execute("DROP VIEW person_input")
                con.execute("DROP TABLE IF EXISTS carer_input")
                con.execute("DROP TABLE IF EXISTS mother_input")
        finally:
            con.unregister("load_person")
            con.unregister("load_fact")
            if link is not None:
                con.unregister("load_link")
        self.con.register("load_person", self._persons)
        try:
            bits = _perfect_hash_bits(self.con, "load_person")
        finally:
            self.con.unregister("load_person")
        self.con.execute(f"SET perfect_ht_threshold = {bits}")
        self.loaded = True
        return time.perf_counter() - started

    def evaluate(
        self,
        period: Period | str,
        *,
        overrides: Mapping[str, Scalar] | None = None,
        family_ids: Sequence[int] | None = None,
        person_extra: Sequence[str] = (),
    ) -> BatchResult:
        """Evaluate every program of the period's kind for every person and family loaded.

        `person_extra` names further columns the person result keeps (person base variables,
        family values person rules read; names that are not there are skipped), for a
        consumer that would otherwise join `person_view`, which recomputes the person base.
        """
        if not self.loaded:
            raise EvaluationError("load the person and fact tables first")
        if family_ids is not None and not self._tables:
            raise EvaluationError("loaded without keep_tables: evaluate the whole registry")
        if isinstance(period, str):
            period = Period.parse(period)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        bound = self.compiled.bind(period, overrides)
        timings["bind"] = time.perf_counter() - started
        n = next(self._ids)
        names = {"pb": f"pb_{n}", "fr": f"fr_{n}", "pr": f"pr_{n}"}
        view = f"pb AS ({bound.person_base.replace('zzstage_pbraw', names['pb'])})"
        person, fact = "person_input", "fact_input"
        if family_ids is not None:
            ids = ", ".join(str(int(i)) for i in family_ids) or "NULL"
            person, fact = f"person_sub_{n}", f"fact_sub_{n}"
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW {person} AS SELECT * FROM person_input"
                f" WHERE family_id IN ({ids})"
            )
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW {fact} AS SELECT * FROM fact_input WHERE"
                f" person_id IN (SELECT person_id FROM {person})"
            )
        raw = bound.person_raw.replace("zztable_person", person).replace("zztable_fact", fact)
        steps = [
            ("person_base", "pb", raw),
            ("family_result", "fr", f"WITH {view} {bound.family_result}"),
        ]
        if bound.person_result is not None:
            steps.append(
                (
                    "person_result",
                    "pr",
                    f"WITH {view}, fr AS (SELECT * FROM {names['fr']}) {bound.person_result}",
                )
            )
        else:
            del names["pr"]
        tables: dict[str, pa.Table] = {}
        whole = False  # the whole registry, its first stage in numpy
        fact_values: dict[str, tuple[Any, Any]] = {}
        if family_ids is None and self._persons is not None and self._facts is not None:
            whole = True
            t0 = time.perf_counter()
            columns = {c: self._persons[c] for c in bound.raw_person}
            with vectorized.small_pages():
                fact_values = self._facts.aggregate_arrays(bound.raw_facts, bound.literals)
            for name, (values, empty) in fact_values.items():
                columns[name] = pa.array(values, mask=empty)
            tables["pb"] = pa.table(columns)
            self.con.register(names["pb"], tables["pb"])
            timings["person_base"] = time.perf_counter() - t0
            steps = steps[1:]
        path, why = "duckdb", ""
        if whole and self.vectorize and self._segments is not None:
            t0 = time.perf_counter()
            try:
                with vectorized.small_pages():
                    computed = self._stages_in_numpy(
                        bound, names, tables, steps, person_extra, fact_values
                    )
            except vectorized.Unsupported as exc:
                why = str(exc)
                for stage in ("fr", "pr"):
                    if stage in tables:
                        self.con.unregister(names[stage])
                        del tables[stage]
            else:
                timings.update(computed)
                steps, path = [], "numpy"
                timings["numpy"] = time.perf_counter() - t0
        for label, stage, sql in steps:
            t0 = time.perf_counter()
            if stage == "pr" and person_extra:
                sql = self._person_result_with(bound, names, view, person_extra)
            if stage == "pr" and whole and bound.family_reads and self._families is not None:
                # Whole registry: each person's family values by their family number rather
                # than a hash join of 3.3 M persons to 1 M families (~0.25 s of one core).
                gathered = self._families.gather(tables["fr"], bound.family_reads)
                for column, values in gathered.items():
                    tables["pb"] = tables["pb"].append_column(column, values)
                self.con.unregister(names["pb"])
                self.con.register(names["pb"], tables["pb"])
                carrying = bound.person_base_carrying(bound.family_reads)
                pr_view = f"pb AS ({carrying.replace('zzstage_pbraw', names['pb'])})"
                sql = bound.without_family_join(sql).replace(view, pr_view, 1)
            if stage == "pb":
                tables[stage] = self.con.sql(sql).to_arrow_table()
            else:
                try:
                    tables[stage] = self.con.sql(bound.narrow_amounts(sql)).to_arrow_table()
                except (duckdb.ConversionException, duckdb.OutOfRangeException):
                    tables[stage] = self.con.sql(sql).to_arrow_table()
            self.con.register(names[stage], tables[stage])
            timings[label] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started
        views = [person, fact] if family_ids is not None else []
        return BatchResult(self, bound, names, tables, timings, views, path, why)

    def _stages_in_numpy(
        self,
        bound: Bound,
        names: Mapping[str, str],
        tables: dict[str, pa.Table],
        steps: Sequence[tuple[str, str, str]],
        person_extra: Sequence[str],
        fact_values: Mapping[str, tuple[Any, Any]],
    ) -> dict[str, float]:
        """The family and person results of a whole-registry run computed in numpy, as
        tables of the types the SQL stages give (raises `vectorized.Unsupported`)."""
        assert self._segments is not None  # noqa: S101 - checked by the caller
        assert self._families is not None  # noqa: S101
        seg, keys = self._segments, self._families.keys
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        pb = tables["pb"]
        n, families = pb.num_rows, len(keys)
        person = vectorized.Frame(n, pb)
        for column in bound.raw_person:
            found = self._person_cols.get(column)
            if found is None:
                found = self._person_cols[column] = vectorized.from_arrow(pb[column])
            person[column] = found
        for name, (values, empty) in fact_values.items():
            person[name] = vectorized.from_numpy(values, empty)
        person.define(bound.person_steps)
        family = vectorized.Frame(families)
        family["fkey"] = vectorized.Col("int", keys)
        ids = person["person_id"]
        family["first_person_id"] = vectorized.Col("int", np.asarray(ids.v)[seg.starts])
        # max(family_id): a family's members share it (a person without one is a family
        # of their own, keyed by minus their id), so it is the first member's; unless a
        # negative family id could share a key with such a person.
        family_ids = person["family_id"]
        if bool(np.any(np.asarray(family_ids.v) < 0)):
            family["family_id"] = vectorized.aggregate_max(family_ids, seg)
        else:
            family["family_id"] = vectorized.gather(family_ids, seg.starts)
        for agg in bound.family_aggs:
            family[agg.column] = vectorized.aggregate(agg, person, seg, n)
        family.define(bound.family_steps)
        sql = {stage: text for _, stage, text in steps}
        schema = self._schema(sql["fr"], names)
        sources = vectorized.select_sources(bound.family_columns)
        tables["fr"] = vectorized.table(family, schema, sources, families)
        self.con.register(names["fr"], tables["fr"])
        timings["family_result"] = time.perf_counter() - t0
        if "pr" in sql and bound.person_result_steps is not None:
            t0 = time.perf_counter()
            for column in bound.family_reads:
                person[column] = vectorized.gather(family[column], seg.family_of_row)
            person.define(bound.person_result_steps)
            pr_sql = sql["pr"]
            if person_extra:
                view = f"pb AS ({bound.person_base.replace('zzstage_pbraw', names['pb'])})"
                pr_sql = self._person_result_with(bound, names, view, person_extra)
            schema = self._schema(pr_sql, names)
            tables["pr"] = vectorized.table(person, schema, {}, n)
            self.con.register(names["pr"], tables["pr"])
            timings["person_result"] = time.perf_counter() - t0
        return timings

    def _schema(self, sql: str, names: Mapping[str, str]) -> pa.Schema:
        """The Arrow types a stage's SQL gives (DuckDB binds it, on no rows; cached: the
        types depend on the SQL and the loaded inputs only)."""
        key = sql
        for stage, name in names.items():
            key = re.sub(rf"\b{name}\b", f"zz_{stage}", key)
        found = self._schemas.get(key)
        if found is None:
            found = self._schemas[key] = self.con.sql(f"{sql} LIMIT 0").to_arrow_table().schema
        return found

    def _person_result_with(
        self, bound: Bound, names: Mapping[str, str], view: str, extra: Sequence[str]
    ) -> str:
        ctes = f"WITH {view}, fr AS (SELECT * FROM {names['fr']})"
        inner = self.con.sql(f"{ctes} SELECT * FROM ({bound.person_result_inner()}) LIMIT 0")
        present = set(inner.columns)
        return f"{ctes} {bound.person_result_with([c for c in extra if c in present])}"

    def close(self) -> None:
        self.con.close()


@dataclass
class Household:
    """Every decision for one household (its family programs and each member's)."""

    compiled: CompiledPack
    period: Period
    decisions: list[Decision]

    def for_program(self, program_id: str) -> list[Decision]:
        return [d for d in self.decisions if d.program.id == program_id]

    def get(self, program_id: str, entity_id: int | None = None) -> Decision:
        """One decision; for a person program name the person."""
        for d in self.for_program(program_id):
            if entity_id is None or d.entity_id == entity_id:
                return d
        raise EvaluationError(f"no decision of {program_id} for {entity_id}")

    def explain(self, lang: str, *, eligible_only: bool = False) -> str:
        """All decisions rendered as text in one language."""
        return "\n".join(
            d.explain(lang, self.compiled.pack).text()
            for d in self.decisions
            if d.eligible or not eligible_only
        )


class OnlineEvaluator:
    """Evaluate one household at a time with the pack's compiled rules (one per thread).

    By default the bound stages run row by row in Python (`interpret.py`): DuckDB plans and
    starts every statement anew, 20-30 ms for a pack whatever the input size, while a
    household has a handful of rows. `backend="duckdb"` runs the same stages as one SQL
    statement instead (stages as materialized CTEs, optimizer off); the agreement tests
    compare both with the batch.
    """

    def __init__(self, compiled: CompiledPack, *, backend: str = "python") -> None:
        if backend not in ("python", "duckdb"):
            raise ValueError(f"unknown backend {backend!r}")
        self.compiled = compiled
        self.backend = backend
        self._con: duckdb.DuckDBPyConnection | None = None
        self._sql: dict[str, tuple[Bound, str]] = {}
        self._programs: dict[tuple[str, tuple[tuple[str, str], ...]], Program] = {}

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection of the SQL backend (and of input conversions)."""
        if self._con is None:
            self._con = connect(threads=1)
            optimizers = [
                r[0] for r in self._con.execute("SELECT name FROM duckdb_optimizers()").fetchall()
            ]
            keep = {"extension", "materialized_cte"}
            off = ",".join(o for o in optimizers if o not in keep)
            self._con.execute(f"SET disabled_optimizers = '{off}'")
        return self._con

    def bound(self, period: Period, overrides: Mapping[str, Scalar] | None = None) -> Bound:
        if self.backend == "python":
            return self._program(period, overrides).bound
        return self._statement(period, overrides)[0]

    def _program(self, period: Period, overrides: Mapping[str, Scalar] | None) -> Program:
        key = (
            f"{period.kind}:{period}",
            tuple(sorted((k, repr(v)) for k, v in (overrides or {}).items())),
        )
        found = self._programs.get(key)
        if found is None:
            if len(self._programs) >= 64:
                self._programs.pop(next(iter(self._programs)))
            bound = self.compiled.bind(period, overrides)
            found = self._programs[key] = Program(bound, self.compiled.retirement)
        return found

    def _statement(
        self, period: Period, overrides: Mapping[str, Scalar] | None
    ) -> tuple[Bound, str]:
        key = f"{period.kind}:{period}"
        if not overrides and key in self._sql:
            return self._sql[key]
        bound = self.compiled.bind(period, overrides)
        person_src = "(" + PERSON_SELECT.format(source="online_person") + ")"
        fact_src = "(" + FACT_SELECT.format(source="online_fact") + ")"
        link_src = "(" + LINK_SELECT.format(source="online_link") + ")"
        raw = bound.person_raw.replace("zztable_person", "person").replace("zztable_fact", "fact")
        view = bound.person_base.replace("zzstage_pbraw", "pb_raw")
        fact_body, coded = prepare_fact_sql(fact_src, mothers="mothers", carers="carers")
        ctes = [
            ("mothers", legal_mother_sql(link_src)),
            ("carers", carer_sql(person_src, fact_src, link_src)),
            (
                "person",
                prepare_person_sql(
                    person_src,
                    fact_src,
                    self.compiled.retirement,
                    mothers="mothers",
                    carers="carers",
                ),
            ),
            ("coded", coded),
            ("fact", fact_body),
            ("pb_raw", raw),
            ("pb", view),
            ("fr", bound.family_result),
        ]
        outputs = "(SELECT list(fr) FROM fr) AS families"
        if bound.person_result is not None:
            ctes.append(("pr", bound.person_result))
            ctes.append(("pv", bound.person_view("pr", "fr", pb="pb")))
            outputs += ", (SELECT list(pv) FROM pv) AS persons"
        sql = (
            "WITH "
            + ", ".join(f"{name} AS MATERIALIZED ({body})" for name, body in ctes)
            + f" SELECT {outputs}"
        )
        if not overrides:
            self._sql[key] = (bound, sql)
        return bound, sql

    def _rows(self, table: Any) -> list[dict[str, Any]]:
        if isinstance(table, pa.Table | pa.RecordBatch):
            rows: list[dict[str, Any]] = table.to_pylist()
            return rows
        if isinstance(table, list):
            return [dict(r) for r in table]
        self.con.register("online_input", table)
        try:
            converted: list[dict[str, Any]] = (
                self.con.sql("SELECT * FROM online_input").to_arrow_table().to_pylist()
            )
            return converted
        finally:
            self.con.unregister("online_input")

    def _run_sql(
        self,
        person: Any,
        fact: Any,
        link: Any,
        period: Period,
        overrides: Mapping[str, Scalar] | None,
    ) -> tuple[Bound, list[dict[str, Any]], list[dict[str, Any]]]:
        bound, sql = self._statement(period, overrides)
        con = self.con
        con.register("online_person", person)
        con.register("online_fact", fact)
        con.register("online_link", LINK_SCHEMA.empty_table() if link is None else link)
        try:
            rows = con.execute(sql).fetchall()
        finally:
            con.unregister("online_person")
            con.unregister("online_fact")
            con.unregister("online_link")
        row = rows[0]
        families: list[dict[str, Any]] = row[0] or []
        persons: list[dict[str, Any]] = (row[1] if len(row) > 1 else None) or []
        return bound, families, persons

    def evaluate(
        self,
        person: Any,
        fact: Any,
        period: Period | str,
        *,
        overrides: Mapping[str, Scalar] | None = None,
        link: Any = None,
    ) -> Household:
        """Decisions of every program of the period's kind for the household in `person`.

        `link`: the parent-child links of its members (and of their mothers' other children,
        for birth order), as `synthetic.LINK_SCHEMA`.
        """
        if isinstance(period, str):
            period = Period.parse(period)
        if self.backend == "python":
            program = self._program(period, overrides)
            bound = program.bound
            links = None if link is None else self._rows(link)
            families, persons = program.evaluate(self._rows(person), self._rows(fact), links)
        else:
            bound, families, persons = self._run_sql(person, fact, link, period, overrides)
        decisions: list[Decision] = []
        for plan in self.compiled.programs:
            if plan.program.period != period.kind:
                continue
            vp = bound.active.get(plan.program.id)
            if plan.program.entity == "family":
                records = families
            else:
                records = [r for r in persons if r["is_member"]]
            for record in records:
                decisions.append(make_decision(self.compiled, plan, vp, _Dict(record), bound))
        return Household(self.compiled, period, decisions)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


class _Dict:
    """A result record as a row for make_decision."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def get(self, column: str) -> Any:
        return self.record.get(column)
