"""Rules service: stored whole-registry runs, their decisions, one family online, what-if.

The interface other domains use (the proactive campaigns call these):

- `run_rules(session, *, period, months=1, programs=None, pack_path=None, snapshot=None,
  progress=None) -> RunRead`: evaluate every program of the pack over the whole registry for
  `months` consecutive periods from `period` and store the run, its per-program summary
  (version, parameters, legal basis, counts, cost), per-region counts and every decision with
  its condition and variable values, each period as of that period. Reads the committed
  registry over ADBC unless a `snapshot` is given (`session_snapshot(session, period=...,
  months=...)` reads through the session; (person, fact) Arrow tables serve every period).
  Writes through the session's connection; the caller commits.
- `latest_run(session, *, period) -> RunRead | None`: the newest succeeded run of a period.
- `eligible_decisions(session, *, run_id, program_id, period=None) -> Iterator[StoredDecision]`:
  the eligible decisions of one program (entity, family, recipient person, region, amount,
  version, period, condition values), streamed in family order.
- `evaluate_family(session, *, family_id, period, programs=None, lang=None, overrides=None)
  -> FamilyEvaluation`: one family evaluated now (not audited); `family_eligibility` is the
  operator's audited variant.
- `explain_decision(session, *, run_id, family_key, program_id, actor, purpose, lang,
  period=None, person_id=None) -> StoredDecisionExplained`: a stored decision with its
  sentences in kk/ru/en (audited, like `list_decisions`).
- `simulate_registry(...)`: what-if over the registry (baseline against reform); the sample of
  gainers and losers is an audited read.

Services never commit. Errors are `socialcard.core.errors` subclasses naming the field.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection
from sqlalchemy import Engine as SAEngine
from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.config import get_settings
from socialcard.core.errors import InvalidInput, field_error
from socialcard.core.logging import get_logger
from socialcard.registry import service as registry_service
from socialcard.registry import snapshot as registry_snapshot
from socialcard.rules import codec, repository
from socialcard.rules.engine.compiler import CompiledPack, ProgramPlan, VersionPlan, load_pack
from socialcard.rules.engine.explain import Decision, plain_value
from socialcard.rules.engine.model import LANGUAGES, Scalar
from socialcard.rules.engine.periods import Period, add_months
from socialcard.rules.engine.problems import EvaluationError, PackError
from socialcard.rules.engine.runtime import BatchResult, Engine, OnlineEvaluator
from socialcard.rules.engine.simulate import simulate_loaded
from socialcard.rules.errors import (
    DecisionNotFound,
    FamilyNotFound,
    RuleEvaluationFailed,
    RulePackInvalid,
    RunNotFound,
)
from socialcard.rules.models import RulesRun, RulesRunCount, RulesRunProgram, RulesRunRegion
from socialcard.rules.schemas import (
    ChangeRead,
    DecisionPage,
    DeltaRead,
    ExplainedDecision,
    ExplanationRead,
    FamilyEvaluation,
    ProgramSummaryRead,
    RegionSummaryRead,
    RunDetail,
    RunPage,
    RunRead,
    RunTimings,
    SimulationRead,
    StoredDecision,
    StoredDecisionExplained,
)
from socialcard.security import service as security_service
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor
from socialcard.wellbeing import inputs as wellbeing_inputs

Progress = Callable[[str, int, int], None]


# --- the pack, compiled once per process -------------------------------------------------


@dataclass(frozen=True)
class LoadedPack:
    """A compiled pack with where it came from and the hash of its files."""

    path: str
    compiled: CompiledPack
    content_hash: str
    compile_seconds: float


_log = get_logger(__name__)
_PACKS: dict[str, LoadedPack] = {}
_PACK_LOCK = threading.Lock()
_LOCAL = threading.local()


def pack_hash(path: Path) -> str:
    """SHA-256 over the pack's YAML files (relative name and bytes, in name order)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def resolve_pack_path(path: str | Path | None = None) -> Path:
    """A rule pack's directory (default: settings.rules.pack_path). A relative path is looked up
    in the working directory, then in the source checkout, so commands work from anywhere."""
    chosen = Path(path if path is not None else get_settings().rules.pack_path)
    if not chosen.is_absolute() and not chosen.exists():
        checkout = Path(__file__).resolve().parents[3] / chosen
        if checkout.exists():
            return checkout.resolve()
    return chosen.resolve()


def loaded_pack(path: str | Path | None = None) -> LoadedPack:
    """The compiled pack at `path` (default: settings.rules.pack_path), cached per process."""
    resolved = resolve_pack_path(path)
    key = str(resolved)
    cached = _PACKS.get(key)
    if cached is not None:
        return cached
    with _PACK_LOCK:
        cached = _PACKS.get(key)
        if cached is not None:
            return cached
        if not (resolved / "pack.yaml").is_file():
            raise RulePackInvalid(
                f"pack_path: no rule pack at {path}",
                details=[field_error("pack_path", "no pack.yaml in this directory")],
            )
        started = time.perf_counter()
        try:
            compiled = load_pack(resolved)
        except PackError as exc:
            raise RulePackInvalid.from_pack_error(exc) from None
        loaded = LoadedPack(key, compiled, pack_hash(resolved), time.perf_counter() - started)
        _PACKS[key] = loaded
        _settle_heap()
        return loaded


def warm_up() -> None:
    """Compile the configured pack now (at server start), not in the first online request
    (0.4-0.5 s). A pack that does not load is logged; its requests then answer 4xx."""
    try:
        pack = loaded_pack()
    except RulePackInvalid as exc:
        _log.warning("rules.pack_not_loaded", reason=str(exc))
        return
    _log.info("rules.pack_loaded", path=pack.path, seconds=round(pack.compile_seconds, 3))


def _settle_heap() -> None:
    """Move everything alive now (the compiled pack, the imported modules) out of the cyclic
    collector's reach: they live as long as the process, and a full collection that walked
    them took 60-110 ms in the middle of an online family check (bench_rules_online.py).
    """
    gc.collect()
    gc.freeze()


def _evaluator(pack: LoadedPack) -> OnlineEvaluator:
    """This thread's online evaluator for the pack (DuckDB connections are not shared)."""
    evaluators: dict[str, OnlineEvaluator] | None = getattr(_LOCAL, "evaluators", None)
    if evaluators is None:
        evaluators = {}
        _LOCAL.evaluators = evaluators
    key = f"{pack.path}:{pack.content_hash}"
    evaluator = evaluators.get(key)
    if evaluator is None:
        evaluator = OnlineEvaluator(pack.compiled)
        evaluators[key] = evaluator
    return evaluator


# --- input checks ------------------------------------------------------------------------


def parse_period(text: str, *, field: str = "period") -> Period:
    """A period (YYYY-MM or YYYY) or a 422 naming the field."""
    try:
        return Period.parse(text)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"{field}: {exc}", details=[field_error(field, f"write YYYY-MM or YYYY ({exc})")]
        ) from None


def parse_value(text: str) -> Scalar:
    """An override value given as text: integer (underscores allowed), decimal, true/false,
    date or text.

    >>> parse_value("3932_00"), parse_value("0.8"), parse_value("true")
    (393200, Decimal('0.8'), True)
    """
    from decimal import InvalidOperation

    lowered = text.strip().lower()
    if len(lowered) > 40:  # no parameter value is longer; nor is int() asked to read one
        return text
    if lowered in ("true", "false"):
        return lowered == "true"
    cleaned = text.strip().replace("_", "")
    if cleaned.lstrip("-").isdigit():
        return int(cleaned)
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        pass
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        return text


