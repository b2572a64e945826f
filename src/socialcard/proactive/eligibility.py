"""Eligibility for the proactive flow, read from the rules domain.

This is the only module that talks to the rules domain. A campaign reads the eligible
decisions of the rules service's stored run for the month (`rules_service.eligible_decisions`,
running the rules first when no run covers the program); a life event re-evaluates one family
online (`rules_service.evaluate_family`). Each eligible decision becomes a `Candidate` with its
recipient: the person themself when a living adult, otherwise the family's living adult by role
(head, spouse, parent, other), oldest first. `batch_candidates` runs the pure engine straight
on a snapshot, without storing a run (the benchmark uses it to time the writes alone).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy.orm import Session

from socialcard.core.db import is_sqlite
from socialcard.core.errors import AppError
from socialcard.proactive.config import get_proactive_settings
from socialcard.proactive.errors import InvalidPeriod, UnknownProgram
from socialcard.proactive.templates import OUTREACH_TITLES, is_outreach
from socialcard.registry import service as registry_service
from socialcard.registry import snapshot as registry_snapshot
from socialcard.rules import service as rules_service
from socialcard.rules.engine import (
    CompiledPack,
    Decision,
    Engine,
    OnlineEvaluator,
    Period,
    load_pack,
)

# Who receives the money and the SMS of a family: a living adult, by role, oldest first.
RECIPIENT_SQL = """
WITH p AS (
    SELECT person_id, family_id, role, birth_on,
           birth_on <= CAST(? AS DATE) - INTERVAL 18 YEAR AS adult
    FROM persons
    WHERE family_id IS NOT NULL AND death_on IS NULL
),
fam AS (
    SELECT DISTINCT ON (family_id) family_id, person_id AS recipient_id
    FROM p WHERE adult
    ORDER BY family_id,
             CASE role WHEN 'head' THEN 0 WHEN 'spouse' THEN 1 WHEN 'parent' THEN 2
                       WHEN 'other' THEN 3 ELSE 4 END,
             birth_on, person_id
)
SELECT p.person_id, p.family_id,
       CASE WHEN p.adult THEN p.person_id ELSE fam.recipient_id END AS recipient_id,
       fam.recipient_id AS family_recipient_id
FROM p LEFT JOIN fam USING (family_id)
"""


@dataclass
class Candidate:
    """An eligible decision ready to become an offer."""

    program_id: str
    program_version: str
    entity_type: str
    entity_id: int
    family_id: int | None
    person_id: int
    region_kato: str
    amount_minor: int
    period: str
    legal_basis: str
    explanation: str  # JSON: conditions, variables and parameters that decided it


@dataclass
class FamilyResult:
    """A family's online evaluation: eligible candidates and every evaluated entity."""

    candidates: list[Candidate] = field(default_factory=list)
    evaluated: set[tuple[str, int]] = field(default_factory=set)  # (program, entity id)


def pack_path() -> Path:
    """The rule pack's directory: a relative path is looked up in the working directory, then
    in the source checkout (so the demo works from anywhere)."""
    return rules_service.resolve_pack_path(get_proactive_settings().pack_path)


@lru_cache(maxsize=2)
def _compiled(path: Path) -> CompiledPack:
    return load_pack(path)


def compiled_pack() -> CompiledPack:
    """The configured rule pack, loaded once per process."""
    return _compiled(pack_path())


def parse_period(text: str) -> Period:
    """A month such as 2026-03; InvalidPeriod otherwise."""
    try:
        period = Period.parse(text)
    except (ValueError, TypeError) as exc:
        raise InvalidPeriod(
            f"period: {exc}", details=[{"field": "period", "reason": "write a month as YYYY-MM"}]
        ) from None
    if period.kind != "month":
        raise InvalidPeriod(
            "period: campaigns run per month",
            details=[{"field": "period", "reason": "write a month as YYYY-MM"}],
        )
    return period


def check_program(program_id: str) -> None:
    """UnknownProgram unless the pack has this benefit program."""
    pack = compiled_pack().pack
    if not any(p.id == program_id and p.kind == "benefit" for p in pack.programs):
        raise UnknownProgram(
            f"the rule pack has no benefit program {program_id!r}",
            details=[{"field": "program_id", "reason": "unknown program"}],
        )


def legal_basis(program_id: str, lang: str = "ru") -> str:
    """The program's legal basis text and citation."""
    program = compiled_pack().pack.program(program_id)
    text = program.legal_basis.get(lang) or next(iter(program.legal_basis.values()), "")
    return f"{text}. {program.citation}".strip(". ")


