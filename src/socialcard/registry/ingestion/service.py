"""Ingestion of agency data: batches, chunked loads, quarantine of rejected rows, life events.

A batch is keyed by (source, agency, batch key); sending it again returns the first result
and changes nothing, while the same key with other content is a conflict. Rows are validated
with the registry's validators; a rejected row goes to the quarantine with the field and the
reason while the good rows of the same batch land.

Transactions: the service never commits. A file is loaded chunk by chunk, and after each chunk
it calls the caller's `checkpoint` (the CLI passes `session.commit`), so a huge file is not one
giant transaction. When a file breaks part-way (a truncated or corrupt tail), the chunks before
the break stay loaded, the batch is marked failed with the reason and `BatchFailed` is raised;
a re-run of the fixed file is idempotent (persons are upserted, equal facts are no-ops).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from socialcard.core.clock import today as clock_today
from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.db import is_sqlite
from socialcard.core.errors import field_error
from socialcard.core.logging import get_logger
from socialcard.registry import events as registry_events
from socialcard.registry import validation_columnar
from socialcard.registry.enums import FACT_EVENTS, BatchStatus, EventKind, FactKind, MemberRole
from socialcard.registry.events import NewEvent
from socialcard.registry.ingestion import readers
from socialcard.registry.ingestion import repository as repo
from socialcard.registry.ingestion.errors import (
    BatchFailed,
    BatchInProgress,
    BatchKeyConflict,
    BatchNotFound,
    FileRefused,
    InvalidBatch,
    TooManyRows,
    UnknownSource,
)
from socialcard.registry.ingestion.schemas import (
    AGENCY_PATTERN,
    BATCH_KEY_PATTERN,
    BatchResult,
    FieldRead,
    QuarantinedRowRead,
    QuarantinePage,
    RejectedRow,
    SourceRead,
)
from socialcard.registry.ingestion.sources import (
    SOURCES,
    RawChunk,
    Reject,
    SourceKind,
    SourceSpec,
    ValidatedChunk,
    make_reject,
    validate_chunk,
)
from socialcard.registry.models import Batch
from socialcard.registry.validation import (
    FactRow,
    LinkRow,
    MemberRow,
    RowError,
    check_child_younger,
)
from socialcard.security import service as security_service
from socialcard.security.enums import Purpose, Role
from socialcard.security.errors import AgencyMismatch, SourceNotAllowed
from socialcard.security.schemas import Actor

log = get_logger(__name__)

MAX_API_ROWS = 10_000
MAX_REJECTED_IN_RESULT = 10_000
UNKNOWN_PERSON = (
    "unknown person: no person with this national_id; load it with the persons source first"
)

UNKNOWN_PARENT = (
    "unknown person: no person with this national identifier; register the parent with the"
    " persons source first"
)
PARENT_CYCLE = "the link makes a cycle: the child is already an ancestor of this parent"

Checkpoint = Callable[[], None]
Progress = Callable[[int, int, int], None]  # (position, total, rows done)


@dataclass
class ImportStats:
    """Where an import spent its time (validation overlaps the rest when workers are used)."""

    read_seconds: float = 0.0
    validate_seconds: float = 0.0
    prepare_seconds: float = 0.0  # person rows encoded for the store, before the writer
    write_seconds: float = 0.0
    chunks: int = 0
    workers: int = 0


@dataclass
class ImportOutcome:
    """The batch after an import, whether this call loaded it, and the time split."""

    result: BatchResult
    created: bool
    stats: ImportStats = field(default_factory=ImportStats)


# --- sources ----------------------------------------------------------------------------------


def list_sources() -> list[SourceRead]:
    """The declared sources and their columns."""
    return [
        SourceRead(
            name=spec.name,
            kind=spec.kind.value,
            fact_kind=spec.fact_kind.value if spec.fact_kind else None,
            default_agency=spec.default_agency,
            description=spec.description,
            fields=[
                FieldRead(
                    name=f.name, type=f.type.value, required=f.required, description=f.description
                )
                for f in spec.fields
            ],
        )
        for spec in SOURCES.values()
    ]


def get_source(name: str) -> SourceSpec:
    """The declared source; UnknownSource names the ones that exist."""
    spec = SOURCES.get(name)
    if spec is None:
        raise UnknownSource(
            f"unknown source {name!r}; the sources are: {', '.join(SOURCES)}",
            details=[field_error("source", "unknown source")],
        )
    return spec


# --- batches ----------------------------------------------------------------------------------


def batch_result(
    session: Session, batch: Batch, *, rejected_limit: int = MAX_REJECTED_IN_RESULT
) -> BatchResult:
    """A batch with its first rejected rows."""
    rows, total = repo.quarantine_page(session, batch_id=batch.id, offset=0, limit=rejected_limit)
    return BatchResult(
        id=batch.id,
        source=batch.source,
        agency=batch.agency,
        batch_key=batch.batch_key,
        status=batch.status,
        rows_total=batch.rows_total,
        rows_accepted=batch.rows_accepted,
        rows_rejected=batch.rows_rejected,
        error=batch.error,
        received_at=batch.received_at,
        rejected=[
            RejectedRow(row_number=r.row_number, field=r.field, reason=r.reason) for r in rows
        ],
        rejected_truncated=total > len(rows),
    )


def get_batch(
    session: Session, *, source: str, batch_id: int, actor: Actor | None = None
) -> BatchResult:
    """A batch of a source with its rejected rows (an agency sees only its own batches)."""
    return batch_result(session, _batch_of(session, source=source, batch_id=batch_id, actor=actor))


def batch_quarantine(
    session: Session,
    *,
    source: str,
    batch_id: int,
    page: int,
    size: int,
    actor: Actor | None = None,
    purpose: Purpose | None = None,
) -> QuarantinePage:
    """One page of a batch's quarantined rows, with each row as it was sent.

    The rows are personal data as the agency sent them (names, national ids, phones): an
    agency reads only its own batches; anyone else states a purpose and the read is audited.
    """
    batch = _batch_of(session, source=source, batch_id=batch_id, actor=actor)
    if actor is not None and actor.role != Role.AGENCY:
        if purpose is None:
            raise InvalidBatch(
                "purpose: state why the quarantined rows are read",
                details=[field_error("purpose", "required")],
            )
        security_service.record_access(
            session,
            actor=actor,
            action="ingestion.quarantine.read",
            subject_type="ingestion_batch",
            subject_ids=[batch.id],
            purpose=purpose,
            detail=f"page {page} of {size}",
        )
    rows, total = repo.quarantine_page(
        session, batch_id=batch.id, offset=(page - 1) * size, limit=size
    )
    items = [
        QuarantinedRowRead(
            row_number=r.row_number,
            field=r.field,
            reason=r.reason,
            raw=_parse_raw(r.raw),
            created_at=r.created_at,
        )
        for r in rows
    ]
    return QuarantinePage(items=items, page=page, size=size, total=total)


def _parse_raw(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _batch_of(session: Session, *, source: str, batch_id: int, actor: Actor | None = None) -> Batch:
    get_source(source)
    batch = repo.batch_by_id(session, batch_id)
    if batch is None or batch.source != source:
        raise BatchNotFound(f"no batch {batch_id} of source {source!r}")
    if actor is not None and actor.role == Role.AGENCY and batch.agency != actor.agency:
        # Another agency's batch is as absent as a batch that does not exist.
        raise BatchNotFound(f"no batch {batch_id} of source {source!r}")
    return batch


def _sending_agency(spec: SourceSpec, actor: Actor | None, agency: str | None) -> str:
    """The agency a batch is recorded under: the key's own, never one written in the body."""
    if actor is None:  # a trusted caller (the command line): the body or the default
        return _check_agency(agency or spec.default_agency)
    if actor.agency is None or spec.name not in actor.sources:
        raise SourceNotAllowed(
            f"this key may not push {spec.name!r}"
            + (f"; it may push: {', '.join(sorted(actor.sources))}" if actor.sources else ""),
            details=[field_error("source", "not among the key's sources")],
        )
    if agency is not None and agency != actor.agency:
        raise AgencyMismatch(
            f"this key speaks for {actor.agency!r}, not {agency!r}",
            details=[field_error("agency", "not the key's agency")],
        )
    return actor.agency