def parse_overrides(
    compiled: CompiledPack, overrides: Mapping[str, Any] | None, *, field: str = "overrides"
) -> dict[str, Scalar]:
    """Overrides with typed values; an unknown parameter or a bad value is a 422 naming it."""
    out: dict[str, Scalar] = {}
    errors: list[dict[str, Any]] = []
    for name, raw in (overrides or {}).items():
        where = f"{field}.{name}"
        value: Scalar
        if isinstance(raw, bool | int | Decimal | dt.date):
            value = raw
        elif isinstance(raw, float):
            value = Decimal(repr(raw))
        elif isinstance(raw, str):
            value = parse_value(raw)
            if isinstance(value, str):
                errors.append(field_error(where, f"{raw!r} is not a number, date or boolean"))
                continue
        else:
            errors.append(field_error(where, "must be a number, date or boolean"))
            continue
        try:
            out[name] = compiled.check_override(name, value)
        except EvaluationError as exc:
            errors.append(field_error(where, str(exc)))
    if errors:
        raise InvalidInput(f"{errors[0]['field']}: {errors[0]['reason']}", details=errors)
    return out


def _periods(first: Period, months: int) -> list[Period]:
    if months < 1:
        raise InvalidInput("months: at least 1", details=[field_error("months", "at least 1")])
    if first.kind != "month" and months != 1:
        raise InvalidInput(
            "months: only for a monthly period",
            details=[field_error("months", "a yearly period is evaluated alone")],
        )
    return [Period(add_months(first.start, i), first.kind) for i in range(months)]


def _select_plans(
    compiled: CompiledPack, kind: str, programs: Sequence[str] | None
) -> list[ProgramPlan]:
    known = {p.program.id for p in compiled.programs}
    unknown = [p for p in programs or [] if p not in known]
    if unknown:
        raise InvalidInput(
            f"programs: unknown program(s) {', '.join(unknown)}",
            details=[field_error("programs", f"unknown program {p!r}") for p in unknown],
        )
    chosen = [
        plan
        for plan in compiled.programs
        if plan.program.period == kind and (programs is None or plan.program.id in programs)
    ]
    if not chosen:
        raise InvalidInput(
            f"programs: none of the selected programs is evaluated per {kind}",
            details=[field_error("programs", f"no program evaluated per {kind}")],
        )
    if len(chosen) > 62:
        raise InvalidInput("programs: at most 62 per run", details=[field_error("programs", ">62")])
    return chosen


def _require_in_force(compiled: CompiledPack, period: Period, plans: Sequence[ProgramPlan]) -> None:
    active = compiled.active(period)
    if not any(active.get(plan.program.id) for plan in plans):
        reason = f"no program version of pack {compiled.pack.id} is in force in {period}"
        raise InvalidInput(f"period: {reason}", details=[field_error("period", reason)])


# --- read models ---------------------------------------------------------------------------


