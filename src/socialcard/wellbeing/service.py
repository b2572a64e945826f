"""Well-being logic: load methodologies, score the registry, and serve levels, lists and cards."""

from __future__ import annotations

import csv
import io
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy.orm import Session

from socialcard.core.bulk import copy_rows
from socialcard.core.clock import utcnow
from socialcard.registry import service as registry_service
from socialcard.registry.snapshot import family_snapshot, registry_snapshot
from socialcard.rules.engine import OnlineEvaluator, Period, Problem
from socialcard.rules.engine.explain import format_value
from socialcard.rules.engine.loader import read_yaml
from socialcard.rules.engine.model import LANGUAGES
from socialcard.rules.engine.yamlio import Map
from socialcard.security import service as security_service
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor
from socialcard.wellbeing import repository
from socialcard.wellbeing.errors import (
    FamilyNotScored,
    InvalidWellbeingQuery,
    MethodologyInvalid,
    MethodologyNotFound,
    PeriodNotCovered,
    RunNotFound,
)
from socialcard.wellbeing.methodology import (
    DIMENSIONS,
    Methodology,
    MethodologyError,
    load_methodology,
    methodology_files,
)
from socialcard.wellbeing.models import WellbeingResult, WellbeingRun
from socialcard.wellbeing.schemas import (
    ComparedMethodology,
    ComparisonRead,
    DimensionCard,
    FamilyCard,
    FamilyScore,
    FamilyScorePage,
    IndicatorCard,
    LevelChange,
    LevelChangePage,
    LevelCount,
    LevelMove,
    LevelRead,
    MethodologyRead,
    RegionLevels,
    RunPage,
    RunRead,
    Texts,
    Transition,
    ValueRead,
)
from socialcard.wellbeing.scoring import (
    RESULT_COLUMNS,
    level_counts,
    level_moves,
    score_snapshot,
)

# The methodologies shipped with the Kazakhstan pack (repository root / packs / kz / wellbeing).
DEFAULT_FOLDER = Path(__file__).resolve().parents[3] / "packs" / "kz" / "wellbeing"
WRITE_CHUNK = 100_000
CSV_COLUMNS = ("family_id", "region_kato", "level", "score", *DIMENSIONS, "indicators")

Progress = Callable[[str, int, int], None]  # step, done, total
_cache: dict[tuple[str, float, bool], Methodology] = {}


# --- methodologies ---------------------------------------------------------------------------
def _file_id(path: Path) -> tuple[str | None, bool, date | None]:
    """A methodology file's id, default flag and effective date, read without compiling."""
    node = read_yaml(path, [])
    if not isinstance(node, Map):
        return None, False, None
    mid = node.get("id")
    effective = node.get("effective_from")
    return (
        (mid if isinstance(mid, str) else None),
        node.get("default") is True,
        effective if isinstance(effective, date) else None,
    )


def resolve_methodology(
    ref: str | None = None, *, folder: Path | None = None, period: str | None = None
) -> Path:
    """The file of a methodology: a path, an id in the folder, or the folder's default.

    A ministry replaces a methodology by a new file with the same id and a later
    `effective_from`: for a period, the version in force at the period's end is taken; without
    one, the latest version.
    """
    if ref and Path(ref).is_file():
        return Path(ref)
    folder = folder or DEFAULT_FOLDER
    files = [(path, *_file_id(path)) for path in methodology_files(folder)]
    if ref is None:
        defaults = [mid for _, mid, default, _ in files if default and mid]
        if not defaults and files and files[0][1]:
            defaults = [files[0][1]]
        if not defaults:
            raise MethodologyNotFound(f"no methodology file in {folder}")
        ref = defaults[0]
    versions = [(effective, path) for path, mid, _, effective in files if mid == ref]
    if not versions:
        raise MethodologyNotFound(
            f"no methodology {ref!r} in {folder}",
            details=[{"field": "methodology", "reason": "unknown methodology id or file"}],
        )
    dated = sorted(((e or date.min), str(p), p) for e, p in versions)
    if period is None:
        return dated[-1][2]
    end = parse_period(period).end
    in_force = [path for effective, _, path in dated if effective <= end]
    if not in_force:
        raise MethodologyNotFound(
            f"no version of {ref!r} is in force in {period}",
            details=[
                {"field": "period", "reason": f"{ref} applies from {dated[0][0].isoformat()}"}
            ],
        )
    return in_force[-1]