def program_title(program_id: str, lang: str) -> str:
    """The program's title in a language (an outreach invitation: the support centre's)."""
    if is_outreach(program_id):
        return OUTREACH_TITLES.get(lang) or OUTREACH_TITLES["ru"]
    return _title(pack_path(), program_id, lang)


@lru_cache(maxsize=256)
def _title(path: Path, program_id: str, lang: str) -> str:
    try:
        program = _compiled(path).pack.program(program_id)
    except KeyError:
        return program_id
    return program.title.get(lang) or program.title.get("ru") or program_id


def _recipients(persons: pa.Table, period: Period) -> pa.Table:
    con = duckdb.connect(":memory:")
    try:
        con.register("persons", persons)
        day = f"DATE '{period.start.isoformat()}'"
        return con.sql(RECIPIENT_SQL.replace("CAST(? AS DATE)", day)).to_arrow_table()
    finally:
        con.close()


def _json_default(value: Any) -> Any:
    return str(value)


def batch_candidates(
    snapshot: tuple[pa.Table, pa.Table],
    *,
    program_id: str,
    period: str,
    link: pa.Table | None = None,
) -> Iterator[Candidate]:
    """Every eligible decision of a program for a month over a registry snapshot (and its
    parent-child links, `registry_history(..., links=True).links`)."""
    check_program(program_id)
    bound = parse_period(period)
    persons, facts = snapshot
    engine = Engine(compiled_pack())
    try:
        engine.load(persons, facts, link)
        result = engine.evaluate(bound)
        rows = result.to_arrow(program_id)
        recipients = _recipients(persons, bound)
        con = engine.con
        con.register("decided", rows)
        con.register("recipients", recipients)
        program = compiled_pack().pack.program(program_id)
        person_level = program.entity == "person"
        if person_level:
            source = "recipients r ON r.person_id = d.entity_id"
        else:
            source = (
                "(SELECT DISTINCT family_id, family_recipient_id AS recipient_id FROM recipients)"
                " r ON r.family_id = d.family_id"
            )
        joined = con.sql(
            f"SELECT d.*, r.recipient_id AS recipient_id FROM decided d JOIN {source}"
            " WHERE r.recipient_id IS NOT NULL ORDER BY d.entity_id"
        ).to_arrow_table()
        version = result.bound.active.get(program_id)
        label = version.version.label if version else ""
        basis = legal_basis(program_id)
        entity_type = program.entity
        for batch in joined.to_batches(20_000):
            for record in batch.to_pylist():
                yield Candidate(
                    program_id=program_id,
                    program_version=label,
                    entity_type=entity_type,
                    entity_id=int(record["entity_id"]),
                    family_id=record["family_id"],
                    person_id=int(record["recipient_id"]),
                    region_kato=str(record["region"] or ""),
                    amount_minor=int(record["amount_minor"] or 0),
                    period=period,
                    legal_basis=basis,
                    explanation=json.dumps(
                        {
                            "conditions": record.get("conditions"),
                            "variables": record.get("variables"),
                        },
                        ensure_ascii=False,
                        default=_json_default,
                    ),
                )
    finally:
        engine.close()


_online = threading.local()


def _evaluator() -> OnlineEvaluator:
    evaluator: OnlineEvaluator | None = getattr(_online, "evaluator", None)
    if evaluator is None or evaluator.compiled is not compiled_pack():
        evaluator = OnlineEvaluator(compiled_pack())
        _online.evaluator = evaluator
    return evaluator


def _candidate(decision: Decision, recipient: int, region: str, period: str) -> Candidate:
    record = decision.as_dict()
    return Candidate(
        program_id=decision.program.id,
        program_version=record["version"] or "",
        entity_type=decision.program.entity,
        entity_id=decision.entity_id,
        family_id=decision.family_id,
        person_id=recipient,
        region_kato=region,
        amount_minor=int(decision.amount_minor or 0),
        period=period,
        legal_basis=legal_basis(decision.program.id),
        explanation=json.dumps(
            {
                "conditions": record["conditions"],
                "variables": record["variables"],
                "parameters": record["parameters"],
                "citation": record["citation"],
            },
            ensure_ascii=False,
            default=_json_default,
        ),
    )