def _run_read(run: RulesRun) -> RunRead:
    return RunRead(
        id=run.id,
        pack_id=run.pack_id,
        pack_hash=run.pack_hash,
        period=run.period,
        months=run.months,
        programs=run.programs,
        status=run.status,  # type: ignore[arg-type]
        error=run.error,
        families=run.families,
        persons=run.persons,
        decisions=run.decisions,
        eligible=run.eligible,
        seconds=RunTimings(
            read=run.read_seconds,
            compile=run.compile_seconds,
            evaluate=run.evaluate_seconds,
            write=run.write_seconds,
        ),
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


def _parameters(meta: RulesRunProgram) -> dict[str, Any]:
    return {name: _decode_param(kind, text) for name, kind, text in meta.parameters}


def _decode_param(kind: str, text: Any) -> Any:
    if kind == "table":
        return {int(k): codec.parse_value(t, tk) for k, tk, t in text}
    return codec.parse_value(text, kind)


def _encode_param(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return ["table", [[str(k), *codec.render_value(v)] for k, v in value.items()]]
    return codec.render_value(value)


def _plain(value: Any) -> Any:
    """A JSON-safe value, as the engine's Decision.as_dict renders it."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, Decimal):
        return plain_value(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def get_run(session: Session, *, run_id: int) -> RunDetail:
    """A run with its summary by program and by region."""
    run = repository.run_by_id(session, run_id)
    if run is None:
        raise RunNotFound(f"no rules run with id {run_id}")
    programs = repository.run_programs(session, run_id)
    regions = repository.run_regions(session, run_id)
    return RunDetail(
        **_run_read(run).model_dump(),
        by_program=[
            ProgramSummaryRead(
                period=p.period,
                program_id=p.program_id,
                entity=p.entity,
                version=p.version,
                citation=p.citation,
                parameters={k: _plain(v) for k, v in _parameters(p).items()},
                evaluated=p.evaluated,
                eligible=p.eligible,
                amount_minor=p.amount_minor,
            )
            for p in programs
        ],
        by_region=[
            RegionSummaryRead(
                period=r.period,
                program_id=r.program_id,
                region_kato=r.region_kato,
                evaluated=r.evaluated,
                eligible=r.eligible,
                amount_minor=r.amount_minor,
            )
            for r in regions
        ],
    )


def read_run(session: Session, *, run_id: int) -> RunRead:
    """A run's state and counts (without its summaries)."""
    run = repository.run_by_id(session, run_id)
    if run is None:
        raise RunNotFound(f"no rules run with id {run_id}")
    return _run_read(run)


def run_pack(session: Session, *, run_id: int) -> LoadedPack:
    """The compiled pack a run was made with (read from its path)."""
    run = repository.run_by_id(session, run_id)
    if run is None:
        raise RunNotFound(f"no rules run with id {run_id}")
    return loaded_pack(run.pack_path)


def list_runs(session: Session, *, page: int, size: int) -> RunPage:
    rows, total = repository.list_runs(session, offset=(page - 1) * size, limit=size)
    return RunPage(items=[_run_read(r) for r in rows], page=page, size=size, total=total)


def latest_run(session: Session, *, period: str, pack_id: str | None = None) -> RunRead | None:
    """The newest succeeded run whose first period is `period` (None if there is none)."""
    parse_period(period)
    run = repository.latest_run(session, period=period, pack_id=pack_id)
    return _run_read(run) if run is not None else None


# --- stored runs ---------------------------------------------------------------------------


def _check_request(
    *, period: str, months: int, programs: Sequence[str] | None, pack_path: str | Path | None
) -> tuple[Period, LoadedPack]:
    first = parse_period(period)
    periods = _periods(first, months)
    pack = loaded_pack(pack_path)
    plans = _select_plans(pack.compiled, first.kind, programs)
    for when in periods:
        _require_in_force(pack.compiled, when, plans)
    return first, pack


def create_run(
    session: Session,
    *,
    period: str,
    months: int = 1,
    programs: Sequence[str] | None = None,
    pack_path: str | Path | None = None,
    requested_by: str | None = None,
) -> RunRead:
    """Check the request and record a queued run (executed by `execute_run`)."""
    first, pack = _check_request(
        period=period, months=months, programs=programs, pack_path=pack_path
    )
    run = RulesRun(
        pack_id=pack.compiled.pack.id,
        pack_path=pack.path,
        pack_hash=pack.content_hash,
        period=str(first),
        months=months,
        programs=list(programs) if programs is not None else None,
        status="queued",
        requested_by=requested_by,
    )
    repository.add_all(session, [run])
    return _run_read(run)


# What a run reads: the registry over its periods (each period's families taken from it), or
# (person, fact) tables given by the caller and used for every period.
Snapshot = tuple[pa.Table, pa.Table] | registry_snapshot.RegistryHistory


def session_snapshot(
    session: Session, *, period: str, months: int = 1
) -> registry_snapshot.RegistryHistory:
    """The whole registry over a run's periods read through the session (sees its
    transaction; for small stores)."""
    periods = _periods(parse_period(period), months)
    return registry_snapshot.registry_history_in_session(session, periods[0], periods[-1])


def _read_registry_and_links(
    session: Session, periods: Sequence[Period]
) -> tuple[Snapshot, pa.Table]:
    """The committed registry over the run's periods and its parent-child links, read at once
    over ADBC (the session's rows would cost seconds)."""
    history = registry_snapshot.registry_history(
        _bind_url(session), periods[0], periods[-1], links=True
    )
    assert history.links is not None  # noqa: S101 (asked for above)
    return history, history.links


def _as_of(source: Snapshot, when: Period) -> tuple[pa.Table, pa.Table]:
    if isinstance(source, registry_snapshot.RegistryHistory):
        return source.as_of(when)
    return source


def _same_families(a: pa.Table, b: pa.Table) -> bool:
    """Whether two person tables of one history give everyone the same family and role."""
    return all(a.column(c).equals(b.column(c)) for c in ("person_id", "family_id", "role"))


def _heads(engine: Engine, person: pa.Table) -> pa.Table:
    """Each family's recipient of its family decisions: the head; the deceased stay in their
    family's record, so after the head's death the surviving spouse, else the first living
    member (else, as before, the first member)."""
    engine.con.register("rules_person_snapshot", person)
    try:
        return engine.con.sql(
            "SELECT coalesce(family_id, -person_id) AS fkey,"
            " coalesce(min(person_id) FILTER (WHERE role = 'head' AND death_on IS NULL),"
            " min(person_id) FILTER (WHERE role = 'spouse' AND death_on IS NULL),"
            " min(person_id) FILTER (WHERE death_on IS NULL), min(person_id))"
            " AS head_person_id FROM rules_person_snapshot GROUP BY 1 ORDER BY 1"
        ).to_arrow_table()
    finally:
        engine.con.unregister("rules_person_snapshot")


def _bind_url(session: Session) -> str:
    bind = session.get_bind()
    engine = bind if isinstance(bind, SAEngine) else bind.engine
    return engine.url.render_as_string(hide_password=False)


def execute_run(
    session: Session,
    *,
    run_id: int,
    snapshot: Snapshot | None = None,
    progress: Progress | None = None,
    threads: int | None = None,
    read_before: float = 0.0,
    chunk_families: int | None = None,
) -> RunRead:
    """Evaluate a queued run and store its results (the caller commits; on an error the
    caller rolls back and may `mark_failed`). Outcome rows are made and written
    `chunk_families` families at a time (default `_CHUNK_FAMILIES`)."""
    return _execute(
        session,
        run_id=run_id,
        holder=[snapshot] if snapshot is not None else [],
        progress=progress,
        threads=threads,
        read_before=read_before,
        chunk_families=chunk_families,
    )


def _execute(
    session: Session,
    *,
    run_id: int,
    holder: list[Snapshot],
    progress: Progress | None,
    threads: int | None,
    read_before: float,
    chunk_families: int | None = None,
    links: pa.Table | None = None,
) -> RunRead:
    # The snapshot comes in a holder so that it is freed once DuckDB holds its own copy.
    run = repository.run_by_id(session, run_id)
    if run is None:
        raise RunNotFound(f"no rules run with id {run_id}")
    tick = progress or (lambda _stage, _done, _total: None)
    run.status = "running"
    run.started_at = utcnow()
    pack = loaded_pack(run.pack_path)
    compile_s = pack.compile_seconds
    first = Period.parse(run.period)
    periods = _periods(first, run.months)
    plans = _select_plans(pack.compiled, first.kind, run.programs)
    tick("read", 0, 1)
    t0 = time.perf_counter()
    # Read before this session writes: on SQLite a reader on another connection while this
    # one holds the write lock can fail the commit ("locking protocol").
    if holder:
        source = holder.pop()
        link = links if links is not None else registry_snapshot.registry_links_in_session(session)
    else:
        source, link = _read_registry_and_links(session, periods)
    # The families' well-being (scoring runs valid for the periods), read once, as facts.
    scored = wellbeing_inputs.rule_input(session, periods, compiled=pack.compiled)
    session.flush()
    engine = Engine(pack.compiled, threads=threads)
    try:
        # Each period is decided with its own families (the registry as of the period); the
        # engine is loaded again only when a period's families differ from the last one's.
        person, fact = _as_of(source, periods[0])
        engine.load(person, scored.with_facts(person, fact), link, keep_tables=False)
        heads = _heads(engine, person)
        read_s = time.perf_counter() - t0 + read_before
        tick("read", 1, 1)
        run.persons = person.num_rows
        # Given tables serve every period, and a run of one period reads nothing more:
        # nothing to keep once DuckDB holds its copy (at 1 M families, over half a GB).
        history = (
            source
            if isinstance(source, registry_snapshot.RegistryHistory) and len(periods) > 1
            else None
        )
        loaded = person if history is not None else None  # to compare the next period's with
        if history is None:
            link = None
        del source, person, fact
        evaluate_s = 0.0
        totals = {"families": 0, "decisions": 0, "eligible": 0}
        summaries: list[Any] = []
        # Outcome rows are written on a second thread while the next families are made
        # (DuckDB, Arrow and the drivers release the GIL), a chunk of families at a time:
        # at most `_WRITE_BACKLOG` bytes wait, so a month's rows are never all in memory.
        # The writer has the session's connection until `close()`; the summaries are
        # added after it.
        writer = _Writer(session.connection())
        try:
            for index, when in enumerate(periods):
                tick("evaluate", index, len(periods))
                if index > 0 and history is not None:
                    person, fact = history.as_of(when)
                    if loaded is None or not _same_families(person, loaded):
                        t1 = time.perf_counter()
                        engine.load(
                            person, scored.with_facts(person, fact), link, keep_tables=False
                        )
                        heads = _heads(engine, person)
                        read_s += time.perf_counter() - t1
                    loaded = person
                    del person, fact
                stats = _run_period(
                    engine,
                    run.id,
                    when,
                    plans,
                    heads,
                    writer,
                    chunk_families or _CHUNK_FAMILIES,
                    on_chunk=lambda done, total: tick("write", done, total),
                )
                compile_s += stats.compile_s
                evaluate_s += stats.evaluate_s
                totals["families"] = stats.families
                totals["decisions"] += stats.decisions
                totals["eligible"] += stats.eligible
                summaries += stats.rows
                del stats
                tick("evaluate", index + 1, len(periods))
        except BaseException:
            writer.abort()
            raise
        write_s = writer.close()
        repository.add_all(session, summaries)
        repository.analyze_outcomes(session)
    finally:
        engine.close()
    run.families = totals["families"]
    run.decisions = totals["decisions"]
    run.eligible = totals["eligible"]
    run.read_seconds = round(read_s, 3)
    run.compile_seconds = round(compile_s, 3)
    run.evaluate_seconds = round(evaluate_s, 3)
    run.write_seconds = round(write_s, 3)
    run.status = "succeeded"
    run.finished_at = utcnow()
    session.flush()
    return _run_read(run)


def check_run_request(
    *,
    period: str,
    months: int = 1,
    programs: Sequence[str] | None = None,
    pack_path: str | Path | None = None,
) -> None:
    """InvalidInput unless a run of these programs over these periods can be made (the checks
    `create_run` makes, without recording anything)."""
    _check_request(period=period, months=months, programs=programs, pack_path=pack_path)


def mark_failed(session: Session, *, run_id: int, error: str, status: str = "failed") -> None:
    """Record that a run failed or was cancelled (after the caller rolled its work back)."""
    run = repository.run_by_id(session, run_id)
    if run is None:
        return
    repository.delete_outcomes(session, run_id)
    run.status = status
    run.error = error[:2000]
    run.finished_at = utcnow()
    session.flush()


def fail_unowned_runs(session: Session, *, owned: set[int]) -> list[int]:
    """Mark failed every queued or running run not in `owned` (the runs of active jobs): a
    run is committed queued only with its job, and a direct run commits once, finished, so
    such a run was left by a process that stopped (before runs were jobs: a restart)."""
    left = [run_id for run_id in repository.unfinished_run_ids(session) if run_id not in owned]
    for run_id in left:
        mark_failed(session, run_id=run_id, error="interrupted: the process running it stopped")
    return left


def requeue_run(session: Session, *, run_id: int) -> None:
    """Make a failed or cancelled run queued again, its partial results gone (a resumed job
    runs it again under the same id)."""
    run = repository.run_by_id(session, run_id)
    if run is None:
        raise RunNotFound(f"no rules run with id {run_id}")
    repository.delete_outcomes(session, run_id)
    run.status = "queued"
    run.error = None
    run.started_at = run.finished_at = None
    run.families = run.persons = run.decisions = run.eligible = 0
    session.flush()


def run_rules(
    session: Session,
    *,
    period: str,
    months: int = 1,
    programs: Sequence[str] | None = None,
    pack_path: str | Path | None = None,
    snapshot: Snapshot | None = None,
    progress: Progress | None = None,
    requested_by: str | None = None,
    threads: int | None = None,
    chunk_families: int | None = None,
) -> RunRead:
    """Evaluate the pack over the whole registry for the period(s) and store every decision.

    Each period is decided with the registry as of that period (its families, the deceased
    in their last family, its facts). The registry is read (committed data, over ADBC)
    before this session writes anything; on SQLite, commit your own writes before calling,
    or pass `snapshot` (`session_snapshot`; (person, fact) tables are used for every
    period). Outcome rows are made and written `chunk_families` families at a time (default
    `_CHUNK_FAMILIES`).
    """
    first, _ = _check_request(period=period, months=months, programs=programs, pack_path=pack_path)
    read_before = 0.0
    links: pa.Table | None = None
    if snapshot is None:
        t0 = time.perf_counter()
        snapshot, links = _read_registry_and_links(session, _periods(first, months))
        read_before = time.perf_counter() - t0
    run = create_run(
        session,
        period=period,
        months=months,
        programs=programs,
        pack_path=pack_path,
        requested_by=requested_by,
    )
    holder = [snapshot]
    del snapshot
    return _execute(
        session,
        run_id=run.id,
        holder=holder,
        progress=progress,
        threads=threads,
        read_before=read_before,
        chunk_families=chunk_families,
        links=links,
    )


@dataclass
class _PeriodStats:
    families: int
    decisions: int
    eligible: int
    compile_s: float
    evaluate_s: float  # without the time spent waiting for the writer
    rows: list[Any]  # the per-program and per-region summaries, to add


# Families per chunk of outcome rows (about 420 bytes a family with packs/kz): large enough
# that the per-chunk statements cost little, small enough to keep the peak low.
_CHUNK_FAMILIES = 65_536
# Outcome bytes made but not yet written, at most (plus one chunk): enough for the writer to
# go on while the next month is evaluated (about 3 s of writing on SQLite), so writing
# overlaps as it did when a whole month waited, for a fraction of the memory.
_WRITE_BACKLOG = 256 << 20


class _Writer:
    """Writes chunks of outcome rows in order on a second thread; `put` waits while the
    chunks not yet written hold `_WRITE_BACKLOG` bytes, and each chunk is freed once written."""

    def __init__(self, connection: Connection, backlog: int = _WRITE_BACKLOG) -> None:
        self._connection = connection
        self._backlog = backlog
        self._changed = threading.Condition()
        self._chunks: deque[pa.Table | None] = deque()
        self._queued = 0  # bytes of the chunks not yet written (the one being written too)
        self._ended = False
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="rules-write")
        self._done = self._pool.submit(self._loop)

    def _loop(self) -> float:
        seconds = 0.0
        try:
            while True:
                with self._changed:
                    while not self._chunks:
                        self._changed.wait()
                    table = self._chunks.popleft()
                if table is None:
                    return seconds
                started = time.perf_counter()
                repository.write_outcomes(self._connection, table)
                seconds += time.perf_counter() - started
                with self._changed:
                    self._queued -= table.nbytes
                    del table
                    self._changed.notify_all()
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def put(self, table: pa.Table) -> float:
        """Queue a chunk; the seconds spent waiting for room (a failed writer raises)."""
        started = time.perf_counter()
        with self._changed:
            while self._queued >= self._backlog and not self._ended:
                self._changed.wait()
            if self._ended:
                self._done.result()  # raises the writer's error
                raise RuntimeError("the outcome writer stopped")
            self._chunks.append(table)
            self._queued += table.nbytes
            self._changed.notify_all()
        return time.perf_counter() - started

    def close(self) -> float:
        """Wait until every queued chunk is written; the seconds spent writing (the writer's
        error is raised)."""
        with self._changed:
            self._chunks.append(None)
            self._changed.notify_all()
        try:
            return self._done.result()
        finally:
            self._pool.shutdown()

    def abort(self) -> None:
        """After an error on this side: drop the queued chunks and wait for the chunk being
        written, so that the caller can roll back on the connection."""
        with self._changed:
            self._chunks.clear()
            self._chunks.append(None)
            self._changed.notify_all()
        self._pool.shutdown()


@dataclass
class _Slot:
    plan: ProgramPlan
    vp: VersionPlan | None
    position: int
    conditions: list[tuple[str, str]]  # name, column
    variables: list[tuple[str, str, str]]  # name, column, codec type


def _columns(engine: Engine, relation: str) -> dict[str, str]:
    rel = engine.con.sql(f"SELECT * FROM {relation} LIMIT 0")
    return {name: str(kind) for name, kind in zip(rel.columns, rel.types, strict=True)}


def _slot(
    plan: ProgramPlan, vp: VersionPlan | None, position: int, types: Mapping[str, str]
) -> _Slot:
    person_level = plan.program.entity == "person"
    conditions = [(c.name, c.column) for c in (vp.conditions if vp else [])]
    variables: list[tuple[str, str, str]] = []
    for symbol in vp.used if vp else []:
        name = f"family.{symbol.name}" if person_level and symbol.level == "family" else symbol.name
        if symbol.column in types:
            variables.append((name, symbol.column, codec.value_type(types[symbol.column])))
        else:
            variables.append((name, "NULL", "str"))
    return _Slot(plan, vp, position, conditions, variables)


def _segments(slots: Sequence[_Slot]) -> list[str]:
    """The parts of the slots' segments, separated by "|" (see `codec.segment_parts`)."""
    parts: list[str] = []
    for slot in slots:
        if parts:
            parts.append("'|'")
        if slot.vp is None:
            parts.append("'0='")
            continue
        parts += codec.segment_parts(
            slot.plan.eligible_column,
            slot.plan.amount_column,
            [column for _, column in slot.conditions],
            [(column, kind) for _, column, kind in slot.variables],
        )
    return parts


def _mask(slots: Sequence[_Slot]) -> str:
    terms = [
        f"(CASE WHEN {s.plan.eligible_column} THEN {1 << s.position} ELSE 0 END)"
        for s in slots
        if s.vp is not None
    ]
    return "(" + " + ".join(terms) + ")::BIGINT" if terms else "0::BIGINT"


_REGION = "substr(coalesce(CAST(region AS VARCHAR), ''), 1, 2) || '0000000'"


def _sorted(table: pa.Table, key: str) -> pa.Table:
    return table.take(np.argsort(table.column(key).to_numpy(), kind="stable"))


def _outcome_rows(
    run_id: int, when: Period, family: pa.Table, holder: list[pa.Table | None], heads: pa.Table
) -> pa.Table:
    """A chunk's `rules_outcome` rows in family-key order: each family's segments, "#",
    its members' lines joined by ";" in person order (see `codec`), assembled with Arrow
    kernels (a DuckDB `string_agg ... GROUP BY` took 7 s and 2 GB at 1 M families). The
    members table comes in a holder, so that it is freed once its lines are sorted."""
    members = holder.pop()
    keys = family.column("fkey").to_numpy()
    count = len(keys)
    mask = family.column("mask").to_numpy().copy()
    if members is not None and members.num_rows:
        member_keys = members.column("fkey").to_numpy()
        order = np.lexsort((members.column("person_id").to_numpy(), member_keys))
        member_keys = member_keys[order]
        at = np.minimum(np.searchsorted(keys, member_keys), max(count - 1, 0))
        known = keys[at] == member_keys if count else np.zeros(len(order), bool)
        if not known.all():  # members of no family row (none in a consistent registry)
            order, member_keys, at = order[known], member_keys[known], at[known]
        lines = members.column("seg").take(order).combine_chunks()
        member_mask = members.column("mask").to_numpy()[order]
        del members
        # Each family's members are one run of the sorted lines: list offsets on the family
        # axis (an empty list for a family without members) join them without a gather.
        offsets = np.r_[np.searchsorted(member_keys, keys), len(member_keys)]
        person_part = pc.binary_join(
            pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), lines), ";"
        )
        del lines
        if len(at):
            starts = np.flatnonzero(np.r_[True, at[1:] != at[:-1]])
            mask[at[starts]] |= np.bitwise_or.reduceat(member_mask, starts)
    else:
        person_part = pa.array([""] * count, pa.string())
    head_keys = heads.column("fkey").to_numpy()
    at = np.minimum(np.searchsorted(head_keys, keys), max(len(head_keys) - 1, 0))
    head = heads.column("head_person_id").to_numpy()[at] if len(head_keys) else np.zeros(count)
    has_head = head_keys[at] == keys if len(head_keys) else np.zeros(count, bool)
    return pa.table(
        {
            "run_id": pa.array(np.full(count, run_id, dtype=np.int64)),
            "period": pa.repeat(pa.scalar(str(when)), count)
            if count
            else pa.array([], pa.string()),
            "family_key": pa.array(keys, pa.int64()),
            "family_id": family.column("family_id"),
            "head_person_id": pa.array(head.astype(np.int64), mask=~has_head),
            "region_kato": family.column("region"),
            "eligible_mask": pa.array(mask.astype(np.int64)),
            "payload": pc.binary_join_element_wise(family.column("pay"), person_part, "#"),
        }
    )


