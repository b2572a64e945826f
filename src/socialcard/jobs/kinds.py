"""What each kind of job is: who may start it, how its request is checked and recorded, its
work, and what its own records need when it stops or is resumed.

Every kind is re-runnable: a campaign commits per chunk behind unique keys, a scoring stores
a new run, a rules run is one transaction (its run row is marked failed and re-run under the
same id), the ledger check only reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from socialcard.card import service as card_service
from socialcard.core.config import get_settings
from socialcard.core.db import session_scope
from socialcard.core.errors import InvalidInput
from socialcard.jobs.models import Job
from socialcard.proactive import jobs as proactive_jobs
from socialcard.proactive import service as proactive_service
from socialcard.rules import service as rules_service
from socialcard.security.enums import Role
from socialcard.wallet import service as wallet_service
from socialcard.wellbeing import service as wellbeing_service


class Context(Protocol):
    """What a job's work sees: its request, and where it reports progress (which is also
    where a requested cancellation stops it, between chunks)."""

    job_id: int
    params: dict[str, Any]
    rules_run_id: int | None

    def progress(self, step: str, done: int, total: int | None = None) -> None: ...


@dataclass(frozen=True)
class Prepared:
    """A checked request: the job's label and parameters (and a rules run it drives)."""

    label: str
    params: dict[str, Any]
    rules_run_id: int | None = None


def _nothing(_session: Session, _job: Job) -> None:
    return None


@dataclass(frozen=True)
class Kind:
    name: str
    roles: frozenset[Role]
    prepare: Callable[[Session, dict[str, Any], str], Prepared]
    work: Callable[[Context], dict[str, Any]]
    # After the work stopped without success (failed, cancelled, interrupted).
    stopped: Callable[[Session, Job], None] = _nothing
    # Before a failed or cancelled job runs again.
    resumed: Callable[[Session, Job], None] = _nothing


# --- rules runs -----------------------------------------------------------------------------


def _rules_prepare(session: Session, params: dict[str, Any], started_by: str) -> Prepared:
    period = str(params["period"])
    months = int(params.get("months") or 1)
    programs = params.get("programs")
    run = rules_service.create_run(
        session, period=period, months=months, programs=programs, requested_by=started_by
    )
    label = f"{run.pack_id} {run.period}" + (f" +{months - 1}" if months > 1 else "")
    return Prepared(
        label, {"period": period, "months": months, "programs": programs}, rules_run_id=run.id
    )


def _rules_work(ctx: Context) -> dict[str, Any]:
    if ctx.rules_run_id is None:
        raise InvalidInput("the job has no rules run")
    with session_scope() as session:
        run = rules_service.execute_run(session, run_id=ctx.rules_run_id, progress=ctx.progress)
    return {
        "run_id": run.id,
        "families": run.families,
        "persons": run.persons,
        "decisions": run.decisions,
        "eligible": run.eligible,
    }


def _rules_stopped(session: Session, job: Job) -> None:
    if job.rules_run_id is not None:
        status = "cancelled" if job.status == "cancelled" else "failed"
        rules_service.mark_failed(
            session, run_id=job.rules_run_id, error=job.error or status, status=status
        )


def _rules_resumed(session: Session, job: Job) -> None:
    if job.rules_run_id is not None:
        rules_service.requeue_run(session, run_id=job.rules_run_id)


# --- campaigns ------------------------------------------------------------------------------


def _campaign_prepare(_session: Session, params: dict[str, Any], _by: str) -> Prepared:
    program_id, period = str(params["program_id"]), str(params["period"])
    proactive_service.check_campaign_request(program_id=program_id, period=period)
    return Prepared(f"{program_id} {period}", {"program_id": program_id, "period": period})


def _campaign_work(ctx: Context) -> dict[str, Any]:
    ctx.progress("offers", 0)
    campaign = proactive_jobs.run_campaign(
        program_id=ctx.params["program_id"],
        period=ctx.params["period"],
        progress=lambda done: ctx.progress("offers", done),
    )
    ctx.progress("offers", campaign.eligible, campaign.eligible)
    return {
        "campaign_id": campaign.id,
        "eligible": campaign.eligible,
        "offered": campaign.offered,
    }


# --- well-being scoring ---------------------------------------------------------------------


def _scoring_prepare(_session: Session, params: dict[str, Any], _by: str) -> Prepared:
    methodology, period = params.get("methodology"), str(params["period"])
    rules_service.parse_period(period)
    wellbeing_service.load(methodology, period=period)
    return Prepared(
        f"{methodology or 'default'} {period}", {"methodology": methodology, "period": period}
    )


def _scoring_work(ctx: Context) -> dict[str, Any]:
    period = ctx.params["period"]
    loaded = wellbeing_service.load(ctx.params.get("methodology"), period=period)
    with session_scope() as session:
        run = wellbeing_service.score_registry(
            session,
            database_url=get_settings().database_url,
            methodology=loaded,
            period=period,
            progress=ctx.progress,
        )
    return {"run_id": run.id, "families": run.families}


# --- the cards of everyone with a status (bulk issuance) ---------------------------------


def _cards_prepare(session: Session, params: dict[str, Any], _by: str) -> Prepared:
    period = card_service.sync_period(session, params.get("period"))
    return Prepared(f"cards {period}", {"period": period})


def _cards_work(ctx: Context) -> dict[str, Any]:
    ctx.progress("cards", 0)
    with session_scope() as session:
        result = card_service.sync_cards(
            session,
            period=ctx.params["period"],
            progress=lambda done, total: ctx.progress("cards", done, total),
        )
    return result.model_dump()


# --- the ledger check -----------------------------------------------------------------------


def _check_prepare(_session: Session, _params: dict[str, Any], _by: str) -> Prepared:
    return Prepared("wallet", {})


def _check_work(ctx: Context) -> dict[str, Any]:
    ctx.progress("check", 0, 1)
    with session_scope() as session:
        result = wallet_service.check(session)
    ctx.progress("check", 1, 1)
    return {
        "ok": result.ok,
        "problems": len(result.problems),
        "problem_list": result.problems[:100],
    }


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "rules_run",
            frozenset({Role.OPERATOR, Role.POLICY_OWNER}),
            _rules_prepare,
            _rules_work,
            stopped=_rules_stopped,
            resumed=_rules_resumed,
        ),
        Kind("campaign", frozenset({Role.OPERATOR}), _campaign_prepare, _campaign_work),
        Kind("scoring", frozenset({Role.OPERATOR}), _scoring_prepare, _scoring_work),
        Kind("card_sync", frozenset({Role.OPERATOR}), _cards_prepare, _cards_work),
        Kind("check", frozenset({Role.OPERATOR}), _check_prepare, _check_work),
    )
}


def kind(name: str) -> Kind:
    """The kind of that name (InvalidInput naming `kind` otherwise)."""
    found = KINDS.get(name)
    if found is None:
        raise InvalidInput(
            f"kind: unknown job kind {name!r}",
            details=[{"field": "kind", "reason": f"one of {', '.join(KINDS)}"}],
        )
    return found