def engine_family_candidates(
    session: Session, *, family_id: int, period: str, programs: Sequence[str]
) -> FamilyResult:
    """One family evaluated online (through the caller's session) for the given programs."""
    bound = parse_period(period)
    persons, facts = registry_snapshot.family_snapshot(session, family_id, bound)
    out = FamilyResult()
    if persons.num_rows == 0:
        return out
    household = _evaluator().evaluate(
        persons, facts, bound, link=registry_snapshot.family_links(session, family_id)
    )
    recipients = _recipients(persons, bound).to_pylist()
    by_person = {r["person_id"]: r["recipient_id"] for r in recipients}
    family_recipient = next((r["family_recipient_id"] for r in recipients), None)
    regions = dict(
        zip(
            persons.column("person_id").to_pylist(),
            persons.column("region_kato").to_pylist(),
            strict=True,
        )
    )
    wanted = set(programs)
    for decision in household.decisions:
        if decision.program.id not in wanted or decision.program.kind != "benefit":
            continue
        out.evaluated.add((decision.program.id, decision.entity_id))
        if not decision.eligible:
            continue
        if decision.program.entity == "person":
            recipient = by_person.get(decision.entity_id)
            region = regions.get(decision.entity_id) or ""
        else:
            recipient = family_recipient
            region = regions.get(recipient) or next(iter(regions.values()), "") or ""
        if recipient is None:
            continue
        out.candidates.append(_candidate(decision, recipient, region, period))
    return out


# through the rules service ---------------------------------------------------------------------

_ROLE_RANK = {"head": 0, "spouse": 1, "parent": 2, "other": 3}


def _adult_of(members: Sequence[registry_service.Member], on: date) -> int | None:
    """The family's recipient on a day: a living adult, by role, oldest first."""
    adults = [
        (_ROLE_RANK.get(m.role, 4), m.birth_on, m.person_id)
        for m in members
        if m.death_on is None and _is_adult(m.birth_on, on)
    ]
    return min(adults)[2] if adults else None


def recipient_of(members: Sequence[registry_service.Member], on: date) -> int | None:
    """Who a family's letters go to on a day (`_adult_of`): a living adult, by role."""
    return _adult_of(members, on)


def _is_adult(birth: date, on: date) -> bool:
    try:
        return birth <= on.replace(year=on.year - 18)
    except ValueError:  # 29 February
        return birth <= on.replace(year=on.year - 18, day=28)


@dataclass
class _Raw:
    program_id: str
    entity_type: str
    entity_id: int
    family_id: int | None
    person_id: int | None
    region_kato: str | None
    amount_minor: int | None
    version: str | None
    explanation: str


def _resolve(session: Session, raws: Sequence[_Raw], period: str) -> list[Candidate]:
    """Recipients and regions of decisions; those without a living adult are dropped, and so
    is a person benefit whose holder is recorded dead: it ends with its holder and is never
    re-addressed to a relative (a benefit that passes to survivors is its own program). A
    minor's person benefit goes to the family's living adult."""
    on = parse_period(period).start
    persons = registry_service.life_dates(
        session, [r.person_id for r in raws if r.person_id is not None]
    )

    def self_receives(raw: _Raw) -> bool:
        known = persons.get(raw.person_id) if raw.person_id is not None else None
        return known is not None and known.death_on is None and _is_adult(known.birth_on, on)

    needs_family = [r.family_id for r in raws if r.family_id is not None and not self_receives(r)]
    members = registry_service.current_members(session, needs_family)
    out: list[Candidate] = []
    bases: dict[str, str] = {}
    holders = registry_service.life_dates(
        session, [r.entity_id for r in raws if r.entity_type == "person"]
    )
    for raw in raws:
        if raw.entity_type == "person":
            holder = holders.get(raw.entity_id)
            if holder is None or holder.death_on is not None:
                continue
        known = persons.get(raw.person_id) if raw.person_id is not None else None
        recipient: int | None = raw.person_id
        if known is None or known.death_on is not None or not _is_adult(known.birth_on, on):
            recipient = _adult_of(members.get(raw.family_id, []), on) if raw.family_id else None
        if recipient is None:
            continue
        region = raw.region_kato or (known.region_kato if known else "")
        out.append(
            Candidate(
                program_id=raw.program_id,
                program_version=raw.version or "",
                entity_type=raw.entity_type,
                entity_id=raw.entity_id,
                family_id=raw.family_id,
                person_id=recipient,
                region_kato=region or "",
                amount_minor=int(raw.amount_minor or 0),
                period=period,
                legal_basis=bases.get(raw.program_id)
                or bases.setdefault(raw.program_id, legal_basis(raw.program_id)),
                explanation=raw.explanation,
            )
        )
    return out