def _read_columns(table: pa.Table, slots: Sequence[_Slot], keys: Sequence[str]) -> pa.Table:
    """The columns of a result the slots' segments and masks read, and the keys (no copy)."""
    wanted = set(keys)
    for slot in slots:
        if slot.vp is not None:
            wanted.update((slot.plan.eligible_column, slot.plan.amount_column))
            wanted.update(column for _, column in slot.conditions)
            wanted.update(column for _, column, _ in slot.variables)
    return table.select([name for name in table.column_names if name in wanted])


def _rows_of(con: Any, table: pa.Table, rows: np.ndarray, sql: str) -> pa.Table:
    """`sql` over the given rows of `table` (registered as rules_chunk)."""
    con.register("rules_chunk", table.take(pa.array(rows)))
    try:
        return con.sql(sql).to_arrow_table()
    finally:
        con.unregister("rules_chunk")


def _run_period(
    engine: Engine,
    run_id: int,
    when: Period,
    plans: Sequence[ProgramPlan],
    heads: pa.Table,
    writer: _Writer,
    chunk_families: int,
    on_chunk: Callable[[int, int], None] | None = None,
) -> _PeriodStats:
    """Evaluate one period and hand its outcome rows to the writer a chunk at a time;
    `on_chunk(done, total)` after each chunk (families), where a job may stop."""
    t0 = time.perf_counter()
    waited = 0.0
    # The person result keeps the values the explanations show, so packing reads one table
    # (joining `person_view` would recompute every person variable).
    shown = {
        symbol.column
        for plan in plans
        if plan.program.entity == "person"
        for vp in plan.versions
        for symbol in vp.used
    }
    result: BatchResult = engine.evaluate(when, person_extra=["region", *sorted(shown)])
    try:
        compile_s = result.timings.get("bind", 0.0)
        # The summaries and the outcome rows read only the results: free the person base.
        result.release("pb")
        con = engine.con
        fr = result.names["fr"]
        fr_types = _columns(engine, fr)
        pv = None
        pv_types: dict[str, str] = {}
        if "pr" in result.names:
            pv = result.names["pr"]
            pv_types = _columns(engine, pv)
        family_slots: list[_Slot] = []
        person_slots: list[_Slot] = []
        for position, plan in enumerate(plans):
            vp = result.bound.active.get(plan.program.id)
            if plan.program.entity == "family":
                family_slots.append(_slot(plan, vp, position, fr_types))
            else:
                if pv is None:
                    vp = None
                person_slots.append(_slot(plan, vp, position, pv_types))
        people = pv is not None and any(s.vp is not None for s in person_slots)
        # Region summaries and counts, computed where the data is.
        metas: list[RulesRunProgram] = []
        regions: list[RulesRunRegion] = []
        eligible_total = decisions_total = 0
        for slots, source, guard in (
            (family_slots, fr, "f_family_size > 0"),
            (person_slots, pv if people else None, "is_member"),
        ):
            live = [s for s in slots if s.vp is not None]
            rows: list[tuple[Any, ...]] = []
            if live and source is not None:
                aggs = ", ".join(
                    f"count(*) FILTER (WHERE {s.plan.eligible_column}),"
                    f" coalesce(sum({s.plan.amount_column}) FILTER (WHERE"
                    f" {s.plan.eligible_column}), 0)"
                    for s in live
                )
                rows = con.execute(
                    f"SELECT {_REGION} AS zregion, count(*), {aggs} FROM {source}"
                    f" WHERE {guard} GROUP BY zregion ORDER BY zregion"
                ).fetchall()
            for slot in slots:
                evaluated = eligible = amount = 0
                if slot in live:
                    i = live.index(slot)
                    for row in rows:
                        region_eligible, region_amount = int(row[2 + 2 * i]), int(row[3 + 2 * i])
                        evaluated += int(row[1])
                        eligible += region_eligible
                        amount += region_amount
                        regions.append(
                            RulesRunRegion(
                                run_id=run_id,
                                period=str(when),
                                program_id=slot.plan.program.id,
                                region_kato=str(row[0]),
                                evaluated=int(row[1]),
                                eligible=region_eligible,
                                amount_minor=region_amount,
                            )
                        )
                decisions_total += evaluated
                eligible_total += eligible
                metas.append(
                    _meta(engine.compiled, result, run_id, when, slot, evaluated, eligible, amount)
                )
        # The outcome rows, `chunk_families` families at a time in family-key order, each
        # chunk handed to the writer as soon as it is made: a month's segment texts (about
        # 700 MB at 1 M families) and rows (about 420 MB) are never all in memory. A chunk's
        # rows are taken from the results by position (a filter per chunk made DuckDB scan
        # the whole result each time: 16 s more a month at 1 M families).
        family_sql = (
            f"SELECT fkey, family_id, CAST(region AS VARCHAR) AS region,"
            f" {_mask(family_slots)} AS mask,"
            f" {codec.concat_sql(_segments(family_slots))} AS pay FROM rules_chunk"
        )
        family_table = _read_columns(
            result.tables["fr"], family_slots, ["fkey", "family_id", "region"]
        )
        family_keys = family_table.column("fkey").to_numpy()
        family_order = np.argsort(family_keys, kind="stable")
        family_keys = family_keys[family_order]
        if people:
            segs = codec.concat_sql(["CAST(person_id AS VARCHAR)", "':'", *_segments(person_slots)])
            member_sql = (
                f"SELECT fkey, person_id, {_mask(person_slots)} AS mask, {segs} AS seg"
                " FROM rules_chunk"
            )
            member_table = _read_columns(result.tables["pr"], person_slots, ["fkey", "person_id"])
            member_rows = np.flatnonzero(
                pc.fill_null(result.tables["pr"].column("is_member"), False).to_numpy()
            )
            member_keys = member_table.column("fkey").to_numpy()[member_rows]
            by_key = np.lexsort(
                (member_table.column("person_id").to_numpy()[member_rows], member_keys)
            )
            member_rows, member_keys = member_rows[by_key], member_keys[by_key]
        count = len(family_keys)
        tally: dict[tuple[str, int], int] = {}
        for start in range(0, count, chunk_families):
            stop = min(start + chunk_families, count)
            family = _sorted(
                _rows_of(con, family_table, family_order[start:stop], family_sql), "fkey"
            )
            members: pa.Table | None = None
            if people:
                # This chunk's members: those whose key falls between its first key and the
                # next chunk's (a member of no family row is dropped in `_outcome_rows`).
                low = np.searchsorted(member_keys, family_keys[start]) if start else 0
                high = (
                    np.searchsorted(member_keys, family_keys[stop])
                    if stop < count
                    else len(member_keys)
                )
                members = _rows_of(con, member_table, member_rows[low:high], member_sql)
            outcomes = _outcome_rows(run_id, when, family, [members], heads)
            del family, members
            _tally(tally, outcomes)
            waited += writer.put(outcomes)
            del outcomes
            if on_chunk is not None:
                on_chunk(stop, count)
        families = count
        evaluate_s = time.perf_counter() - t0 - compile_s - waited
    finally:
        result.drop()
    return _PeriodStats(
        families,
        decisions_total,
        eligible_total,
        compile_s,
        evaluate_s,
        [*metas, *regions, *_count_rows(run_id, str(when), tally)],
    )