def load(
    ref: str | None = None,
    *,
    folder: Path | None = None,
    with_programs: bool = False,
    period: str | None = None,
) -> Methodology:
    """Load and compile a methodology (cached until its file changes); reports every problem.
    With a period, the version in force then."""
    path = resolve_methodology(ref, folder=folder, period=period)
    key = (str(path.resolve()), path.stat().st_mtime, with_programs)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    try:
        methodology = load_methodology(path, with_programs=with_programs)
    except MethodologyError as exc:
        raise MethodologyInvalid(
            f"the methodology {path} has {len(exc.problems)} problem(s)",
            details=[_problem(p) for p in exc.problems],
        ) from exc
    _cache[key] = methodology
    return methodology


def _problem(problem: Problem) -> dict[str, Any]:
    return {"field": f"{problem.file}:{problem.line}", "reason": problem.reason}


def methodology_paths(*, folder: Path | None = None) -> list[Path]:
    """The methodology files of the folder (default: the Kazakhstan pack's)."""
    return methodology_files(folder or DEFAULT_FOLDER)


def list_methodologies(*, folder: Path | None = None) -> list[MethodologyRead]:
    """Every methodology of the folder, loaded and checked."""
    return [
        _methodology_read(load(str(path), folder=folder))
        for path in methodology_files(folder or DEFAULT_FOLDER)
    ]


def _methodology_read(m: Methodology) -> MethodologyRead:
    return MethodologyRead(
        id=m.id,
        title=Texts(**m.title),
        default=m.default,
        sha256=m.sha256,
        effective_from=m.effective_from.isoformat(),
        citation=m.citation,
        unverified=m.unverified,
        levels=[
            LevelRead(
                code=lv.code,
                name=Texts(**lv.name),
                min_score=lv.min_score,
                confirmed=lv.confirmed,
                source=lv.source,
                name_confidence=lv.name_confidence,
                cut_confidence=lv.cut_confidence,
            )
            for lv in m.levels
        ],
        indicators=len(m.indicators),
    )


def parse_period(text: str) -> Period:
    """A period `YYYY-MM` (or `YYYY`), or a 422 naming the field."""
    try:
        return Period.parse(text)
    except ValueError as exc:
        raise InvalidWellbeingQuery(
            f"period {text!r}: {exc}", details=[{"field": "period", "reason": str(exc)}]
        ) from exc


def checked_period(methodology: Methodology, period: str) -> Period:
    """The period, if well formed (else 422) and the methodology is in force in it (else 409)."""
    parsed = parse_period(period)
    try:
        methodology.check_period(parsed)
    except ValueError as exc:
        raise PeriodNotCovered(
            f"{methodology.id}: {exc}", details=[{"field": "period", "reason": str(exc)}]
        ) from exc
    return parsed


# --- scoring ---------------------------------------------------------------------------------
def score(
    session: Session,
    *,
    methodology: Methodology,
    period: str,
    person: pa.Table,
    fact: pa.Table,
    progress: Progress | None = None,
    timings: dict[str, float] | None = None,
) -> RunRead:
    """Score every family of a snapshot and store the run with one result row per family."""
    parsed = checked_period(methodology, period)
    timings = timings if timings is not None else {}
    started_at = utcnow()
    step = progress or (lambda _s, _d, _t: None)
    step("evaluate", 0, 1)
    table = score_snapshot(methodology, person, fact, parsed, timings=timings)
    step("evaluate", 1, 1)
    counts = level_counts(methodology, table)
    run = repository.add_run(
        session,
        WellbeingRun(
            methodology_id=methodology.id,
            methodology_sha256=methodology.sha256,
            period=str(parsed),
            families=table.num_rows,
            level_counts=counts,
            definition=methodology.definition(),
            timings={},
            started_at=started_at,
            finished_at=started_at,
        ),
    )
    t0 = time.perf_counter()
    _write_results(session, run.id, table, step)
    timings["write"] = time.perf_counter() - t0
    run.timings = {k: round(v, 3) for k, v in timings.items()}
    run.finished_at = utcnow()
    session.flush()
    return run_read(run)