def rules_run_for(session: Session, *, program_id: str, period: str, fresh: bool = False) -> int:
    """The stored rules run to read a campaign from: the month's latest run covering the
    program, or a new run of the rules service when there is none (or `fresh`)."""
    check_program(program_id)
    parse_period(period)
    run = None if fresh else rules_service.latest_run(session, period=period)
    if (
        run is None
        or run.status != "succeeded"
        or (run.programs is not None and program_id not in run.programs)
    ):
        # SQLite: the rules service's ADBC snapshot reads the database file without its WAL (it
        # saw a stale registry in our tests), so hand it the snapshot read through the session.
        snapshot = (
            registry_snapshot.registry_snapshot_in_session(session, parse_period(period))
            if is_sqlite(session)
            else None
        )
        run = rules_service.run_rules(
            session, period=period, programs=[program_id], snapshot=snapshot, pack_path=pack_path()
        )
    return run.id


def stored_amounts(
    session: Session, *, period: str, programs: Sequence[str]
) -> dict[str, dict[int, int]]:
    """From the month's latest stored rules run, per program it covers: entity id -> amount of
    every eligible decision with a living adult recipient (what an online evaluation of each
    family would give, read in one pass). Programs the run does not cover are absent."""
    run = rules_service.latest_run(session, period=period) if programs else None
    if run is None or run.status != "succeeded":
        return {}
    out: dict[str, dict[int, int]] = {}
    for program_id in programs:
        if run.programs is not None and program_id not in run.programs:
            continue
        try:
            out[program_id] = {
                c.entity_id: c.amount_minor
                for c in rules_candidates(
                    session, run_id=run.id, program_id=program_id, period=period
                )
            }
        except AppError:
            continue  # not evaluated in that run's month: the caller evaluates online
    return out


def rules_candidates(
    session: Session, *, run_id: int, program_id: str, period: str, chunk: int = 20_000
) -> Iterator[Candidate]:
    """The eligible decisions of a stored run as candidates, in chunks."""
    raws: list[_Raw] = []
    stream = rules_service.eligible_decisions(
        session, run_id=run_id, program_id=program_id, period=period
    )
    for decision in stream:
        raws.append(
            _Raw(
                program_id=decision.program_id,
                entity_type=decision.entity_type,
                entity_id=decision.entity_id,
                family_id=decision.family_id,
                person_id=decision.person_id,
                region_kato=decision.region_kato,
                amount_minor=decision.amount_minor,
                version=decision.version,
                explanation=json.dumps(
                    {
                        "run_id": run_id,
                        "conditions": decision.conditions,
                        "variables": decision.variables,
                    },
                    ensure_ascii=False,
                    default=_json_default,
                ),
            )
        )
        if len(raws) >= chunk:
            yield from _resolve(session, raws, period)
            raws = []
    if raws:
        yield from _resolve(session, raws, period)


def family_candidates(
    session: Session, *, family_id: int, period: str, programs: Sequence[str]
) -> FamilyResult:
    """One family evaluated online by the rules service, for the given programs."""
    out = FamilyResult()
    try:
        evaluation = rules_service.evaluate_family(
            session,
            family_id=family_id,
            period=period,
            programs=list(programs),
            pack_path=pack_path(),
        )
    except AppError:
        return out  # no current members, or no program in force: nothing to offer or keep
    raws: list[_Raw] = []
    for decision in evaluation.decisions:
        out.evaluated.add((decision.program_id, decision.entity_id))
        if not decision.eligible:
            continue
        raws.append(
            _Raw(
                program_id=decision.program_id,
                entity_type=decision.entity_type,
                entity_id=decision.entity_id,
                family_id=decision.family_id if decision.family_id is not None else family_id,
                person_id=decision.person_id,
                region_kato=None,
                amount_minor=decision.amount_minor,
                version=decision.version,
                explanation=json.dumps(
                    {
                        "conditions": decision.conditions,
                        "variables": decision.variables,
                        "parameters": decision.parameters,
                        "citation": decision.citation,
                        "text": decision.explanation.model_dump(mode="json"),
                    },
                    ensure_ascii=False,
                    default=_json_default,
                ),
            )
        )
    out.candidates = _resolve(session, raws, period)
    return out