def _tally(tally: dict[tuple[str, int], int], outcomes: pa.Table) -> None:
    """Add a chunk's outcome rows to its period's families by (region, eligible mask)."""
    grouped = (
        pa.table(
            {
                "region": pc.fill_null(outcomes.column("region_kato"), ""),
                "mask": outcomes.column("eligible_mask"),
            }
        )
        .group_by(["region", "mask"])
        .aggregate([([], "count_all")])
    )
    for region, mask, families in zip(
        grouped.column("region").to_pylist(),
        grouped.column("mask").to_pylist(),
        grouped.column("count_all").to_pylist(),
        strict=True,
    ):
        tally[region, mask] = tally.get((region, mask), 0) + families


def _count_rows(run_id: int, period: str, tally: dict[tuple[str, int], int]) -> list[Any]:
    """A period's `rules_run_count` rows from its tally: per region, every family (position
    -1) and the families with each bit of the mask set."""
    counts: dict[tuple[str, int], int] = {}
    for (region, mask), families in tally.items():
        counts[region, -1] = counts.get((region, -1), 0) + families
        bits = mask & 0xFFFF_FFFF_FFFF_FFFF  # the stored mask is a signed 64-bit integer
        position = 0
        while bits:
            if bits & 1:
                counts[region, position] = counts.get((region, position), 0) + families
            bits >>= 1
            position += 1
    return [
        RulesRunCount(
            run_id=run_id, period=period, position=position, region_kato=region, families=n
        )
        for (region, position), n in sorted(counts.items())
    ]