def _write_results(session: Session, run_id: int, table: pa.Table, step: Progress) -> None:
    total = table.num_rows
    done = 0
    step("write", 0, total)

    def rows() -> Iterator[tuple[Any, ...]]:
        nonlocal done
        for batch in table.to_batches(WRITE_CHUNK):
            columns = [batch.column(name).to_pylist() for name in RESULT_COLUMNS]
            yield from zip(itertools.repeat(run_id), *columns, strict=False)
            done += batch.num_rows
            step("write", done, total)

    copy_rows(session, repository.RESULT_TABLE, ("run_id", *RESULT_COLUMNS), rows())
    step("write", total, total)


def score_registry(
    session: Session,
    *,
    database_url: str,
    methodology: Methodology,
    period: str,
    progress: Progress | None = None,
) -> RunRead:
    """Score the whole registry (committed data, read as an Arrow snapshot) for a period."""
    parsed = checked_period(methodology, period)
    step = progress or (lambda _s, _d, _t: None)
    step("snapshot", 0, 1)
    t0 = time.perf_counter()
    person, fact = registry_snapshot(database_url, parsed)
    timings = {"snapshot": time.perf_counter() - t0}
    step("snapshot", 1, 1)
    return score(
        session,
        methodology=methodology,
        period=period,
        person=person,
        fact=fact,
        progress=progress,
        timings=timings,
    )


# --- comparing methodologies -----------------------------------------------------------------
def compare(
    *,
    baseline: Methodology,
    reform: Methodology,
    period: str,
    person: pa.Table,
    fact: pa.Table,
) -> ComparisonRead:
    """Score one snapshot under two methodologies (nothing stored): counts per level under
    each and the families moving between levels, as the rules' what-if does for benefits."""
    parsed_a = checked_period(baseline, period)
    checked_period(reform, period)
    table_a = score_snapshot(baseline, person, fact, parsed_a)
    table_b = score_snapshot(reform, person, fact, parsed_a)
    moves = level_moves(table_a, table_b)
    codes_a = [lv.code for lv in baseline.levels]
    same_scale = codes_a == [lv.code for lv in reform.levels]
    rank = {code: i for i, code in enumerate(codes_a)}  # 0 is the best level
    moved = better = worse = None
    if same_scale:
        moved = sum(n for (a, b), n in moves.items() if a != b)
        better = sum(n for (a, b), n in moves.items() if rank[b] < rank[a])
        worse = sum(n for (a, b), n in moves.items() if rank[b] > rank[a])
    return ComparisonRead(
        period=str(parsed_a),
        families=table_a.num_rows,
        baseline=_compared(baseline, table_a),
        reform=_compared(reform, table_b),
        moves=[
            LevelMove(from_level=a, to_level=b, families=n) for (a, b), n in sorted(moves.items())
        ],
        moved=moved,
        better=better,
        worse=worse,
    )


def _compared(m: Methodology, table: pa.Table) -> ComparedMethodology:
    counts = level_counts(m, table)
    return ComparedMethodology(
        id=m.id,
        sha256=m.sha256,
        effective_from=m.effective_from.isoformat(),
        title=Texts(**m.title),
        levels=[
            LevelCount(level=lv.code, name=Texts(**lv.name), families=counts[lv.code])
            for lv in m.levels
        ],
    )


def compare_registry(
    *, database_url: str, baseline: str | None, reform: str, period: str
) -> ComparisonRead:
    """Compare two methodologies (ids, in force in the period, or files) over the registry."""
    a = load(baseline, period=period)
    b = load(reform, period=period)
    # The registry as of the period: its families, not today's.
    person, fact = registry_snapshot(database_url, checked_period(a, period))
    return compare(baseline=a, reform=b, period=period, person=person, fact=fact)


# --- reads -----------------------------------------------------------------------------------
def _run(session: Session, run_id: int) -> WellbeingRun:
    run = repository.run_by_id(session, run_id)
    if run is None:
        raise RunNotFound(f"no well-being run {run_id}")
    return run


def _levels(run: WellbeingRun) -> list[dict[str, Any]]:
    return list(run.definition.get("levels", []))