def _check_agency(agency: str) -> str:
    if not re.fullmatch(AGENCY_PATTERN, agency):
        raise InvalidBatch(
            f"agency {agency!r} must be 1-40 lowercase letters, digits, '_', '.' or '-'",
            details=[field_error("agency", "invalid agency name")],
        )
    return agency


@dataclass
class _Opening:
    """What is known about a batch key before any row is read."""

    spec: SourceSpec
    agency: str
    batch_key: str
    content_sha256: str
    retry: Batch | None  # a failed or unfinished batch with this key, loaded again


def _open(
    session: Session, *, spec: SourceSpec, agency: str, batch_key: str, content_sha256: str
) -> _Opening | Batch:
    """The finished batch when this is a resend, else what is needed to load it."""
    existing = repo.batch_by_key(session, source=spec.name, agency=agency, batch_key=batch_key)
    if existing is not None and existing.status == BatchStatus.LOADED:
        if existing.content_sha256 != content_sha256:
            raise BatchKeyConflict(
                f"batch key {batch_key!r} of {spec.name}/{agency} was already used for different"
                f" content (batch {existing.id}); use a new key for new content",
                details=[field_error("batch_key", "already used for different content")],
            )
        return existing
    return _Opening(spec, agency, batch_key, content_sha256, existing)