def _meta(
    compiled: CompiledPack,
    result: BatchResult,
    run_id: int,
    when: Period,
    slot: _Slot,
    evaluated: int,
    eligible: int,
    amount: int,
) -> RulesRunProgram:
    program = slot.plan.program
    vp = slot.vp
    parameters: list[list[Any]] = []
    for symbol in vp.params if vp else []:
        value = result.bound.param_values.get(symbol.key)
        parameters.append([symbol.name, *_encode_param(value)])
    citation = vp.version.citation if vp is not None and vp.version.citation else program.citation
    return RulesRunProgram(
        run_id=run_id,
        period=str(when),
        program_id=program.id,
        position=slot.position,
        entity=program.entity,
        version=vp.version.label if vp else None,
        citation=citation,
        legal_basis=dict(program.legal_basis),
        parameters=parameters,
        conditions=[name for name, _ in slot.conditions],
        variables=[[name, kind] for name, _, kind in slot.variables],
        evaluated=evaluated,
        eligible=eligible,
        amount_minor=amount,
    )


# --- stored decisions ----------------------------------------------------------------------


@dataclass
class _Layout:
    """Where each program's segments sit in a period's payloads."""

    metas: dict[str, RulesRunProgram]
    family: list[RulesRunProgram]
    person: list[RulesRunProgram]


def _layout(session: Session, run_id: int, period: str) -> _Layout:
    metas = repository.run_programs(session, run_id, period=period)
    return _Layout(
        {m.program_id: m for m in metas},
        [m for m in metas if m.entity == "family"],
        [m for m in metas if m.entity == "person"],
    )


def _stored_run(session: Session, run_id: int, period: str | None) -> tuple[RulesRun, str]:
    run = repository.run_by_id(session, run_id)
    if run is None:
        raise RunNotFound(f"no rules run with id {run_id}")
    when = str(parse_period(period)) if period is not None else run.period
    return run, when


def _decode(
    run_id: int,
    period: str,
    layout: _Layout,
    family_key: int,
    family_id: int | None,
    head: int | None,
    region: str | None,
    payload: str,
    *,
    program_id: str | None = None,
    eligible: bool | None = None,
    person_id: int | None = None,
) -> list[tuple[StoredDecision, codec.Segment]]:
    """The decisions packed in one outcome row, filtered, each with its typed values."""
    family_part, members = codec.split_payload(payload)

    def make(meta: RulesRunProgram, text: str, entity_id: int, recipient: int | None) -> None:
        seg = codec.parse_segment(text, meta.conditions, meta.variables)
        if eligible is not None and seg.eligible != eligible:
            return
        out.append(
            (
                StoredDecision(
                    run_id=run_id,
                    period=period,
                    program_id=meta.program_id,
                    entity_type="family" if meta.entity == "family" else "person",
                    entity_id=entity_id,
                    family_key=family_key,
                    family_id=family_id,
                    person_id=recipient,
                    region_kato=region,
                    eligible=seg.eligible,
                    amount_minor=seg.amount_minor,
                    version=meta.version,
                    conditions=seg.conditions,
                    variables={k: _plain(v) for k, v in seg.variables.items()},
                ),
                seg,
            )
        )

    out: list[tuple[StoredDecision, codec.Segment]] = []
    for slot, meta in enumerate(layout.family):
        if program_id is not None and meta.program_id != program_id:
            continue
        if slot < len(family_part) and person_id is None:
            make(meta, family_part[slot], family_key, head)
    for member, segments in members:
        if person_id is not None and member != person_id:
            continue
        for slot, meta in enumerate(layout.person):
            if program_id is not None and meta.program_id != program_id:
                continue
            if slot < len(segments):
                make(meta, segments[slot], member, member)
    return out


@dataclass(frozen=True)
class ConditionCounts:
    """How many of a program's evaluated entities met each of its conditions in a stored run
    (why no one may be eligible: the condition fewest met, and whether anyone met all)."""

    program_id: str
    evaluated: int
    met: dict[str, int]
    all_met: int


def condition_counts(
    session: Session, *, run_id: int, program_ids: Sequence[str], period: str | None = None
) -> dict[str, ConditionCounts]:
    """Count, over the run's stored decisions of some programs in one period, who met each
    named condition (one pass over the period's outcomes for all of them)."""
    run, when = _stored_run(session, run_id, period)
    layout = _layout(session, run.id, when)
    unknown = [p for p in program_ids if p not in layout.metas]
    if unknown:
        raise RunNotFound(f"run {run_id} has no program {unknown[0]!r} in {when}")
    met = {p: dict.fromkeys(layout.metas[p].conditions, 0) for p in program_ids}
    evaluated = dict.fromkeys(program_ids, 0)
    all_met = dict.fromkeys(program_ids, 0)
    for key, family_id, head, region, payload in repository.iter_outcomes(
        session, run_id=run.id, period=when, bit=None
    ):
        for decision, segment in _decode(
            run.id, when, layout, key, family_id, head, region, payload
        ):
            counts = met.get(decision.program_id)
            if counts is None:
                continue
            evaluated[decision.program_id] += 1
            held = [name for name, value in segment.conditions.items() if value]
            for name in held:
                counts[name] += 1
            all_met[decision.program_id] += len(held) == len(counts)
    return {p: ConditionCounts(p, evaluated[p], met[p], all_met[p]) for p in program_ids}