def _stored_level(level: dict[str, Any]) -> LevelRead:
    """A level as a run kept it. Runs scored before the confidence marks kept one flag,
    `confirmed`, for the name and cut-off together."""
    if "name_confidence" in level:
        name_confidence = str(level["name_confidence"])
        cut = level.get("cut_confidence")
        cut_confidence = None if cut is None else str(cut)
    else:
        name_confidence = "confirmed" if level.get("confirmed") else "unconfirmed"
        cut_confidence = None if level.get("min_score") is None else name_confidence
    return LevelRead(
        code=level["code"],
        name=Texts(**level["name"]),
        min_score=level["min_score"],
        confirmed=name_confidence == "confirmed" and cut_confidence in (None, "confirmed"),
        source=str(level.get("source", "")),
        name_confidence=name_confidence,
        cut_confidence=cut_confidence,
    )


def run_read(run: WellbeingRun) -> RunRead:
    counts = run.level_counts or {}
    return RunRead(
        id=run.id,
        methodology_id=run.methodology_id,
        methodology_sha256=run.methodology_sha256,
        period=run.period,
        families=run.families,
        levels=[
            LevelCount(
                level=lv["code"], name=Texts(**lv["name"]), families=counts.get(lv["code"], 0)
            )
            for lv in _levels(run)
        ],
        timings=dict(run.timings or {}),
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


def get_run(session: Session, *, run_id: int) -> RunRead:
    """A run with its counts per level."""
    return run_read(_run(session, run_id))


def list_runs(
    session: Session, *, methodology_id: str | None = None, page: int = 1, size: int = 50
) -> RunPage:
    """Runs, newest first."""
    runs, total = repository.list_runs(
        session, methodology_id=methodology_id, offset=(page - 1) * size, limit=size
    )
    return RunPage(items=[run_read(r) for r in runs], page=page, size=size, total=total)


def region_counts(session: Session, *, run_id: int) -> list[RegionLevels]:
    """Counts per level in each region of a run (regions by KATO code)."""
    run = _run(session, run_id)
    codes = [lv["code"] for lv in _levels(run)]
    names = {r.kato: Texts(kk=r.name_kk, ru=r.name_ru, en=r.name_en) for r in _regions()}
    out: dict[str | None, RegionLevels] = {}
    for region, level, count in repository.region_level_counts(session, run.id):
        entry = out.get(region)
        if entry is None:
            entry = RegionLevels(
                region_kato=region,
                region_name=names.get(region[:2] + "0000000") if region else None,
                families=0,
                levels=dict.fromkeys(codes, 0),
            )
            out[region] = entry
        entry.levels[level] = int(count)
        entry.families += int(count)
    return list(out.values())


def _regions() -> list[Any]:
    return list(registry_service.list_regions())


def _check_level(run: WellbeingRun, level: str | None) -> None:
    codes = [lv["code"] for lv in _levels(run)]
    if level is not None and level not in codes:
        reason = f"not a level of {run.methodology_id}; one of {', '.join(codes)}"
        raise InvalidWellbeingQuery(
            f"level {level!r}: {reason}", details=[{"field": "level", "reason": reason}]
        )


def _check_region(region: str | None) -> None:
    if region is not None and not (region.isdigit() and 1 <= len(region) <= 9):
        reason = "a KATO code or prefix: 1 to 9 digits"
        raise InvalidWellbeingQuery(
            f"region {region!r}: {reason}", details=[{"field": "region", "reason": reason}]
        )


def list_families(
    session: Session,
    *,
    run_id: int,
    actor: Actor,
    purpose: Purpose,
    level: str | None = None,
    region: str | None = None,
    page: int = 1,
    size: int = 50,
) -> FamilyScorePage:
    """Families of a run (in a level and region), by family id; audited per family."""
    run = _run(session, run_id)
    _check_level(run, level)
    _check_region(region)
    rows, total = repository.families(
        session, run_id=run.id, level=level, region=region, offset=(page - 1) * size, limit=size
    )
    registry_service.record_family_read(
        session,
        actor=actor,
        action="wellbeing.families.read",
        family_ids=repository.family_ids(rows),
        purpose=purpose,
    )
    return FamilyScorePage(
        run_id=run.id,
        level=level,
        region=region,
        items=[FamilyScore.model_validate(r) for r in rows],
        page=page,
        size=size,
        total=total,
    )


def export_families_csv(
    session: Session,
    *,
    run_id: int,
    actor: Actor,
    purpose: Purpose,
    reader: Session,
    level: str | None = None,
    region: str | None = None,
) -> Iterator[str]:
    """CSV text of a run's families (in a level and region), produced chunk by chunk.

    The checks run now (so a bad filter is a 4xx before any byte is sent), and so does the
    audit: every member of every family the export holds is recorded in `session`, which the
    caller commits before the first byte leaves (a run's results never change, so the rows
    streamed are the rows recorded). The rows are then read through `reader` as the iterator
    is consumed.
    """
    run = _run(session, run_id)
    _check_level(run, level)
    _check_region(region)
    family_ids = repository.all_family_ids(session, run_id=run.id, level=level, region=region)
    registry_service.record_family_read(
        session,
        actor=actor,
        action="wellbeing.families.export",
        family_ids=family_ids,
        purpose=purpose,
    )

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue()
        for chunk in repository.iter_families(reader, run_id=run.id, level=level, region=region):
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(
                (
                    r.family_id,
                    r.region_kato or "",
                    r.level,
                    r.score,
                    r.economic,
                    r.social,
                    r.housing,
                    r.health,
                    r.education,
                    r.indicators,
                )
                for r in chunk
            )
            yield buffer.getvalue()

    return lines()


def level_changes(
    session: Session,
    *,
    run_id: int,
    actor: Actor,
    purpose: Purpose,
    page: int = 1,
    size: int = 50,
) -> LevelChangePage:
    """Families whose level changed since the previous run of the same methodology (audited)."""
    run = _run(session, run_id)
    previous = repository.previous_run(session, run)
    if previous is None:
        return LevelChangePage(
            run_id=run.id,
            previous_run_id=None,
            transitions=[],
            items=[],
            page=page,
            size=size,
            total=0,
        )
    rows, total, transitions = repository.level_changes(
        session, run_id=run.id, previous_id=previous.id, offset=(page - 1) * size, limit=size
    )
    registry_service.record_family_read(
        session,
        actor=actor,
        action="wellbeing.changes.read",
        family_ids=[int(r[0]) for r in rows],
        purpose=purpose,
    )
    return LevelChangePage(
        run_id=run.id,
        previous_run_id=previous.id,
        transitions=[
            Transition(from_level=a, to_level=b, families=int(n)) for a, b, n in transitions
        ],
        items=[
            LevelChange(
                family_id=int(f),
                region_kato=region,
                from_level=a,
                to_level=b,
                from_score=int(sa),
                to_score=int(sb),
            )
            for f, region, a, b, sa, sb in rows
        ],
        page=page,
        size=size,
        total=total,
    )


def family_card(
    session: Session,
    *,
    family_id: int,
    actor: Actor,
    purpose: Purpose,
    run_id: int | None = None,
    with_values: bool = True,
    methodology: Methodology | None = None,
) -> FamilyCard:
    """A family's card in a run (default: the latest run that scored it), every point explained.

    With `with_values`, each indicator also shows the values it reads, computed from the
    registry as it is now for the run's period (when the run's methodology is still the same).
    """
    if run_id is None:
        run_id = repository.latest_run_with_family(session, family_id)
        if run_id is None:
            raise FamilyNotScored(f"family {family_id} is in no well-being run")
    run = _run(session, run_id)
    row = repository.result(session, run.id, family_id)
    if row is None:
        raise FamilyNotScored(f"family {family_id} is not in well-being run {run.id}")
    registry_service.record_family_read(
        session,
        actor=actor,
        action="wellbeing.card.read",
        family_ids=[family_id],
        purpose=purpose,
    )
    card = build_card(run, row)
    if with_values:
        _add_values(session, card, run, actor=actor, purpose=purpose, methodology=methodology)
    return card


def _same_methodology(run: WellbeingRun, given: Methodology | None) -> Methodology | None:
    if given is None:
        try:
            given = load(run.methodology_id)
        except (MethodologyNotFound, MethodologyInvalid):
            return None
    return given if given.sha256 == run.methodology_sha256 else None


def _add_values(
    session: Session,
    card: FamilyCard,
    run: WellbeingRun,
    *,
    actor: Actor,
    purpose: Purpose,
    methodology: Methodology | None,
) -> None:
    """Fill each indicator's values (and whether it holds now) from the current registry."""
    m = _same_methodology(run, methodology)
    if m is None:
        card.values_note = "the methodology changed since this run: values not recomputed"
        return
    # The family as it was in the run's period, as the run scored it.
    person, fact = family_snapshot(session, card.family_id, Period.parse(run.period))
    if person.num_rows == 0:
        card.values_note = "the family has no current members in the registry"
        return
    security_service.record_access(
        session,
        actor=actor,
        action="wellbeing.card.values",
        subject_type="person",
        subject_ids=[int(p) for p in person.column("person_id").to_pylist()],
        purpose=purpose,
    )
    evaluator = OnlineEvaluator(m.compiled)
    try:
        decision = evaluator.evaluate(person, fact, run.period).get(m.id)
    finally:
        evaluator.close()
    pack = m.compiled.pack
    known = {**decision.parameters, **decision.variables}
    reads = {i.code: i.reads for i in m.indicators}
    for dim in card.dimensions:
        for ind in dim.indicators:
            ind.holds_now = decision.conditions.get(ind.code)
            for name in reads.get(ind.code, ()):
                if name not in known:
                    continue
                value = known[name]
                unit = decision.units.get(name, "number")
                title = decision.titles.get(name) or {}
                ind.values.append(
                    ValueRead(
                        name=name,
                        title=Texts(**{lang: title.get(lang, name) for lang in LANGUAGES}),
                        value=_json_value(value),
                        text=Texts(
                            **{lang: format_value(value, unit, lang, pack) for lang in LANGUAGES}
                        ),
                    )
                )
    card.values_note = "values from the registry now, evaluated for the run's period"


def _json_value(value: Any) -> int | float | bool | str | None:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def build_card(run: WellbeingRun, row: WellbeingResult) -> FamilyCard:
    """The card of one result row, explained with the run's own copy of the methodology."""
    definition = run.definition
    indicators = definition.get("indicators", [])
    flags = row.indicators
    dims: dict[str, DimensionCard] = {
        d: DimensionCard(
            code=d,
            title=Texts(
                **definition.get("dimensions", {}).get(d, dict.fromkeys(("kk", "ru", "en"), d))
            ),
            score=int(getattr(row, d)),
            indicators=[],
        )
        for d in DIMENSIONS
    }
    for i, ind in enumerate(indicators):
        flag = flags[i] if i < len(flags) else "-"
        holds = None if flag == "-" else flag == "1"
        dims[ind["dimension"]].indicators.append(
            IndicatorCard(
                code=ind["code"],
                title=Texts(**ind["title"]),
                source=str(ind.get("source", "")),
                confidence=str(ind.get("confidence", "unconfirmed")),
                points_confidence=str(ind.get("points_confidence", "unconfirmed")),
                expression=ind["expr"],
                points=int(ind["points"]),
                holds=holds,
                points_awarded=int(ind["points"]) if holds else 0,
            )
        )
    level = next((lv for lv in _levels(run) if lv["code"] == row.level), None)
    level_read = (
        _stored_level(level)
        if level
        else LevelRead(
            code=row.level,
            name=Texts(kk=row.level, ru=row.level, en=row.level),
            min_score=None,
            confirmed=False,
        )
    )
    return FamilyCard(
        run_id=run.id,
        methodology_id=run.methodology_id,
        methodology_title=Texts(**definition["title"]),
        legal_basis=Texts(**definition["legal_basis"]),
        citation=str(definition.get("citation", "")),
        unverified=str(definition.get("unverified", "")),
        period=run.period,
        family_id=row.family_id,
        region_kato=row.region_kato,
        level=level_read,
        score=row.score,
        dimensions=list(dims.values()),
    )


# --- segments --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SegmentFamily:
    """A family of a segment: its region and level, and its level in the previous run."""

    family_id: int
    region_kato: str | None
    level: str
    previous_level: str | None


@dataclass(frozen=True)
class SegmentSelection:
    """The families of a run that a segment's criteria pick, with the runs they come from."""

    run_id: int
    previous_run_id: int | None
    period: str
    families: list[SegmentFamily]


def segment_run(session: Session, *, methodology_id: str | None, run_id: int | None) -> RunRead:
    """The run a segment reads: the given one, else the newest of its methodology (or any)."""
    if run_id is not None:
        run = _run(session, run_id)
        if methodology_id is not None and run.methodology_id != methodology_id:
            reason = f"run {run_id} is of {run.methodology_id}, not {methodology_id}"
            raise InvalidWellbeingQuery(reason, details=[{"field": "run_id", "reason": reason}])
        return run_read(run)
    found = repository.latest_run(session, methodology_id=methodology_id)
    if found is None:
        raise RunNotFound(
            f"no well-being run of {methodology_id or 'any methodology'} yet",
            details=[{"field": "run_id", "reason": "score the registry first"}],
        )
    return run_read(found)


def check_segment(
    *, methodology_id: str | None, levels: list[str], region: str | None, indicators: list[str]
) -> None:
    """InvalidWellbeingQuery naming the field unless the criteria fit the methodology: known
    level codes and indicator ids (of the methodology as shipped), a KATO prefix."""
    _check_region(region)
    if methodology_id is None:
        if indicators:
            reason = "name the methodology whose indicators these are"
            raise InvalidWellbeingQuery(
                f"indicators: {reason}", details=[{"field": "methodology_id", "reason": reason}]
            )
        known_levels = {c for m in list_methodologies() for c in (lv.code for lv in m.levels)}
    else:
        try:
            methodology = load(methodology_id)
        except MethodologyNotFound:
            reason = "unknown methodology id"
            raise InvalidWellbeingQuery(
                f"methodology_id {methodology_id!r}: {reason}",
                details=[{"field": "methodology_id", "reason": reason}],
            ) from None
        known_levels = {lv.code for lv in methodology.levels}
        known = {i.code for i in methodology.indicators}
        unknown = [i for i in indicators if i not in known]
        if unknown:
            reason = f"not indicators of {methodology_id}: {', '.join(unknown)}"
            raise InvalidWellbeingQuery(
                f"indicators: {reason}", details=[{"field": "indicators", "reason": reason}]
            )
    bad = [lv for lv in levels if lv not in known_levels]
    if bad:
        reason = f"unknown level codes {', '.join(bad)}; one of {', '.join(sorted(known_levels))}"
        raise InvalidWellbeingQuery(
            f"levels: {reason}", details=[{"field": "levels", "reason": reason}]
        )


def segment_families(
    session: Session,
    *,
    run_id: int,
    levels: list[str],
    region: str | None,
    indicators: list[str],
    worsened: bool,
) -> SegmentSelection:
    """The families of a run in a segment: a level among `levels` (any when empty), a region
    prefix, every named indicator holding, and with `worsened` only those whose level is worse
    than in the previous run of the same methodology (a family new to the run is not)."""
    run = _run(session, run_id)
    previous = repository.previous_run(session, run) if worsened else None
    if worsened and previous is None:
        return SegmentSelection(run.id, None, run.period, [])
    order = [lv["code"] for lv in _levels(run)]  # best first
    rank = {code: i for i, code in enumerate(order)}
    positions = [
        i for i, ind in enumerate(run.definition.get("indicators", [])) if ind["code"] in indicators
    ]
    if len(positions) != len(set(indicators)):
        reason = f"not all of {', '.join(indicators)} are indicators of run {run.id}"
        raise InvalidWellbeingQuery(
            f"indicators: {reason}", details=[{"field": "indicators", "reason": reason}]
        )
    out: list[SegmentFamily] = []
    for family_id, region_kato, level, flags, before in repository.segment_rows(
        session,
        run_id=run.id,
        levels=levels,
        region=region,
        previous_id=previous.id if previous is not None else None,
    ):
        if any(p >= len(flags) or flags[p] != "1" for p in positions):
            continue
        if worsened and rank.get(before, len(order)) >= rank.get(level, -1):
            continue
        out.append(SegmentFamily(int(family_id), region_kato, level, before))
    return SegmentSelection(run.id, previous.id if previous is not None else None, run.period, out)