def _start(session: Session, opening: _Opening) -> Batch:
    """Create the batch row, or reset a failed one with the same key for a new attempt."""
    retry = opening.retry
    if retry is not None:
        # A failed attempt's quarantine is replaced by this attempt's; its good rows were
        # merged idempotently, so loading them again changes nothing.
        repo.delete_quarantine(session, retry.id)
        retry.status = BatchStatus.LOADING.value
        retry.content_sha256 = opening.content_sha256
        retry.rows_total = retry.rows_accepted = retry.rows_rejected = 0
        retry.error = None
        retry.received_at = utcnow()
        session.flush()
        return retry
    batch = Batch(
        source=opening.spec.name,
        agency=opening.agency,
        batch_key=opening.batch_key,
        content_sha256=opening.content_sha256,
        status=BatchStatus.LOADING.value,
        rows_total=0,
        rows_accepted=0,
        rows_rejected=0,
    )
    try:
        with session.begin_nested():
            repo.add_batch(session, batch)
    except IntegrityError:
        # Another request inserted the same key between our lookup and our insert.
        raise BatchInProgress(
            f"batch key {opening.batch_key!r} is being loaded by another request; retry shortly"
        ) from None
    return batch


# --- the agency API ---------------------------------------------------------------------------


def submit_batch(
    session: Session,
    *,
    source: str,
    rows: Sequence[dict[str, Any]],
    batch_key: str | None,
    idempotency_key: str | None = None,
    agency: str | None = None,
    actor: Actor | None = None,
) -> tuple[BatchResult, bool]:
    """Load a batch of rows sent over the API; returns the result and whether it is new.

    With an agency key (`actor`) the batch's provenance is the key's agency, and the key must
    be bound to the source.
    """
    spec = get_source(source)
    agency = _sending_agency(spec, actor, agency)
    if batch_key and idempotency_key and batch_key != idempotency_key:
        raise InvalidBatch(
            "batch_key and the Idempotency-Key header differ; send one key",
            details=[field_error("batch_key", "differs from the Idempotency-Key header")],
        )
    key = batch_key or idempotency_key
    if not key:
        raise InvalidBatch(
            "batch_key is required (or send the Idempotency-Key header)",
            details=[field_error("batch_key", "is required")],
        )
    if not re.fullmatch(BATCH_KEY_PATTERN, key):
        raise InvalidBatch(
            "the batch key must be 1-100 letters, digits, '.', '_', ':' or '-'",
            details=[field_error("batch_key", "invalid batch key")],
        )
    if not rows:
        raise InvalidBatch(
            "rows must hold at least one row", details=[field_error("rows", "is empty")]
        )
    if len(rows) > MAX_API_ROWS:
        raise TooManyRows(
            f"a batch holds at most {MAX_API_ROWS} rows, got {len(rows)}; split it or send a file",
            details=[field_error("rows", f"more than {MAX_API_ROWS} rows")],
        )
    canonical = json.dumps(
        rows, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    )
    content_sha256 = hashlib.sha256(canonical.encode()).hexdigest()
    opened = _open(session, spec=spec, agency=agency, batch_key=key, content_sha256=content_sha256)
    if isinstance(opened, Batch):
        return batch_result(session, opened), False
    batch = _start(session, opened)
    chunk = RawChunk(range(1, len(rows) + 1), rows, None, None, [], check_types=True)
    settings = get_settings()
    loader = _Loader(
        session, spec=spec, batch=batch, today=clock_today(), country=settings.registry.country
    )
    loader.load(validate_chunk(spec.name, chunk, loader.today, loader.country))
    loader.finish()
    log.info(
        "batch_loaded",
        batch_id=batch.id,
        source=spec.name,
        rows=batch.rows_total,
        rejected=batch.rows_rejected,
    )
    return batch_result(session, batch), True


# --- files ------------------------------------------------------------------------------------