def eligible_decisions(
    session: Session, *, run_id: int, program_id: str, period: str | None = None
) -> Iterator[StoredDecision]:
    """Every eligible decision of one program in a stored run (first period by default),
    streamed in family order: the recipient, region, amount, version and condition values."""
    run, when = _stored_run(session, run_id, period)
    layout = _layout(session, run.id, when)
    meta = layout.metas.get(program_id)
    if meta is None:
        raise InvalidInput(
            f"program: {program_id!r} is not in run {run_id} for {when}",
            details=[field_error("program", "not evaluated in this run and period")],
        )
    for key, family_id, head, region, payload in repository.iter_outcomes(
        session, run_id=run.id, period=when, bit=meta.position
    ):
        for decision, _ in _decode(
            run.id,
            when,
            layout,
            key,
            family_id,
            head,
            region,
            payload,
            program_id=program_id,
            eligible=True,
        ):
            yield decision


def _region_prefix(region: str | None) -> str | None:
    if region is None:
        return None
    if not (region.isascii() and region.isdigit() and 2 <= len(region) <= 9):
        raise InvalidInput(
            "region: must be 2 to 9 digits of a KATO code",
            details=[field_error("region", "must be 2 to 9 digits of a KATO code")],
        )
    return region.rstrip("0") if len(region) == 9 and region.rstrip("0") else region


def list_decisions(
    session: Session,
    *,
    run_id: int,
    actor: Actor,
    purpose: Purpose,
    program_id: str | None = None,
    eligible: bool | None = None,
    region: str | None = None,
    period: str | None = None,
    page: int = 1,
    size: int = 50,
) -> DecisionPage:
    """Stored decisions of a run, filtered by program, eligibility and region (KATO prefix);
    pages count families. Audited: each decision holds the data of its family's members."""
    run, when = _stored_run(session, run_id, period)
    layout = _layout(session, run.id, when)
    bit: int | None = None
    if program_id is not None:
        meta = layout.metas.get(program_id)
        if meta is None:
            raise InvalidInput(
                f"program: {program_id!r} is not in run {run_id} for {when}",
                details=[field_error("program", "not evaluated in this run and period")],
            )
        bit = meta.position if eligible else None
    rows, total = repository.outcomes_page(
        session,
        run_id=run.id,
        period=when,
        bit=bit,
        region_prefix=_region_prefix(region),
        offset=(page - 1) * size,
        limit=size,
    )
    items: list[StoredDecision] = []
    for row in rows:
        items.extend(
            decision
            for decision, _ in _decode(
                run.id,
                when,
                layout,
                row.family_key,
                row.family_id,
                row.head_person_id,
                row.region_kato,
                row.payload,
                program_id=program_id,
                eligible=eligible,
            )
        )
    _record_outcome_read(session, rows, actor=actor, purpose=purpose, action="rules.decisions.read")
    return DecisionPage(items=items, page=page, size=size, total=total)


def _record_outcome_read(
    session: Session, rows: Sequence[Any], *, actor: Actor, purpose: Purpose, action: str
) -> None:
    """Audit a read of stored outcomes: every current member of each family (a person
    without a family is keyed by minus their id)."""
    registry_service.record_family_read(
        session,
        actor=actor,
        action=action,
        family_ids=[r.family_id for r in rows if r.family_id is not None],
        person_ids=[-r.family_key for r in rows if r.family_id is None and r.family_key < 0],
        purpose=purpose,
    )


def _language(lang: str | None, *, field: str = "lang") -> str | None:
    if lang is not None and lang not in LANGUAGES:
        raise InvalidInput(
            f"{field}: {lang!r} is not one of {', '.join(LANGUAGES)}",
            details=[field_error(field, f"one of {', '.join(LANGUAGES)}")],
        )
    return lang


def _explained(
    decision: Decision, pack: LoadedPack, lang: str, person_id: int | None
) -> dict[str, Any]:
    explanation = decision.explain(lang, pack.compiled.pack)
    record = decision.as_dict()
    return {
        "program_id": decision.program.id,
        "title": decision.program.title.get(lang, decision.program.id),
        "entity_type": decision.program.entity,
        "entity_id": decision.entity_id,
        "family_id": decision.family_id,
        "person_id": person_id,
        "period": decision.period,
        "eligible": decision.eligible,
        "amount_minor": decision.amount_minor,
        "version": record["version"],
        "citation": record["citation"] or "",
        "conditions": record["conditions"],
        "variables": record["variables"],
        "parameters": {k: _plain(v) for k, v in decision.parameters.items()},
        "explanation": ExplanationRead(
            lang=explanation.lang,  # type: ignore[arg-type]
            title=explanation.title,
            verdict=explanation.verdict,
            amount=explanation.amount,
            conditions=explanation.conditions,
            variables=explanation.variables,
            parameters=explanation.parameters,
            version=explanation.version,
            rounding=explanation.rounding,
            legal_basis=explanation.legal_basis,
            citation=explanation.citation,
            text=explanation.text(),
        ),
    }


def explain_decision(
    session: Session,
    *,
    run_id: int,
    family_key: int,
    program_id: str,
    actor: Actor,
    purpose: Purpose,
    lang: str = "ru",
    period: str | None = None,
    person_id: int | None = None,
) -> StoredDecisionExplained:
    """One stored decision with the sentences of its explanation in `lang` (kk, ru, en),
    rebuilt from the values kept with it and the rule version it was made under (audited)."""
    _language(lang)
    run, when = _stored_run(session, run_id, period)
    layout = _layout(session, run.id, when)
    meta = layout.metas.get(program_id)
    if meta is None:
        raise InvalidInput(
            f"program: {program_id!r} is not in run {run_id} for {when}",
            details=[field_error("program", "not evaluated in this run and period")],
        )
    if meta.entity == "person" and person_id is None:
        raise InvalidInput(
            "person_id: a person program's decision names the person",
            details=[field_error("person_id", "required for a person program")],
        )
    row = repository.outcome(session, run_id=run.id, period=when, family_key=family_key)
    if row is None:
        raise DecisionNotFound(f"no outcome of family {family_key} in run {run_id} for {when}")
    found = list(
        _decode(
            run.id,
            when,
            layout,
            row.family_key,
            row.family_id,
            row.head_person_id,
            row.region_kato,
            row.payload,
            program_id=program_id,
            person_id=person_id if meta.entity == "person" else None,
        )
    )
    if not found:
        raise DecisionNotFound(f"no decision of {program_id} for person {person_id} there")
    _record_outcome_read(session, [row], actor=actor, purpose=purpose, action="rules.decision.read")
    stored, segment = found[0]
    pack = loaded_pack(run.pack_path)
    decision = _rebuild(pack.compiled, meta, stored, segment)
    body = _explained(decision, pack, lang, stored.person_id)
    return StoredDecisionExplained(
        **body, run_id=run.id, family_key=row.family_key, region_kato=row.region_kato
    )


