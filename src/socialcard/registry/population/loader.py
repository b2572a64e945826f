"""Generate a synthetic population and bulk-load it into the store, one transaction per chunk.

This is an initial load of a snapshot, not a stream of life events: nothing is written to the
registry_event outbox (consumers would otherwise see millions of "births" and "registrations"
that never happened). Rows go in through socialcard.core.bulk.copy_rows (COPY on PostgreSQL,
executemany on SQLite) with ids allocated here:

- SQLite: inside the chunk's write transaction (BEGIN IMMEDIATE, so no other writer can slip
  in), from MAX(id) + 1; SQLite's rowid ids continue from the maximum by themselves.
- PostgreSQL: a block is reserved from each table's sequence in a short transaction of its own
  (see repository.reserve_postgres_ids), so ORM inserts during and after the load never collide.

Family refs are "GEN-<seed>-<n>" (n zero-padded to 7 digits). A seed that already has families
in the store is refused (SeedAlreadyGenerated) rather than silently skipped or duplicated. Runs
with different seeds into one store are fine: ИИН serials start above the highest already used
for each birth date and sex. A failed chunk rolls back alone; the chunks before it stay, and
the refusal above then applies to a re-run with that seed, so a partial load is never mistaken
for a complete one. Two runs at the same time into one store are not supported: the second
meets the unique constraints (national_id, ref) and stops, without damage.

Speed (see benchmarks/bench_generate.py):
- generating and checking run in a worker process while this one writes;
- into empty tables, the plain (non-unique) indexes are dropped before the load and created
  again after it, from the same model definitions the migration was generated from. Unique
  indexes and constraints stay, so the data is guarded throughout. An interrupted load
  recreates them in `finally`; a killed one leaves them to the next run, which creates any that
  are missing before it starts;
- foreign keys are checked once per chunk instead of once per row: every reference a chunk
  makes points at rows inserted in that same transaction, and a set-based check of the id
  ranges proves it before the commit. SQLite: the loader's own connection turns its
  foreign_keys pragma off for the load (restored after). PostgreSQL: as a superuser, and while
  the tables carry no triggers but the foreign keys' own, each chunk's transaction sets
  session_replication_role to replica, which skips the per-row foreign-key triggers
  (pg_restore --disable-triggers does the same); otherwise the triggers run as usual.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import pairwise, repeat
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, Engine, Index

from socialcard.core.bulk import copy_rows
from socialcard.core.clock import today as clock_today
from socialcard.core.clock import utcnow
from socialcard.core.db import build_engine
from socialcard.core.logging import get_logger
from socialcard.registry.folding import fold_array
from socialcard.registry.population import repository
from socialcard.registry.population.errors import GenerationError, SeedAlreadyGenerated
from socialcard.registry.population.generator import (
    NONE_DAY,
    NONE_INT,
    Digest,
    Tables,
    generate,
    iso_dates,
    optional_ints,
    ref_prefix,
)
from socialcard.registry.population.geography import plan_for
from socialcard.registry.population.identity import SerialAllocator
from socialcard.registry.validation_columnar import Mode, Problem, check

log = get_logger(__name__)

DEFAULT_BATCH_FAMILIES = 50_000
FIRST_CHUNK_FAMILIES = 5_000
EARLIEST_AS_OF = date(2000, 1, 1)


@dataclass
class GenerateReport:
    """What a run wrote and where the time went."""

    seed: int
    families: int = 0
    persons: int = 0
    members: int = 0
    facts: int = 0
    facts_by_kind: Counter[str] = field(default_factory=Counter)
    seconds_generate: float = 0.0
    seconds_check: float = 0.0
    seconds_write: float = 0.0
    seconds_wait: float = 0.0  # the writer waiting for the next chunk
    seconds_finish: float = 0.0  # closing the load (SQLite: the final checkpoint)
    seconds_index: float = 0.0
    seconds_total: float = 0.0
    digest: str | None = None

    @property
    def rows(self) -> int:
        return self.families + self.persons + self.members + self.facts


@dataclass(frozen=True)
class _Ids:
    family: int
    person: int
    member: int
    fact: int


Column = NDArray[Any] | object  # an array with one value per row, or one value for all rows


def _is_none(values: NDArray[Any]) -> NDArray[np.bool_]:
    # Elementwise on an object array (numpy compares each element with None in C).
    return np.asarray(values == None, dtype=np.bool_)  # noqa: E711


class _Writer:
    """Writes chunks to one store; knows how ids are allocated there.

    On SQLite, binding a NULL costs sqlite3 about as much as binding three values, so the rows
    of a table are written in groups that share which columns are NULL, each group without
    those columns (they default to NULL). Ids are handed out in group order, so every group
    still appends to the table's B-tree. COPY on PostgreSQL takes NULLs for free: one group.
    """

    SQLITE_CACHE_KIB = 512 * 1024
    SQLITE_CHECKPOINT_PAGES = 262_144  # 1 GiB of 4 KiB pages

    def __init__(self, engine: Engine, stamp: datetime) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        # SQLite gets the text SQLAlchemy itself stores for a UTC timestamp (naive, with
        # microseconds); PostgreSQL a timezone-aware datetime.
        self.stamp: Any = (
            stamp.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
            if self.sqlite
            else stamp
        )
        # PostgreSQL: whether chunks skip the per-row foreign-key triggers (see write()).
        self.skip_fk_triggers = False
        self._conn: Connection | None = None
        self._pragmas: dict[str, Any] = {}
        if not self.sqlite:
            with engine.connect() as conn:
                # Only when the foreign keys' internal triggers are all there is: replica mode
                # would also skip any trigger someone adds later (an audit, a projection).
                self.skip_fk_triggers = repository.is_postgres_superuser(
                    conn
                ) and not repository.postgres_user_triggers(conn)

    def __enter__(self) -> _Writer:
        if self.sqlite:
            # One connection for the whole load keeps its page cache warm across chunks; a
            # bigger cache keeps the unique national_id index (random inserts) in memory.
            conn = self._conn = self.engine.connect()
            self._pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                for name in ("cache_size", "wal_autocheckpoint", "foreign_keys")
            }
            conn.exec_driver_sql(f"PRAGMA cache_size=-{self.SQLITE_CACHE_KIB}")
            # Per-row foreign-key lookups give way to one set-based check per chunk, as on
            # PostgreSQL (see _verify_references); this connection only, restored at the end.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            # Checkpoint once per ~1 GiB of WAL instead of after every chunk: pages a later
            # chunk changes again (index and tree pages) are copied to the database once.
            conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={self.SQLITE_CHECKPOINT_PAGES}")
            conn.commit()
        return self

    def __exit__(self, *exc: object) -> None:
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        try:
            conn.rollback()
            # Leave the WAL small and the load on disk, as the default checkpoints would.
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            for name, value in self._pragmas.items():
                conn.exec_driver_sql(f"PRAGMA {name}={int(value)}")
            conn.commit()
        finally:
            conn.close()

    def create_indexes(self, indexes: Sequence[Index]) -> None:
        if self._conn is not None:
            _create_indexes(self._conn, indexes)
        else:
            _recreate(self.engine, indexes)

    def write(self, tables: Tables) -> None:
        if self.sqlite:
            conn = self._conn
            assert conn is not None, "use the writer as a context manager"  # noqa: S101
            try:
                # Take the write lock first, so MAX(id) stays ours until the commit.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                ids = _Ids(
                    *(
                        repository.max_id(conn, m.__tablename__) + 1
                        for m in repository.LOADED_MODELS
                    )
                )
                self._copy(conn, tables, ids)
                self._verify_references(conn, tables, ids)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            return
        counts = (tables.families, tables.persons, tables.persons, tables.facts)
        with self.engine.begin() as conn:
            ids = _Ids(
                *(
                    repository.reserve_postgres_ids(conn, m.__tablename__, c)
                    for m, c in zip(repository.LOADED_MODELS, counts, strict=True)
                )
            )
        with self.engine.begin() as conn:
            if self.skip_fk_triggers:
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            self._copy(conn, tables, ids)
            if self.skip_fk_triggers:
                self._verify_references(conn, tables, ids)

    @staticmethod
    def _verify_references(conn: Connection, t: Tables, ids: _Ids) -> None:
        # Every family and person id of the chunk's ranges exists (they were just inserted),
        # and no membership or fact of the chunk points outside them: the foreign keys hold.
        families = (ids.family, ids.family + t.families - 1)
        persons = (ids.person, ids.person + t.persons - 1)
        members = (ids.member, ids.member + t.persons - 1)
        facts = (ids.fact, ids.fact + t.facts - 1)
        problems = []
        if repository.count_ids_in_range(conn, "registry_family", *families) != t.families:
            problems.append("families missing from their id range")
        if repository.count_ids_in_range(conn, "registry_person", *persons) != t.persons:
            problems.append("persons missing from their id range")
        if t.persons and repository.count_members_outside(conn, members, families, persons):
            problems.append("memberships pointing outside the chunk")
        if t.facts and repository.count_facts_outside(conn, facts, persons):
            problems.append("facts pointing outside the chunk")
        if problems:
            raise GenerationError("foreign keys do not hold: " + "; ".join(problems))

    def _table(
        self,
        conn: Connection,
        table: str,
        first_id: int,
        columns: dict[str, Column],
        *,
        nulls: dict[str, NDArray[np.bool_]] | None = None,
        then_by: NDArray[np.int64] | None = None,
    ) -> NDArray[np.int64]:
        """Write one table's rows; returns each row's id offset from `first_id`.

        `nulls` marks, per nullable column, the rows where it is NULL (used on SQLite only).
        """
        n = next(len(v) for v in columns.values() if isinstance(v, np.ndarray))
        null_masks = nulls if nulls and self.sqlite else {}
        groups = list(null_masks)
        code = np.zeros(n, dtype=np.int64)
        for bit, name in enumerate(groups):
            code |= null_masks[name].astype(np.int64) << bit
        # Group order, then (for facts) the person, so each group's rows append in id order.
        order = (
            np.lexsort((then_by, code)) if then_by is not None else np.argsort(code, kind="stable")
        )
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        if n == 0:
            return rank
        sorted_code = code[order]
        bounds = np.flatnonzero(np.r_[True, sorted_code[1:] != sorted_code[:-1], True]).tolist()
        for start, stop in pairwise(bounds):
            pattern = int(sorted_code[start])
            rows = order[start:stop]
            names = ["id"]
            values: list[Iterable[Any]] = [range(first_id + int(start), first_id + int(stop))]
            for name, column in columns.items():
                if name in groups and pattern >> groups.index(name) & 1:
                    continue  # NULL in every row of this group: left to the column default
                names.append(name)
                values.append(
                    column[rows].tolist() if isinstance(column, np.ndarray) else repeat(column)
                )
            copy_rows(conn, table, names, zip(*values))  # noqa: B905 - repeat() is endless
        return rank

    def _copy(self, conn: Connection, t: Tables, ids: _Ids) -> None:
        stamp = self.stamp
        family_rank = self._table(
            conn,
            "registry_family",
            ids.family,
            {"ref": t.family_ref, "region_kato": t.family_kato, "created_at": stamp},
        )
        person_rank = self._table(
            conn,
            "registry_person",
            ids.person,
            {
                "national_id": t.national_id,
                "country": "KZ",
                "last_name": t.last_name,
                "first_name": t.first_name,
                "last_name_folded": fold_array(t.last_name),
                "first_name_folded": fold_array(t.first_name),
                "patronymic": t.patronymic,
                "birth_on": iso_dates(t.birth_on),
                "sex": t.sex,
                "phone": t.phone,
                "language": t.language,
                "region_kato": t.region_kato,
                "address": t.address,
                "death_on": iso_dates(t.death_on),
                "created_at": stamp,
                "updated_at": stamp,
            },
            nulls={
                "patronymic": _is_none(t.patronymic),
                "phone": _is_none(t.phone),
                "death_on": t.death_on == NONE_DAY,
            },
        )
        person_id = ids.person + person_rank
        self._table(
            conn,
            "registry_family_member",
            ids.member,
            {
                "family_id": ids.family + family_rank[t.member_family],
                "person_id": person_id,
                "role": t.role,
                "from_on": iso_dates(t.from_on),
                "until_on": iso_dates(t.until_on),
            },
            nulls={"until_on": t.until_on == NONE_DAY},
            then_by=person_id,
        )
        fact_person_id = person_id[t.fact_person]
        self._table(
            conn,
            "registry_fact",
            ids.fact,
            {
                "person_id": fact_person_id,
                "kind": t.fact_kind,
                "detail": t.fact_detail,
                "qualifier": t.fact_qualifier,
                "amount_minor": optional_ints(t.fact_amount),
                "quantity": optional_ints(t.fact_quantity),
                "valid_from": iso_dates(t.fact_valid_from),
                "valid_until": iso_dates(t.fact_valid_until),
                "source": t.fact_source,
                "recorded_at": stamp,
            },
            nulls={
                "qualifier": _is_none(t.fact_qualifier),
                "amount_minor": t.fact_amount == NONE_INT,
                "quantity": t.fact_quantity == NONE_INT,
                "valid_until": t.fact_valid_until == NONE_DAY,
            },
            then_by=fact_person_id,
        )
        self._links(conn, t, person_id)

    def _links(self, conn: Connection, t: Tables, person_id: NDArray[np.int64]) -> None:
        """Parent-child links: the parent is in this chunk; a child in an earlier one (already
        written) is found by its national id."""
        if not t.links:
            return
        child_id = np.where(t.link_child >= 0, person_id[np.maximum(t.link_child, 0)], -1)
        outside = np.flatnonzero(t.link_child < 0)
        if len(outside):
            known = repository.person_ids_by_national_id(
                conn, sorted(set(t.link_child_nid[outside].tolist()))
            )
            child_id[outside] = [known.get(str(v), -1) for v in t.link_child_nid[outside]]
        keep = child_id >= 0
        copy_rows(
            conn,
            "registry_person_link",
            ("child_id", "parent_id", "relation", "valid_from", "source", "recorded_at"),
            zip(
                child_id[keep].tolist(),
                person_id[t.link_parent[keep]].tolist(),
                t.link_relation[keep].tolist(),
                iso_dates(t.link_from[keep]).tolist(),
                repeat("civil_registry"),
                repeat(self.stamp),
                strict=False,
            ),
        )


def resolve_as_of(as_of: date | None) -> date:
    """The reference date: today by default; never in the future (the validators refuse it)."""
    today = clock_today()
    if as_of is None:
        return today
    if as_of > today:
        raise GenerationError(f"as_of {as_of.isoformat()} is in the future")
    if as_of < EARLIEST_AS_OF:
        raise GenerationError(f"as_of must be on or after {EARLIEST_AS_OF.isoformat()}")
    return as_of


def _check_arguments(*, families: int, seed: int, batch_size: int) -> None:
    if families < 1:
        raise GenerationError("families must be at least 1")
    if seed < 0:
        raise GenerationError("seed must be zero or a positive whole number")
    if batch_size < 1:
        raise GenerationError("batch size must be at least 1")


@dataclass(frozen=True)
class _Job:
    """What a producer needs: everything is plain data, so it can cross to a worker process."""

    seed: int
    families: int
    region: str | None
    as_of: date
    today: date
    batch_size: int
    check_mode: Mode
    highest: list[tuple[str, int]]
    url: str | None  # the store, for the rare serial fallback; None for no store


@dataclass
class _Chunk:
    tables: Tables
    seconds_generate: float
    seconds_check: float


def _produce(job: _Job) -> Iterator[_Chunk]:
    """Generated and checked chunks; raises GenerationError at the first chunk with problems."""
    engine: Engine | None = None

    def used(prefix7: str) -> list[int]:
        nonlocal engine
        if job.url is None:
            return []
        engine = engine or build_engine(job.url, pool_size=1, max_overflow=0)
        with engine.connect() as conn:
            return repository.used_serials(conn, prefix7)

    allocator = SerialAllocator(job.highest, used_serials=used)
    chunks = generate(
        seed=job.seed,
        families=job.families,
        as_of=job.as_of,
        plan=plan_for(job.region),
        allocator=allocator,
        chunk_families=job.batch_size,
        # A small first chunk lets the writer start early; the worker then stays ahead.
        first_chunk_families=FIRST_CHUNK_FAMILIES,
    )
    done = 0
    try:
        while True:
            t0 = time.perf_counter()
            tables = next(chunks, None)
            if tables is None:
                return
            t1 = time.perf_counter()
            _fail_on(check(tables, today=job.today, mode=job.check_mode), done + 1)
            yield _Chunk(tables, t1 - t0, time.perf_counter() - t1)
            done += tables.families
    finally:
        if engine is not None:
            engine.dispose()


def _fail_on(problems: Sequence[Problem], chunk_first_family: int) -> None:
    if not problems:
        return
    shown = "; ".join(str(p) for p in problems[:5])
    raise GenerationError(
        f"the generator produced {len(problems)} row problem(s) in the chunk starting at "
        f"family {chunk_first_family} (a generator bug; nothing of this chunk was written): "
        f"{shown}",
        details=[
            {"table": p.table, "row": p.row, "field": p.field, "reason": p.reason}
            for p in problems[:100]
        ],
    )


# Columns whose values repeat (names, codes, vocabularies) cross to the writer as small
# integers plus the distinct values: pickling one reference per row costs both processes more
# than the rest of the chunk together.
_PACKED = (
    "family_kato",
    "last_name",
    "first_name",
    "patronymic",
    "sex",
    "language",
    "region_kato",
    "address",
    "role",
    "fact_kind",
    "fact_detail",
    "fact_qualifier",
    "fact_source",
    "link_relation",
)


@dataclass
class _Packed:
    seconds_generate: float
    seconds_check: float
    columns: dict[str, NDArray[Any]]
    values: dict[str, list[Any]]

    @staticmethod
    def pack(chunk: _Chunk) -> _Packed:
        columns: dict[str, NDArray[Any]] = {}
        values: dict[str, list[Any]] = {}
        for name, column in vars(chunk.tables).items():
            if name in _PACKED:
                items = column.tolist()
                values[name] = list(set(items))
                code = {v: i for i, v in enumerate(values[name])}
                columns[name] = np.fromiter(map(code.__getitem__, items), np.int32, len(items))
            else:
                columns[name] = column
        return _Packed(chunk.seconds_generate, chunk.seconds_check, columns, values)

    def unpack(self) -> _Chunk:
        columns = dict(self.columns)
        for name, distinct in self.values.items():
            vocabulary = np.empty(len(distinct), dtype=object)
            vocabulary[:] = distinct
            columns[name] = vocabulary[columns[name]]
        return _Chunk(Tables(**columns), self.seconds_generate, self.seconds_check)


def _worker_main(job: _Job, out: Any) -> None:
    """Worker process: put chunks on the queue, then None; or the error that stopped it."""
    try:
        for chunk in _produce(job):
            out.put(_Packed.pack(chunk))
        out.put(None)
    except GenerationError as exc:
        out.put(exc)
    except BaseException as exc:  # a bug or a signal: report it, the parent decides
        out.put(GenerationError(f"the generator worker failed: {type(exc).__name__}: {exc}"))


class _WorkerFeed:
    """Chunks from a worker process, so generating overlaps with writing (numpy and the
    database driver each keep a core busy). At most two chunks wait in the queue. The worker
    starts at once, so it warms up while the store is being prepared."""

    def __init__(self, job: _Job) -> None:
        # spawn, not fork: the parent may hold database connections and a progress thread.
        context = multiprocessing.get_context("spawn")
        self._channel: Any = context.Queue(maxsize=2)
        self._worker = context.Process(target=_worker_main, args=(job, self._channel), daemon=True)
        self._worker.start()

    def __iter__(self) -> Iterator[_Chunk]:
        while True:
            try:
                item = self._channel.get(timeout=5)
            except queue.Empty:
                if not self._worker.is_alive():
                    raise GenerationError(
                        "the generator worker stopped unexpectedly "
                        f"(exit code {self._worker.exitcode})"
                    ) from None
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item.unpack()

    def close(self) -> None:
        if self._worker.is_alive():
            self._worker.terminate()
        self._worker.join(timeout=10)
        self._channel.close()


def iter_tables(
    *,
    families: int,
    seed: int,
    region: str | None = None,
    as_of: date | None = None,
    batch_size: int = DEFAULT_BATCH_FAMILIES,
) -> Iterator[Tables]:
    """The generated chunks without a store (ИИН serials as in an empty store), unchecked."""
    _check_arguments(families=families, seed=seed, batch_size=batch_size)
    return generate(
        seed=seed,
        families=families,
        as_of=resolve_as_of(as_of),
        plan=plan_for(region),
        allocator=SerialAllocator(),
        chunk_families=batch_size,
    )


def _create_indexes(conn: Connection, indexes: Sequence[Index]) -> None:
    """Create indexes in one transaction (the connection's current one, or a new one)."""
    if not indexes:
        return
    if conn.dialect.name == "postgresql":
        # Sorting for an index build is faster with room for it; this transaction only.
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
    for index in indexes:
        index.create(conn, checkfirst=True)
    conn.commit()
    log.info("population_indexes_created", indexes=[str(ix.name) for ix in indexes])


def _recreate(engine: Engine, indexes: Sequence[Index]) -> None:
    """Create indexes on a connection of their own (a repair, or after a failed load)."""
    with engine.connect() as conn:
        _create_indexes(conn, indexes)


def generate_population(
    engine: Engine,
    *,
    families: int,
    seed: int,
    region: str | None = None,
    as_of: date | None = None,
    batch_size: int = DEFAULT_BATCH_FAMILIES,
    check_mode: Mode = "vector",
    with_digest: bool = False,
    parallel: bool | None = None,
    rebuild_indexes: bool | None = None,
    progress: Callable[[int], None] | None = None,
) -> GenerateReport:
    """Generate `families` families from `seed` and load them into a migrated store.

    `parallel` (default: when there is more than one chunk) generates in a worker process;
    `rebuild_indexes` (default: when the registry tables are empty) drops the plain indexes
    for the load and creates them after it.
    """
    started = time.perf_counter()
    _check_arguments(families=families, seed=seed, batch_size=batch_size)
    reference = resolve_as_of(as_of)
    plan_for(region)  # an unknown region fails here, before any work
    prefix = ref_prefix(seed)
    with engine.connect() as conn:
        existing = repository.count_families_with_ref_prefix(conn, prefix)
        if existing:
            raise SeedAlreadyGenerated(
                f"the store already holds {existing} families generated from seed {seed} "
                f"(refs {prefix}…); choose another seed or load into a fresh store"
            )
        missing = repository.missing_secondary_indexes(conn)
        empty = not any(repository.max_id(conn, m.__tablename__) for m in repository.LOADED_MODELS)
        highest = [] if empty else repository.highest_serials(conn)
    # Indexes an earlier, killed load could not recreate.
    _recreate(engine, missing)

    job = _Job(
        seed=seed,
        families=families,
        region=region,
        as_of=reference,
        today=clock_today(),
        batch_size=batch_size,
        check_mode=check_mode,
        highest=highest,
        url=engine.url.render_as_string(hide_password=False),
    )
    if parallel is None:
        parallel = families > batch_size
    feed = _WorkerFeed(job) if parallel else None
    dropped: list[Index] = []
    report = GenerateReport(seed=seed)
    digest = Digest() if with_digest else None
    try:
        if rebuild_indexes if rebuild_indexes is not None else empty:
            with engine.begin() as conn:
                for model in repository.LOADED_MODELS:
                    for index in repository.secondary_indexes(conn, model.__tablename__):
                        index.drop(conn)
                        dropped.append(index)
        writer = _Writer(engine, utcnow())
        with writer:
            chunks = iter(feed if feed is not None else _produce(job))
            while True:
                t0 = time.perf_counter()
                chunk = next(chunks, None)
                t1 = time.perf_counter()
                report.seconds_wait += t1 - t0
                if chunk is None:
                    break
                writer.write(chunk.tables)
                report.seconds_write += time.perf_counter() - t1
                if digest is not None:
                    digest.update(chunk.tables)
                report.seconds_generate += chunk.seconds_generate
                report.seconds_check += chunk.seconds_check
                report.families += chunk.tables.families
                report.persons += chunk.tables.persons
                report.members += chunk.tables.persons
                report.facts += chunk.tables.facts
                report.facts_by_kind.update(chunk.tables.fact_kind.tolist())
                if progress is not None:
                    progress(chunk.tables.families)
            t0 = time.perf_counter()
            # On the writer's connection: on SQLite its big cache feeds the sorter, and the
            # index pages reach the database file with the final checkpoint of the load.
            writer.create_indexes(dropped)
            dropped = []
            t1 = time.perf_counter()
            report.seconds_index = t1 - t0
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                repository.analyze_loaded(conn)
        report.seconds_finish = time.perf_counter() - t1
    finally:
        if feed is not None:
            feed.close()
        # After a failure: the indexes come back all the same.
        _recreate(engine, dropped)
    report.seconds_total = time.perf_counter() - started
    report.digest = digest.hexdigest() if digest is not None else None
    log.info(
        "population_generated",
        seed=seed,
        families=report.families,
        persons=report.persons,
        facts=report.facts,
        seconds=round(report.seconds_total, 2),
    )
    return report