def import_file(
    session: Session,
    *,
    source: str,
    path: Path,
    file_format: str | None = None,
    agency: str | None = None,
    batch_key: str | None = None,
    checkpoint: Checkpoint | None = None,
    progress: Progress | None = None,
    workers: int = 0,
    chunk_rows: int | None = None,
    today: date | None = None,
) -> ImportOutcome:
    """Import a CSV, JSON Lines or Parquet file of a source, streamed in chunks.

    `checkpoint` is called after each chunk (the caller commits there); `workers` > 1 validates
    chunks in that many worker processes while the loader writes.
    """
    spec = get_source(source)
    fmt = readers.detect_format(path, file_format)
    agency = _check_agency(agency or spec.default_agency)
    if not path.is_file():
        raise FileRefused(f"no such file: {path}")
    content_sha256 = readers.file_sha256(path)
    key = batch_key or content_sha256
    if not re.fullmatch(BATCH_KEY_PATTERN, key):
        raise FileRefused("the batch key must be 1-100 letters, digits, '.', '_', ':' or '-'")
    opened = _open(session, spec=spec, agency=agency, batch_key=key, content_sha256=content_sha256)
    if isinstance(opened, Batch):
        return ImportOutcome(batch_result(session, opened), created=False)
    settings = get_settings()
    rows_per_chunk = chunk_rows or settings.registry.import_batch_rows
    reader = readers.open_reader(path, fmt, spec, chunk_rows=rows_per_chunk)
    stats = ImportStats(workers=workers if workers > 1 else 0)
    day = today or clock_today()
    country = settings.registry.country
    loaders: list[_Loader] = []

    def write(validated: ValidatedChunk, persons: repo.PersonLoad | None) -> None:
        if not loaders:
            batch = _start(session, opened)
            loaders.append(_Loader(session, spec=spec, batch=batch, today=day, country=country))
        started = time.perf_counter()
        loaders[0].load(validated, persons)
        if checkpoint is not None:
            checkpoint()
        stats.write_seconds += time.perf_counter() - started
        stats.chunks += 1
        if progress is not None:
            progress(reader.position(), reader.total, loaders[0].batch.rows_total)

    failure: readers.ReadFailure | None = None
    is_persons = spec.kind is SourceKind.PERSON
    postgres = not is_sqlite(session)
    # One writer thread: the store works on chunk k while this thread reads and validates chunk
    # k+1 (both drivers release the GIL while the store works). The session is used by one
    # thread at a time: by the writer until its chunk is done, then by this thread.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer") as writer:
        pending: Future[None] | None = None
        try:
            try:
                for validated in _validated_chunks(reader, spec, day, country, stats):
                    # Person rows are encoded for the store here, while the writer still works.
                    persons = None
                    if is_persons:
                        started = time.perf_counter()
                        persons = _prepare_persons(validated, postgres)
                        stats.prepare_seconds += time.perf_counter() - started
                    if pending is not None:
                        pending.result()
                    pending = writer.submit(write, validated, persons)
            except readers.ReadFailure as exc:
                failure = exc
            if pending is not None:
                done, pending = pending, None
                done.result()
        finally:
            reader.close()
            if pending is not None:
                # Something failed here: let the writer finish before the caller rolls back.
                with contextlib.suppress(Exception):
                    pending.result()
    loader = loaders[0] if loaders else None
    if failure is not None:
        if loader is None:
            raise FileRefused(f"{path.name}: {failure}")
        batch = loader.fail(str(failure))
        if checkpoint is not None:
            checkpoint()
        raise BatchFailed(
            f"{path.name}: {failure}. The {batch.rows_total} rows before the error were processed "
            f"(batch {batch.id} is marked failed); fix the file and import it again.",
            details=[{"field": "file", "reason": str(failure), "batch_id": batch.id}],
        )
    if loader is None:
        raise FileRefused(f"{path.name} has no data rows")
    started = time.perf_counter()
    loader.finish()
    if checkpoint is not None:
        checkpoint()
    stats.write_seconds += time.perf_counter() - started
    batch = loader.batch
    log.info(
        "file_imported",
        batch_id=batch.id,
        source=spec.name,
        rows=batch.rows_total,
        rejected=batch.rows_rejected,
    )
    return ImportOutcome(batch_result(session, batch), created=True, stats=stats)


def _timed(chunks: Iterator[RawChunk], stats: ImportStats) -> Iterator[RawChunk]:
    while True:
        started = time.perf_counter()
        try:
            chunk = next(chunks)
        except StopIteration:
            stats.read_seconds += time.perf_counter() - started
            return
        stats.read_seconds += time.perf_counter() - started
        yield chunk


def _validated_chunks(
    reader: readers.ChunkReader, spec: SourceSpec, today: date, country: str, stats: ImportStats
) -> Iterator[ValidatedChunk]:
    """Validated chunks in file order, from this process or from workers ahead of the writer."""
    chunks = _timed(reader.chunks(), stats)
    if stats.workers <= 1:
        for raw in chunks:
            validated = validate_chunk(spec.name, raw, today, country)
            stats.validate_seconds += validated.seconds
            yield validated
        return
    # spawn, not fork: the parent holds database connections and threads.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=stats.workers, mp_context=context) as pool:
        pending: deque[Future[ValidatedChunk]] = deque()
        try:
            for raw in chunks:
                pending.append(pool.submit(validate_chunk, spec.name, raw, today, country))
                # Keep every worker busy while the writer works, but never read far ahead.
                if len(pending) > stats.workers:
                    validated = pending.popleft().result()
                    stats.validate_seconds += validated.seconds
                    yield validated
        except readers.ReadFailure:
            # Load what was read before the break, then report it.
            while pending:
                yield pending.popleft().result()
            raise
        while pending:
            validated = pending.popleft().result()
            stats.validate_seconds += validated.seconds
            yield validated


def default_workers(path: Path) -> int:
    """Validation worker processes worth starting for a file.

    None for small files or machines of two cores or fewer: there the writer thread already
    keeps both cores busy (validation here, the store there), and measured 1M-row imports got
    slower with two more processes competing. Bigger machines leave two cores to the importer
    and the store.
    """
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    cpus = os.cpu_count() or 1
    if size < 16 << 20 or cpus <= 2:
        return 0
    return min(4, cpus - 2)


# --- loading chunks ---------------------------------------------------------------------------


def _prepare_persons(chunk: ValidatedChunk, postgres: bool) -> repo.PersonLoad:
    """A chunk's valid person rows ready for the store; one national id twice in a chunk: the
    later row wins (a merge cannot touch a row twice)."""
    table = chunk.persons
    if table is None:  # rows sent over the API arrive as tuples
        table = validation_columnar.person_table(
            [number for number, _ in chunk.valid], [row for _, row in chunk.valid]
        )
    return repo.prepare_persons(table, now=utcnow(), postgres=postgres)