def _rebuild(
    compiled: CompiledPack, meta: RulesRunProgram, stored: StoredDecision, segment: codec.Segment
) -> Decision:
    """An engine Decision from a stored one, for its explanation."""
    try:
        plan = compiled.program_plan(meta.program_id)
    except EvaluationError as exc:
        raise RuleEvaluationFailed(f"the pack no longer has {meta.program_id}: {exc}") from None
    version = next((v for v in plan.program.versions if v.label == meta.version), None)
    vp = plan.versions[version.index - 1] if version is not None else None
    decision = Decision(
        program=plan.program,
        entity_id=stored.entity_id,
        family_id=stored.family_id,
        period=stored.period,
        version=version,
        eligible=stored.eligible,
        amount_minor=stored.amount_minor,
        conditions=dict(stored.conditions),
        variables=dict(segment.variables),
    )
    if vp is None:
        return decision
    for cond in vp.conditions:
        decision.templates[cond.name] = cond.explain
    person_level = plan.program.entity == "person"
    for symbol in vp.used:
        name = f"family.{symbol.name}" if person_level and symbol.level == "family" else symbol.name
        decision.units[name] = symbol.unit
        decision.titles[name] = symbol.title
    parameters = _parameters(meta)
    for symbol in vp.params:
        param = compiled.params[symbol.key]
        decision.parameters[symbol.name] = parameters.get(symbol.name)
        decision.units[symbol.name] = param.unit
        decision.titles[symbol.name] = param.title or {}
    return decision


# --- one family, online --------------------------------------------------------------------


def evaluate_family(
    session: Session,
    *,
    family_id: int,
    period: str,
    programs: Sequence[str] | None = None,
    lang: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    pack_path: str | Path | None = None,
) -> FamilyEvaluation:
    """Evaluate one family now with the compiled pack (not audited: see family_eligibility).

    Every program of the period's kind, each decision with its conditions, values,
    parameters, version, legal basis and the sentences in `lang` (default: the head's
    preferred language).
    """
    when = parse_period(period)
    _language(lang)
    pack = loaded_pack(pack_path)
    plans = _select_plans(pack.compiled, when.kind, programs)
    _require_in_force(pack.compiled, when, plans)
    typed = parse_overrides(pack.compiled, overrides)
    person, fact, languages = registry_snapshot.family_snapshot_with_languages(
        session, family_id, when
    )
    if person.num_rows == 0:
        raise FamilyNotFound(f"no family with id {family_id} (or it has no members in {when})")
    scored = wellbeing_inputs.rule_input(
        session, [when], family_id=family_id, compiled=pack.compiled
    )
    fact = scored.with_facts(person, fact)
    ids = person.column("person_id").to_pylist()
    roles = person.column("role").to_pylist()
    deaths = person.column("death_on").to_pylist()
    # The recipient of family decisions, as a run records it (`_heads`): the living head,
    # else the surviving spouse, else the first living member.
    living = [(pid, role) for pid, role, d in zip(ids, roles, deaths, strict=True) if d is None]
    head = next(
        (pid for want in ("head", "spouse") for pid, role in living if role == want),
        living[0][0] if living else ids[0],
    )
    if lang is None:
        lang = languages.get(head) or "kk"
        if lang not in LANGUAGES:
            lang = "kk"
    try:
        household = _evaluator(pack).evaluate(
            person,
            fact,
            when,
            overrides=typed or None,
            link=registry_snapshot.family_links(session, family_id),
        )
    except EvaluationError as exc:
        raise RuleEvaluationFailed(str(exc)) from None
    chosen = {plan.program.id for plan in plans}
    decisions = [
        ExplainedDecision(
            **_explained(d, pack, lang, d.entity_id if d.program.entity == "person" else head)
        )
        for d in household.decisions
        if d.program.id in chosen
    ]
    return FamilyEvaluation(
        family_id=family_id,
        period=str(when),
        lang=lang,  # type: ignore[arg-type]
        pack_id=pack.compiled.pack.id,
        pack_hash=pack.content_hash,
        members=ids,
        decisions=decisions,
    )


def family_eligibility(
    session: Session,
    *,
    family_id: int,
    period: str,
    actor: Actor,
    purpose: Purpose,
    lang: str | None = None,
    programs: Sequence[str] | None = None,
) -> FamilyEvaluation:
    """An operator's eligibility check of one family, audited as a read of the members' data."""
    result = evaluate_family(
        session, family_id=family_id, period=period, lang=lang, programs=programs
    )
    security_service.record_access(
        session,
        actor=actor,
        action="family.eligibility.read",
        subject_type="person",
        subject_ids=result.members,
        purpose=purpose,
    )
    return result


# --- what-if over the registry -------------------------------------------------------------


def simulate_registry(
    session: Session,
    *,
    period: str,
    overrides: Mapping[str, Any],
    actor: Actor,
    purpose: Purpose,
    sample: int = 5,
    pack_path: str | Path | None = None,
    snapshot: tuple[pa.Table, pa.Table] | None = None,
    link: pa.Table | None = None,
) -> SimulationRead:
    """Baseline against reform over the registry: eligible counts and monthly cost by
    program and region, with a sample of gainers and losers and the conditions that flipped.
    A given `snapshot` (persons and facts from elsewhere) comes with its own parent-child
    `link` table, if any; without a snapshot the registry's links are read with it."""
    when = parse_period(period)
    pack = loaded_pack(pack_path)
    if not overrides:
        raise InvalidInput(
            "overrides: give at least one", details=[field_error("overrides", "empty")]
        )
    typed = parse_overrides(pack.compiled, overrides)
    plans = _select_plans(pack.compiled, when.kind, None)
    _require_in_force(pack.compiled, when, plans)
    t0 = time.perf_counter()
    if snapshot is not None:
        person, fact = snapshot
    else:
        source, link = _read_registry_and_links(session, [when])
        person, fact = _as_of(source, when)
        scored = wellbeing_inputs.rule_input(session, [when], compiled=pack.compiled)
        fact = scored.with_facts(person, fact)
    read_s = time.perf_counter() - t0
    engine = Engine(pack.compiled)
    try:
        engine.load(person, fact, link)
        try:
            result = simulate_loaded(engine, when, typed, sample=sample)
        except EvaluationError as exc:
            raise InvalidInput(
                f"overrides: {exc}", details=[field_error("overrides", str(exc))]
            ) from None
    finally:
        engine.close()

    def delta(d: Any) -> DeltaRead:
        return DeltaRead(
            program_id=d.program_id,
            region_kato=d.region,
            baseline_count=d.baseline_count,
            reform_count=d.reform_count,
            baseline_minor=d.baseline_minor,
            reform_minor=d.reform_minor,
            count_change=d.count_change,
            cost_change_minor=d.cost_change_minor,
        )

    def change(c: Any) -> ChangeRead:
        return ChangeRead(
            program_id=c.program_id,
            entity_id=c.entity_id,
            region_kato=c.region,
            baseline_eligible=c.baseline_eligible,
            reform_eligible=c.reform_eligible,
            baseline_minor=c.baseline_minor,
            reform_minor=c.reform_minor,
            flipped=c.flipped,
        )

    if snapshot is None:
        # Gainers and losers name the registry's families and persons with their amounts.
        changed = [*result.gainers, *result.losers]
        personal = {plan.program.id for plan in plans if plan.program.entity == "person"}
        registry_service.record_family_read(
            session,
            actor=actor,
            action="rules.simulation.sample",
            family_ids=[c.entity_id for c in changed if c.program_id not in personal],
            person_ids=[c.entity_id for c in changed if c.program_id in personal],
            purpose=purpose,
        )
    return SimulationRead(
        period=str(result.period),
        overrides={k: str(v) for k, v in result.overrides.items()},
        totals=[delta(d) for d in result.totals],
        by_region=[delta(d) for d in result.by_region],
        gainers=[change(c) for c in result.gainers],
        losers=[change(c) for c in result.losers],
        seconds={"read": round(read_s, 3), **{k: round(v, 3) for k, v in result.timings.items()}},
    )


__all__ = [
    "eligible_decisions",
    "evaluate_family",
    "execute_run",
    "explain_decision",
    "family_eligibility",
    "latest_run",
    "list_decisions",
    "run_rules",
    "simulate_registry",
]
