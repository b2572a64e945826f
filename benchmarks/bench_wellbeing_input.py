"""Benchmark: the family's well-being as a rule input, and a segment campaign, at scale.

    python benchmarks/bench_wellbeing_input.py --families 200000 --store sqlite
    python benchmarks/bench_wellbeing_input.py --families 200000 --store postgres

Generates a region into a store of its own once (kept for later runs), scores it with both
shipped methodologies for the period, then times, each on its own:

- reading the scoring runs valid for the period (one query per run) and turning them into the
  engine's facts for every person of the registry snapshot;
- a stored rules run of `packs/kz_local_pilot` (reads the category) against the same pack
  without the category condition (reads nothing of it): the input's marginal cost end to end;
- a segment campaign (level E with no working adult) inviting its families: offers, outbox
  messages and cases written.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_rules_e2e import store_url

from socialcard.core.db import build_engine, session_scope
from socialcard.core.logging import configure_logging
from socialcard.core.migrate import upgrade
from socialcard.outreach import service as outreach_service
from socialcard.outreach.schemas import SegmentCreate
from socialcard.registry import snapshot as registry_snapshot
from socialcard.registry.population.loader import generate_population
from socialcard.rules import service as rules_service
from socialcard.rules.engine import Period, load_pack
from socialcard.security import service as security_service
from socialcard.security.enums import Purpose
from socialcard.wellbeing import inputs
from socialcard.wellbeing import service as wellbeing_service

ROOT = Path(__file__).resolve().parent.parent
PILOT = ROOT / "packs" / "kz_local_pilot"


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (5 min {five:.2f})"


def _without_category(folder: Path) -> Path:
    """The pilot pack with its category condition removed (reads no well-being)."""
    shutil.copy(PILOT / "pack.yaml", folder / "pack.yaml")
    text_ = (PILOT / "housing_aid.yaml").read_text(encoding="utf-8")
    start = text_.index("      not_high_wellbeing:")
    (folder / "housing_aid.yaml").write_text(text_[:start], encoding="utf-8")
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--families", type=int, default=200_000)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--period", default="2026-03")
    parser.add_argument("--region", default="350000000", help="KATO of the generated region")
    args = parser.parse_args()
    configure_logging("WARNING")
    url, fresh = store_url(args.store, args.families, "sc_wellbeing_input")
    os.environ["SOCIALCARD_DATABASE_URL"] = url
    engine = build_engine(url)
    upgrade(engine)
    period = Period.parse(args.period)
    if fresh:
        _, wall, _ = _timed(
            lambda: generate_population(
                engine, families=args.families, seed=3, region=args.region, as_of=period.end
            )
        )
        print(f"generated {args.families:,} families in {wall:.1f} s")
        for mid in ("kz.wellbeing.cks_2023", "kz.wellbeing.scoring_2025"):
            with session_scope() as session:
                run, wall, _ = _timed(
                    lambda m=mid, s=session: wellbeing_service.score_registry(
                        s,
                        database_url=url,
                        methodology=wellbeing_service.load(m),
                        period=args.period,
                    )
                )
            print(f"scored {mid}: run {run.id}, {run.families:,} families in {wall:.1f} s")
    print(f"{args.store}, {args.families:,} families, {args.period}; {_load()}")
    pilot = load_pack(PILOT)
    person, _ = registry_snapshot.registry_snapshot(url, period)
    with session_scope() as session:
        scored, read_wall, read_cpu = _timed(
            lambda: inputs.rule_input(session, [period], compiled=pilot)
        )
        facts, facts_wall, facts_cpu = _timed(lambda: scored.facts(person))
    rows = sum(t.num_rows for t in scored.results.values())
    print(
        f"input: runs {scored.run_ids}, {rows:,} results read in {read_wall:.2f} s"
        f" (CPU {read_cpu:.2f}); {facts.num_rows:,} facts for {person.num_rows:,} persons in"
        f" {facts_wall:.2f} s (CPU {facts_cpu:.2f})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        plain = _without_category(Path(tmp))
        for label, pack in (("without the category", plain), ("with the category", PILOT)):
            with session_scope() as session:
                run, wall, cpu = _timed(
                    lambda p=pack, s=session: rules_service.run_rules(
                        s, period=args.period, pack_path=p
                    )
                )
            print(
                f"rules run {label}: {wall:.2f} s wall (CPU {cpu:.2f}): {run.seconds};"
                f" {run.eligible:,} eligible of {run.families:,} families"
            )
    actor = security_service.system_actor("bench")
    with session_scope() as session:
        if "bench_e_no_work" not in {s.code for s in outreach_service.list_segments(session)}:
            outreach_service.create_segment(
                session,
                payload=SegmentCreate(
                    code="bench_e_no_work",
                    title="E, no working adult",
                    methodology_id="kz.wellbeing.cks_2023",
                    levels=["E"],
                    indicators=["no_working_adult"],
                ),
                actor=actor,
            )
    with session_scope() as session:
        result, wall, cpu = _timed(
            lambda: outreach_service.start_campaign(
                session, code="bench_e_no_work", actor=actor, purpose=Purpose.CASE_REVIEW
            )
        )
    print(
        f"segment campaign: {result.families:,} families, {result.invited:,} invited,"
        f" {result.messages:,} SMS queued, {result.cases_opened:,} cases in {wall:.2f} s"
        f" (CPU {cpu:.2f}); again (nothing new) follows"
    )
    with session_scope() as session:
        again, wall, _ = _timed(
            lambda: outreach_service.start_campaign(
                session, code="bench_e_no_work", actor=actor, purpose=Purpose.CASE_REVIEW
            )
        )
    print(f"segment campaign again: {again.invited} invited in {wall:.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB; {_load()}")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