def _row_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    asdict: Callable[[], dict[str, Any]] = getattr(row, "_asdict")  # noqa: B009 - NamedTuple rows
    return asdict()


class _Loader:
    """Writes validated chunks of one batch: rows, quarantine, events and the batch counters."""

    def __init__(
        self, session: Session, *, spec: SourceSpec, batch: Batch, today: date, country: str
    ) -> None:
        self.session = session
        self.spec = spec
        self.batch = batch
        self.today = today
        self.country = country
        # Persons are first tried as all new (a plain COPY into the table), until a chunk
        # meets known national ids; from then on they go through the upsert.
        self.insert_persons_first = True

    def load(self, chunk: ValidatedChunk, persons: repo.PersonLoad | None = None) -> None:
        """Write a validated chunk (`persons`: its person rows already prepared for the store)."""
        if self.spec.kind is SourceKind.PERSON and persons is None:
            persons = _prepare_persons(chunk, not is_sqlite(self.session))
        now = persons.now if persons is not None else utcnow()
        rejects = list(chunk.rejects)
        events: list[NewEvent] = []
        if persons is not None:
            self._persons(persons)
        elif self.spec.kind is SourceKind.FACT:
            self._facts(chunk.valid, rejects, events, now)
        elif self.spec.kind is SourceKind.LINK:
            self._links(chunk.valid, rejects, now)
        else:
            self._members(chunk.valid, rejects, events, now)
        registry_events.record_events(self.session, events)
        late = len(rejects) - len(
            chunk.rejects
        )  # rows valid alone but refused against the registry
        repo.insert_quarantine(self.session, batch_id=self.batch.id, rejects=rejects, now=now)
        total = chunk.accepted + len(chunk.rejects)
        self.batch.rows_total += total
        self.batch.rows_rejected += len(rejects)
        self.batch.rows_accepted += chunk.accepted - late
        self.session.flush()

    def finish(self) -> Batch:
        self.batch.status = BatchStatus.LOADED.value
        self.session.flush()
        return self.batch

    def fail(self, error: str) -> Batch:
        self.batch.status = BatchStatus.FAILED.value
        self.batch.error = error[:2000]
        self.session.flush()
        return self.batch

    def _payload(self, **extra: Any) -> dict[str, Any]:
        return {
            "batch_id": self.batch.id,
            "source": self.spec.name,
            "agency": self.batch.agency,
            **extra,
        }

    # persons ---------------------------------------------------------------------------------

    def _persons(self, persons: repo.PersonLoad) -> None:
        # A person record arriving is registry upkeep, not a life event: births, deaths,
        # disability, unemployment and family changes are (they come from their own sources).
        met_known = repo.upsert_persons(
            self.session, persons, insert_first=self.insert_persons_first
        )
        if met_known:
            # This file updates known persons: stop trying the insert-only path on it.
            self.insert_persons_first = False

    # facts -----------------------------------------------------------------------------------

    def _facts(
        self,
        valid: list[tuple[int, tuple[Any, ...]]],
        rejects: list[Reject],
        events: list[NewEvent],
        now: datetime,
    ) -> None:
        births = self.spec.fact_kind is FactKind.BIRTH
        wanted = [row[0] for _, row in valid]
        if births:  # the parents named by each birth
            wanted += [r for _, row in valid for r in row[8:10] if r is not None]
        persons = repo.persons_by_national_ids(self.session, wanted)
        latest: dict[tuple[int, str, date], tuple[int, int, FactRow]] = {}
        parents: dict[int, list[repo.NewLink]] = {}
        lineage = _Lineage(self.session)
        for number, row in valid:
            fact = FactRow(*row[:8])
            person = persons.get(fact.national_id)
            if person is None:
                rejects.append(
                    make_reject(
                        number,
                        "national_id",
                        UNKNOWN_PERSON,
                        _row_dict(fact),
                    )
                )
                continue
            if fact.valid_from < person.birth_on:
                rejects.append(
                    make_reject(
                        number,
                        "valid_from",
                        f"is before the person's birth date ({person.birth_on.isoformat()})",
                        _row_dict(fact),
                    )
                )
                continue
            if births:
                try:
                    parents[number] = lineage.birth_links(persons, person, fact, row[8], row[9])
                except RowError as exc:
                    rejects.append(make_reject(number, exc.field, exc.reason, _row_dict(fact)))
                    continue
            # The same key twice in a chunk: the later row wins, like a correction would.
            latest[(person.id, fact.detail, fact.valid_from)] = (number, person.id, fact)
        rows = sorted(latest.values(), key=lambda item: item[0])
        kind = self.spec.fact_kind
        assert kind is not None  # noqa: S101 - fact sources declare their kind
        written = repo.load_facts(
            self.session,
            rows,
            kind=kind.value,
            source=self.batch.agency,
            batch_id=self.batch.id,
            now=now,
        )
        if births:
            kept = {number for number, _, _ in rows}
            repo.load_links(
                self.session,
                [link for number in sorted(parents) if number in kept for link in parents[number]],
                source=self.batch.agency,
                batch_id=self.batch.id,
                now=now,
            )
        if kind is FactKind.DEATH:
            self._deaths(written, events, now)
            return
        event_kind = FACT_EVENTS.get(kind)
        if event_kind is not None:
            # A correction of a known fact is not a new life event; a new fact is.
            events += [
                NewEvent(
                    event_kind, w.person_id, None, w.valid_from, self._payload(detail=w.detail)
                )
                for w in written
                if w.is_new
            ]

    def _deaths(
        self, written: list[repo.WrittenFact], events: list[NewEvent], now: datetime
    ) -> None:
        """A death sets the person's death date and ends their open family membership."""
        if not written:
            return
        repo.set_death_dates(self.session, [(w.person_id, w.valid_from) for w in written], now=now)
        open_by_person = repo.open_memberships_of_persons(
            self.session, [w.person_id for w in written]
        )
        closes: list[tuple[int, date]] = []
        for w in written:
            if w.is_new:
                events.append(
                    NewEvent(EventKind.DEATH, w.person_id, None, w.valid_from, self._payload())
                )
            membership = open_by_person.pop(w.person_id, None)
            if membership is not None:
                until = max(w.valid_from, membership.from_on)
                closes.append((membership.member_id, until))
                events.append(
                    NewEvent(
                        EventKind.FAMILY_CHANGED,
                        w.person_id,
                        membership.family_id,
                        until,
                        self._payload(change="left", role=membership.role, reason="death"),
                    )
                )
        repo.close_memberships(self.session, closes)

    # parent-child links ----------------------------------------------------------------------

    def _links(
        self, valid: list[tuple[int, tuple[Any, ...]]], rejects: list[Reject], now: datetime
    ) -> None:
        rows = [(number, LinkRow(*row)) for number, row in valid]
        persons = repo.persons_by_national_ids(
            self.session, [n for _, r in rows for n in (r.national_id, r.parent_national_id)]
        )
        lineage = _Lineage(self.session)
        links: list[repo.NewLink] = []
        for number, row in rows:
            try:
                child = persons.get(row.national_id)
                if child is None:
                    raise RowError("national_id", UNKNOWN_PERSON)
                parent = persons.get(row.parent_national_id)
                if parent is None:
                    raise RowError("parent_national_id", UNKNOWN_PARENT)
                if row.valid_from < child.birth_on:
                    raise RowError(
                        "valid_from",
                        f"is before the child's birth date ({child.birth_on.isoformat()})",
                    )
                if row.relation in ("mother", "father") and parent.birth_on >= child.birth_on:
                    raise RowError("parent_national_id", "the parent is not older than the child")
                link = repo.NewLink(
                    child.id, parent.id, row.relation, row.valid_from, row.valid_until
                )
                lineage.add(link, "parent_national_id")
            except RowError as exc:
                rejects.append(make_reject(number, exc.field, exc.reason, _row_dict(row)))
                continue
            links.append(link)
        repo.load_links(
            self.session, links, source=self.batch.agency, batch_id=self.batch.id, now=now
        )

    # family members --------------------------------------------------------------------------

    def _members(
        self,
        valid: list[tuple[int, tuple[Any, ...]]],
        rejects: list[Reject],
        events: list[NewEvent],
        now: datetime,
    ) -> None:
        rows = [(number, MemberRow(*row)) for number, row in valid]
        plan = _MemberPlan(self.session, rows)
        for number, member in rows:
            try:
                plan.apply(number, member)
            except RowError as exc:
                rejects.append(make_reject(number, exc.field, exc.reason, _row_dict(member)))
        plan.write(events, self._payload, now)


class _Lineage:
    """Parent-child links of a chunk checked against the registry and the rows before them:
    no person may become their own ancestor."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pending: dict[int, set[int]] = {}  # parent -> children, accepted in this chunk

    def _descendants(self, person_id: int) -> set[int]:
        seen: set[int] = set()
        frontier = {person_id}
        while frontier:
            stored = repo.children_of(self.session, frontier)
            step: set[int] = set()
            for parent in frontier:
                step |= stored.get(parent, set()) | self.pending.get(parent, set())
            frontier = step - seen
            seen |= frontier
        return seen

    def add(self, link: repo.NewLink, column: str) -> None:
        """Accept a link (RowError naming `column` if it makes a cycle)."""
        if link.parent_id == link.child_id or link.parent_id in self._descendants(link.child_id):
            raise RowError(column, PARENT_CYCLE)
        self.pending.setdefault(link.parent_id, set()).add(link.child_id)

    def birth_links(
        self,
        persons: Mapping[str, repo.PersonRef],
        child: repo.PersonRef,
        fact: FactRow,
        mother_id: str | None,
        father_id: str | None,
    ) -> list[repo.NewLink]:
        """The mother's (required, known) and the father's (if given) links of a birth."""
        links: list[repo.NewLink] = []
        for column, national_id, relation in (
            ("mother_national_id", mother_id, "mother"),
            ("father_national_id", father_id, "father"),
        ):
            if national_id is None:
                if relation == "mother":
                    raise RowError(column, "is required: a birth registers its mother")
                continue
            parent = persons.get(national_id)
            if parent is None:
                raise RowError(column, UNKNOWN_PARENT)
            if parent.birth_on >= child.birth_on:
                raise RowError(column, "the parent is not older than the child")
            links.append(repo.NewLink(child.id, parent.id, relation, child.birth_on, None))
        for link in links:
            self.add(link, f"{link.relation}_national_id")
        return links


@dataclass
class _Membership:
    """An open or pending membership while a chunk is planned."""

    ref: str
    person_id: int
    role: str
    from_on: date
    until_on: date | None = None
    member_id: int | None = None  # None until written


@dataclass
class _Change:
    number: int
    person_id: int
    ref: str
    on: date
    payload: dict[str, Any]


class _MemberPlan:
    """Applies family-membership rows in order against the registry and the rows before them.

    The registry state the chunk needs is read once; each row is checked against it and the
    state is updated in memory, so a row sees the effect of the rows before it. Writes happen at
    the end: ends of memberships first (one open membership per person), then new ones.
    """

    def __init__(self, session: Session, rows: Sequence[tuple[int, MemberRow]]) -> None:
        self.session = session
        self.persons = repo.persons_by_national_ids(session, (m.national_id for _, m in rows))
        person_ids = [p.id for p in self.persons.values()]
        opened = repo.open_memberships_of_persons(session, person_ids)
        self.closed = repo.closed_memberships_of_persons(session, person_ids)
        refs = [m.family_ref for _, m in rows]
        self.family_ids = repo.families_by_refs(session, refs)
        other_ids = {m.family_id for m in opened.values()} - set(self.family_ids.values())
        ended = repo.ended_membership_spans(session, person_ids)
        other_ids |= {fid for spans in ended.values() for fid, _, _ in spans}
        other_ids -= set(self.family_ids.values())
        self.ref_of = {fid: ref for ref, fid in self.family_ids.items()}
        self.ref_of.update(repo.family_refs_by_ids(session, list(other_ids)))
        # Each person's ended memberships (family ref, from, until), kept up to date as rows
        # end or add memberships, so that no row makes two memberships of a person overlap.
        self.ended: dict[int, list[tuple[str, date, date]]] = {
            pid: [(self.ref_of[fid], start, end) for fid, start, end in spans]
            for pid, spans in ended.items()
        }
        self.current: dict[int, _Membership] = {
            pid: _Membership(self.ref_of[m.family_id], pid, m.role, m.from_on, None, m.member_id)
            for pid, m in opened.items()
        }
        # Open members of each family with their birth dates, for the age checks.
        self.members: dict[str, dict[int, tuple[str, date]]] = {}
        for cm in repo.current_members_of_families(session, list(self.family_ids.values())):
            self.members.setdefault(self.ref_of[cm.family_id], {})[cm.person_id] = (
                cm.role,
                cm.birth_on,
            )
        self.new_families: dict[str, str] = {}
        self.inserts: list[_Membership] = []
        self.closes: list[tuple[int, date]] = []
        self.role_changes: list[tuple[int, str, date]] = []
        self.changes: list[_Change] = []
        self.closed_here: set[tuple[int, str, date]] = set()

    def apply(self, number: int, row: MemberRow) -> None:
        person = self.persons.get(row.national_id)
        if person is None:
            raise RowError(
                "national_id",
                UNKNOWN_PERSON,
            )
        if row.until_on is not None:
            self._close(number, person.id, row)
            return
        if person.death_on is not None:
            raise RowError(
                "national_id",
                f"the person died on {person.death_on.isoformat()} and cannot join a family",
            )
        current = self.current.get(person.id)
        if current is not None and current.ref != row.family_ref:
            raise RowError(
                "family_ref",
                f"the person is already a member of family {current.ref!r} since "
                f"{current.from_on.isoformat()}; close that membership first (a row with until_on)",
            )
        if current is not None and current.role == row.role and current.from_on == row.from_on:
            return  # already recorded
        self._check_overlap(person.id, row.from_on, None)
        self._check_roles(person.id, person.birth_on, row)
        family = self.members.setdefault(row.family_ref, {})
        if row.family_ref not in self.family_ids and row.family_ref not in self.new_families:
            self.new_families[row.family_ref] = row.region_kato
        if current is None:
            membership = _Membership(row.family_ref, person.id, row.role, row.from_on)
            self.inserts.append(membership)
            self.current[person.id] = membership
            change = "joined"
        elif row.from_on > current.from_on:
            # A new role from a later date: end the old membership there and keep it as history.
            self._end(current, row.from_on)
            membership = _Membership(row.family_ref, person.id, row.role, row.from_on)
            self.inserts.append(membership)
            self.current[person.id] = membership
            change = "role_changed"
        else:
            current.role, current.from_on = row.role, row.from_on
            if current.member_id is not None:
                self.role_changes.append((current.member_id, row.role, row.from_on))
            change = "role_changed"
        family[person.id] = (row.role, person.birth_on)
        self.changes.append(
            _Change(
                number, person.id, row.family_ref, row.from_on, {"change": change, "role": row.role}
            )
        )

    def _check_roles(self, person_id: int, birth_on: date, row: MemberRow) -> None:
        """Age order within the family (children younger than head and spouse, parents older
        than the head) and a single head."""
        others = [
            (pid, role, born)
            for pid, (role, born) in self.members.get(row.family_ref, {}).items()
            if pid != person_id
        ]
        for _, role, born in others:
            if row.role == MemberRole.CHILD and role in (MemberRole.HEAD, MemberRole.SPOUSE):
                check_child_younger(child_birth_on=birth_on, parent_birth_on=born)
            elif row.role in (MemberRole.HEAD, MemberRole.SPOUSE) and role == MemberRole.CHILD:
                _younger(
                    born,
                    birth_on,
                    f"a child of this family is as old as or older than this {row.role}",
                )
            elif row.role == MemberRole.PARENT and role == MemberRole.HEAD:
                _younger(born, birth_on, "a parent must be older than the head of the family")
            elif row.role == MemberRole.HEAD and role == MemberRole.PARENT:
                _younger(birth_on, born, "the head must be younger than a parent in this family")
            if row.role == MemberRole.HEAD and role == MemberRole.HEAD:
                raise RowError(
                    "role",
                    "the family already has a head; close that membership first (until_on)",
                )

    def _close(self, number: int, person_id: int, row: MemberRow) -> None:
        assert row.until_on is not None  # noqa: S101 - only closing rows come here
        current = self.current.get(person_id)
        if current is not None and current.ref == row.family_ref:
            if row.until_on < current.from_on:
                raise RowError(
                    "until_on", f"is before the membership began ({current.from_on.isoformat()})"
                )
            self._end(current, row.until_on)
            self.changes.append(
                _Change(
                    number,
                    person_id,
                    row.family_ref,
                    row.until_on,
                    {"change": "left", "role": current.role},
                )
            )
            return
        family_id = self.family_ids.get(row.family_ref)
        key = (person_id, row.family_ref, row.until_on)
        if (
            family_id is not None and (person_id, family_id, row.until_on) in self.closed
        ) or key in self.closed_here:
            return  # this ended membership is already recorded
        self._check_overlap(person_id, row.from_on, row.until_on)
        # A membership that ended before it reached us: kept as history, not a new event.
        if row.family_ref not in self.family_ids and row.family_ref not in self.new_families:
            self.new_families[row.family_ref] = row.region_kato
        self.inserts.append(
            _Membership(row.family_ref, person_id, row.role, row.from_on, row.until_on)
        )
        self.closed_here.add(key)
        self.ended.setdefault(person_id, []).append((row.family_ref, row.from_on, row.until_on))

    def _check_overlap(self, person_id: int, from_on: date, until_on: date | None) -> None:
        """A person is a member of one family at a time: a new membership from `from_on`
        until `until_on` (None: open) must not overlap another of the person's memberships.
        Two may share their boundary day (one ends the day the next begins: a move, or a new
        role; the registry's read counts the later one on that day)."""
        spans: list[tuple[str, date, date | None]] = list(self.ended.get(person_id, []))
        current = self.current.get(person_id)
        if current is not None and until_on is not None:
            # (An open row replaces the current membership or ends it where it begins.)
            spans.append((current.ref, current.from_on, None))
        for ref, start, end in spans:
            if (until_on is None or start < until_on) and (end is None or from_on < end):
                field = "from_on" if start <= from_on else "until_on"
                until = "" if end is None else f" until {end.isoformat()}"
                raise RowError(
                    field,
                    f"overlaps the person's membership of family {ref!r} from "
                    f"{start.isoformat()}{until}; a person belongs to one family at a time",
                )

    def _end(self, membership: _Membership, until_on: date) -> None:
        membership.until_on = until_on
        self.ended.setdefault(membership.person_id, []).append(
            (membership.ref, membership.from_on, until_on)
        )
        if membership.member_id is not None:
            self.closes.append((membership.member_id, until_on))
        self.current.pop(membership.person_id, None)
        self.members.get(membership.ref, {}).pop(membership.person_id, None)
        self.closed_here.add((membership.person_id, membership.ref, until_on))

    def write(
        self, events: list[NewEvent], payload: Callable[..., dict[str, Any]], now: datetime
    ) -> None:
        self.family_ids.update(
            repo.insert_families(self.session, list(self.new_families.items()), now=now)
        )
        repo.close_memberships(self.session, self.closes)
        repo.change_member_roles(self.session, self.role_changes)
        repo.insert_memberships(
            self.session,
            [
                (self.family_ids[m.ref], m.person_id, m.role, m.from_on, m.until_on)
                for m in self.inserts
            ],
        )
        events += [
            NewEvent(
                EventKind.FAMILY_CHANGED,
                c.person_id,
                self.family_ids[c.ref],
                c.on,
                payload(**c.payload),
            )
            for c in self.changes
        ]


def _younger(child_birth_on: date, parent_birth_on: date, reason: str) -> None:
    try:
        check_child_younger(child_birth_on=child_birth_on, parent_birth_on=parent_birth_on)
    except RowError:
        raise RowError("national_id", reason) from None
