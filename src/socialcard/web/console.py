"""The operator console: home, registry, programs, campaigns, well-being, wallet, audit.

Each page parses its input, calls the same services as the JSON API and renders; reads of
personal data state a purpose, which the services write to the audit log.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from socialcard.core.deps import DbSession
from socialcard.core.errors import AppError, InvalidInput
from socialcard.jobs import service as jobs_service
from socialcard.jobs import worker as jobs_worker
from socialcard.jobs.schemas import JobRead
from socialcard.outreach import service as outreach_service
from socialcard.outreach.enums import CaseOutcome, ContactChannel
from socialcard.outreach.schemas import CaseUpdate, ContactCreate, SegmentCreate
from socialcard.proactive import service as proactive_service
from socialcard.registry import service as registry_service
from socialcard.reports import charts
from socialcard.reports import service as reports_service
from socialcard.rules import service as rules_service
from socialcard.rules.schemas import RunCreate
from socialcard.security import service as security_service
from socialcard.security.enums import Purpose
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.vouchers import service as voucher_service
from socialcard.web.deps import (
    AuditorUser,
    ConsoleUser,
    Form,
    OperatorUser,
    PolicyUser,
    actor_of,
)
from socialcard.web.i18n import Translator
from socialcard.web.render import render
from socialcard.wellbeing import service as wellbeing_service

router = APIRouter(include_in_schema=False)
IdPath = Annotated[int, Path(ge=1, le=2**62)]
PageQuery = Annotated[int, Query(ge=1, le=100_000)]
Text = Annotated[str | None, Query(max_length=100)]
Region = Annotated[str | None, Query(max_length=9, pattern=r"^\d*$")]
PAGE_SIZE = 25
PURPOSES = [p.value for p in Purpose]
E = TypeVar("E", bound=StrEnum)


def _purpose(value: str | None) -> Purpose | None:
    try:
        return Purpose(value) if value else None
    except ValueError:
        raise InvalidInput(
            "purpose: unknown", details=[{"field": "purpose", "reason": "unknown purpose"}]
        ) from None


def _translator(request: Request) -> Translator:
    return Translator(getattr(request.state, "lang", "kk"))


def _pages(total: int, page: int, size: int = PAGE_SIZE) -> dict[str, Any]:
    last = max((total + size - 1) // size, 1)
    return {"page": page, "last": last, "total": total}


# --- home ---------------------------------------------------------------------------------------


@router.get("/")
def home(request: Request, session: DbSession, me: ConsoleUser) -> Response:
    """Key figures of the month, each linking to its list."""
    kpis = reports_service.home_kpis(session)
    titles = reports_service.program_titles(_translator(request).lang)
    return render(request, "console/home.html", section="home", kpis=kpis, titles=titles)


# --- registry -----------------------------------------------------------------------------------


@router.get("/registry")
def registry(
    request: Request,
    session: DbSession,
    me: OperatorUser,
    national_id: Annotated[str | None, Query(max_length=20)] = None,
    name: Text = None,
    region: Region = None,
    purpose: Annotated[str | None, Query(max_length=30)] = None,
    page: PageQuery = 1,
) -> Response:
    """Search persons by identifier, name and region (the search itself is audited)."""
    searched = bool(national_id or name or region)
    result = None
    chosen = _purpose(purpose)
    error = None
    if searched and chosen is None:
        error = "registry.purpose_required"
    elif searched and chosen is not None:
        if name is not None and len(name.strip()) < 2:
            error = "registry.name_short"
        else:
            result = registry_service.search_persons(
                session,
                actor=actor_of(request, me),
                purpose=chosen,
                national_id=national_id or None,
                name=name.strip() if name else None,
                region=region or None,
                page=page,
                size=PAGE_SIZE,
            )
    return render(
        request,
        "console/registry.html",
        section="registry",
        regions=registry_service.list_regions(),
        purposes=PURPOSES,
        form={"national_id": national_id, "name": name, "region": region, "purpose": purpose},
        result=result,
        pager=_pages(result.total, page) if result else None,
        error=error,
    )


def _purpose_prompt(request: Request, *, what: str, target: str) -> Response:
    return render(
        request,
        "console/purpose.html",
        section="registry",
        purposes=PURPOSES,
        what=what,
        target=target,
        params=dict(request.query_params),
    )


@router.get("/registry/persons/{person_id}")
def person(
    request: Request,
    session: DbSession,
    me: OperatorUser,
    person_id: IdPath,
    purpose: Annotated[str | None, Query(max_length=30)] = None,
) -> Response:
    """A person and the facts in force; asks for the purpose first."""
    chosen = _purpose(purpose)
    if chosen is None:
        return _purpose_prompt(request, what="person", target=request.url.path)
    detail = registry_service.get_person(
        session, person_id=person_id, actor=actor_of(request, me), purpose=chosen, on=None
    )
    return render(
        request, "console/person.html", section="registry", person=detail, purpose=chosen.value
    )


@router.get("/registry/families/{family_id}")
def family(
    request: Request,
    session: DbSession,
    me: OperatorUser,
    family_id: IdPath,
    purpose: Annotated[str | None, Query(max_length=30)] = None,
) -> Response:
    """A family's card: members, facts, well-being and why, decisions explained, offers,
    assignments, payments and wallets. Asks for the purpose first; every read is audited."""
    chosen = _purpose(purpose)
    if chosen is None:
        return _purpose_prompt(request, what="family", target=request.url.path)
    actor = actor_of(request, me)
    lang = _translator(request).lang
    sheet = registry_service.get_family(
        session, family_id=family_id, actor=actor, purpose=chosen, on=None, include_past=False
    )
    try:
        # The stored result says which indicators held and their points (the why); values
        # recomputed from today's registry would cost a methodology compile per view.
        card = wellbeing_service.family_card(
            session,
            family_id=family_id,
            actor=actor,
            purpose=chosen,
            run_id=None,
            with_values=False,
        )
    except AppError:
        card = None
    period = reports_service.current_period()
    evaluation_error: str | None = None
    try:
        evaluation = rules_service.family_eligibility(
            session, family_id=family_id, period=period, actor=actor, purpose=chosen, lang=lang
        )
    except AppError as exc:
        evaluation, evaluation_error = None, exc.message
    offers = []
    wallets = []
    for member in sheet.members:
        found = proactive_service.search_offers(
            session,
            actor=actor,
            purpose=chosen,
            offer_id=None,
            person_id=member.person.id,
            program_id=None,
            campaign_id=None,
            status=None,
            region=None,
            page=1,
            size=50,
        )
        for offer in found.items:
            offers.append(
                proactive_service.offer_detail(
                    session, offer_id=offer.id, actor=actor, purpose=chosen
                )
            )
        wallet = voucher_service.citizen_wallet(session, person_id=member.person.id)
        if wallet.vouchers:
            wallets.append((member.person, wallet))
    return render(
        request,
        "console/family.html",
        section="registry",
        family=sheet,
        card=card,
        evaluation=evaluation,
        evaluation_error=evaluation_error,
        offers=offers,
        wallets=wallets,
        purpose=chosen.value,
        titles=reports_service.program_titles(lang),
        period=period,
    )


# --- programs -----------------------------------------------------------------------------------


@router.get("/programs")
def programs(
    request: Request, session: DbSession, me: ConsoleUser, page: PageQuery = 1
) -> Response:
    """Programs with versions, parameters by date and legal basis; the rules run history."""
    runs = rules_service.list_runs(session, page=page, size=PAGE_SIZE)
    return render(
        request,
        "console/programs.html",
        section="programs",
        programs=reports_service.programs(),
        runs=runs,
        pager=_pages(runs.total, page),
        period=reports_service.current_period(),
        refresh=any(r.status in ("queued", "running") for r in runs.items),
    )


@router.post("/programs/runs")
def start_run(request: Request, session: DbSession, me: PolicyUser, form: Form) -> Response:
    """Start a whole-registry rules run in the background and go to its page."""
    period = form.get("period", "")[:7]
    run = jobs_worker.start_rules_run(RunCreate(period=period), actor=actor_of(request, me))
    return RedirectResponse(f"/programs/runs/{run.id}", status_code=303)


@router.get("/programs/runs/{run_id}")
def run_detail(request: Request, session: DbSession, me: ConsoleUser, run_id: IdPath) -> Response:
    """A run's state (refreshing while it works), counts and cost by program and region."""
    run = rules_service.get_run(session, run_id=run_id)
    t = _translator(request)
    titles = reports_service.program_titles(t.lang)
    chart = None
    if run.by_program:
        rows = sorted(run.by_program, key=lambda r: -r.amount_minor)
        chart = charts.bars(
            title=t("programs.cost_chart"),
            categories=[titles.get(r.program_id, r.program_id) for r in rows],
            series=[charts.Series(t("col.monthly_cost"), [r.amount_minor / 100 for r in rows])],
            fmt=lambda v: t.number(round(v)),
            chart_id="run-cost",
        )
    return render(
        request,
        "console/run.html",
        section="programs",
        run=run,
        titles=titles,
        chart=chart,
        refresh=run.status in ("queued", "running"),
    )


@router.get("/programs/runs/{run_id}/decisions")
def decisions(
    request: Request,
    session: DbSession,
    me: ConsoleUser,
    run_id: IdPath,
    program: Annotated[str | None, Query(max_length=80)] = None,
    eligible: bool | None = None,
    region: Region = None,
    purpose: Annotated[str | None, Query(max_length=30)] = None,
    page: PageQuery = 1,
) -> Response:
    """A run's decisions, filtered by program, eligibility and region (personal data: asks
    a purpose first; every person listed is audited)."""
    chosen = _purpose(purpose)
    if chosen is None:
        return _purpose_prompt(request, what="decisions", target=request.url.path)
    found = rules_service.list_decisions(
        session,
        actor=actor_of(request, me),
        purpose=chosen,
        run_id=run_id,
        program_id=program or None,
        eligible=eligible,
        region=region or None,
        period=None,
        page=page,
        size=PAGE_SIZE,
    )
    return render(
        request,
        "console/decisions.html",
        section="programs",
        run_id=run_id,
        found=found,
        pager=_pages(found.total, page),
        form={"program": program, "eligible": eligible, "region": region},
        purpose=chosen.value,
        titles=reports_service.program_titles(_translator(request).lang),
        regions=registry_service.list_regions(),
    )


@router.get("/programs/runs/{run_id}/decisions/{family_key}/{program_id}")
def decision(
    request: Request,
    session: DbSession,
    me: ConsoleUser,
    run_id: IdPath,
    family_key: Annotated[int, Path(ge=-(2**62), le=2**62)],
    program_id: Annotated[str, Path(max_length=80)],
    person_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    period: Annotated[str | None, Query(max_length=7)] = None,
    purpose: Annotated[str | None, Query(max_length=30)] = None,
) -> Response:
    """One stored decision explained in the page's language (asks a purpose; audited)."""
    chosen = _purpose(purpose)
    if chosen is None:
        return _purpose_prompt(request, what="decisions", target=request.url.path)
    explained = rules_service.explain_decision(
        session,
        actor=actor_of(request, me),
        purpose=chosen,
        run_id=run_id,
        family_key=family_key,
        program_id=program_id,
        person_id=person_id,
        period=period,
        lang=_translator(request).lang,
    )
    return render(
        request, "console/decision.html", section="programs", d=explained, purpose=chosen.value
    )


@router.get("/programs/simulate")
def simulate_form(request: Request, me: PolicyUser) -> Response:
    """The what-if form: a parameter and a new value."""
    return render(
        request,
        "console/simulate.html",
        section="programs",
        parameters=reports_service.simulation_parameters(),
        form={"period": reports_service.current_period()},
        result=None,
    )


@router.post("/programs/simulate")
def simulate(request: Request, session: DbSession, me: PolicyUser, form: Form) -> Response:
    """Run the what-if over the registry: baseline against reform, gainers and losers."""
    t = _translator(request)
    parameter = form.get("parameter", "")[:120]
    value = form.get("value", "")[:40]
    period = form.get("period", "")[:7]
    result = rules_service.simulate_registry(
        session,
        period=period,
        overrides={parameter: value},
        sample=10,
        actor=actor_of(request, me),
        purpose=Purpose.POLICY_ANALYSIS,
    )
    titles = reports_service.program_titles(t.lang)
    changed = [d for d in result.totals if d.count_change or d.cost_change_minor]
    shown = changed or result.totals
    categories = [titles.get(d.program_id, d.program_id) for d in shown]
    count_chart = charts.bars(
        title=t("simulate.count_chart"),
        categories=categories,
        series=[
            charts.Series(t("simulate.baseline"), [d.baseline_count for d in shown]),
            charts.Series(t("simulate.reform"), [d.reform_count for d in shown]),
        ],
        fmt=t.number,
        chart_id="sim-count",
    )
    cost_chart = charts.bars(
        title=t("simulate.cost_chart"),
        categories=categories,
        series=[
            charts.Series(t("simulate.baseline"), [d.baseline_minor / 100 for d in shown]),
            charts.Series(t("simulate.reform"), [d.reform_minor / 100 for d in shown]),
        ],
        fmt=lambda v: t.number(round(v)),
        chart_id="sim-cost",
    )
    return render(
        request,
        "console/simulate.html",
        section="programs",
        parameters=reports_service.simulation_parameters(),
        form={"period": period, "parameter": parameter, "value": value},
        result=result,
        titles=titles,
        count_chart=count_chart,
        cost_chart=cost_chart,
    )


# --- campaigns ----------------------------------------------------------------------------------


@router.get("/campaigns")
def campaigns(
    request: Request,
    session: DbSession,
    me: OperatorUser,
    campaign_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    program: Annotated[str | None, Query(max_length=60)] = None,
) -> Response:
    """Campaigns, a form to start one, and the funnel per region as a chart."""
    t = _translator(request)
    titles = reports_service.program_titles(t.lang)
    rows = reports_service.funnel_rows(session, campaign_id=campaign_id, program_id=program or None)
    totals = reports_service.funnel_totals(rows)
    stages = list(reports_service.FUNNEL_STAGES)
    chart = charts.bars(
        title=t("campaigns.funnel_chart"),
        categories=[t("funnel." + s) for s in stages],
        series=[charts.Series(t("campaigns.families"), [totals.counts[s] for s in stages])],
        fmt=t.number,
        chart_id="funnel",
    )
    by_region: dict[str, reports_service.FunnelTotals] = {}
    for row in rows:
        by_region.setdefault(row.region_kato, reports_service.FunnelTotals()).add(row)
    return render(
        request,
        "console/campaigns.html",
        section="campaigns",
        take_up=[t for t in reports_service.take_up(rows) if t.region_kato is None],
        published_take_up=reports_service.published_take_up(),
        # Benefit campaigns only: a segment's invitations have their own page (/outreach).
        campaigns=[c for c in proactive_service.list_campaigns(session) if c.program_id in titles],
        chart=chart,
        totals=totals,
        by_region=sorted(by_region.items()),
        stages=stages,
        titles=titles,
        regions={r.kato: r for r in registry_service.list_regions()},
        period=reports_service.current_period(),
        form={"campaign_id": campaign_id, "program": program},
        running=_active_jobs("campaign"),
    )


@router.post("/campaigns")
def start_campaign(request: Request, me: OperatorUser, form: Form) -> Response:
    """Start a campaign in the background; its progress page refreshes until it ends."""
    program_id = form.get("program", "")[:60]
    period = form.get("period", "")[:7]
    if program_id not in reports_service.program_titles("en"):
        raise InvalidInput(
            "program: unknown", details=[{"field": "program", "reason": "unknown program"}]
        )
    rules_service.parse_period(period)
    job = jobs_worker.start(
        "campaign", {"program_id": program_id, "period": period}, actor=actor_of(request, me)
    )
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/campaigns/offers")
def offers(
    request: Request,
    session: DbSession,
    me: OperatorUser,
    purpose: Annotated[str | None, Query(max_length=30)] = None,
    status: Annotated[str | None, Query(max_length=10)] = None,
    program: Annotated[str | None, Query(max_length=60)] = None,
    region: Region = None,
    campaign_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    page: PageQuery = 1,
) -> Response:
    """Offers filtered by status, program, region and campaign (audited: asks a purpose)."""
    chosen = _purpose(purpose)
    if chosen is None:
        return _purpose_prompt(request, what="offers", target=request.url.path)
    found = proactive_service.search_offers(
        session,
        actor=actor_of(request, me),
        purpose=chosen,
        offer_id=None,
        person_id=None,
        program_id=program or None,
        campaign_id=campaign_id,
        status=status or None,
        region=region or None,
        page=page,
        size=PAGE_SIZE,
    )
    return render(
        request,
        "console/offers.html",
        section="campaigns",
        found=found,
        pager=_pages(found.total, page),
        form={"status": status, "program": program, "region": region, "purpose": chosen.value},
        titles=reports_service.program_titles(_translator(request).lang),
        regions=registry_service.list_regions(),
        statuses=["pending", "agreed", "refused", "lapsed", "cancelled"],
    )


@router.get("/jobs/{job_id}")
def job_page(request: Request, me: ConsoleUser, job_id: IdPath) -> Response:
    """A background job's progress (the page refreshes itself while the job runs)."""
    job = jobs_service.get(job_id=job_id)
    return render(
        request,
        "console/job.html",
        section="campaigns",
        job=job,
        refresh=jobs_service.is_active(job.status),
    )


def _active_jobs(kind: str) -> list[JobRead]:
    """The kind's queued or running jobs (stored: whichever process runs them)."""
    found = jobs_service.list_jobs(kind=kind, size=20).items
    return [j for j in found if jobs_service.is_active(j.status)]


def _last_wallet_check() -> dict[str, Any]:
    """The last ledger check's result and time ({} when none succeeded)."""
    job = jobs_service.latest(kind="check")
    if job is None or job.result is None:
        return {}
    result = {"ok": job.result["ok"], "problems": job.result.get("problem_list", [])}
    return {"result": result, "at": job.finished_at}


# --- well-being ---------------------------------------------------------------------------------


@router.get("/wellbeing")
def wellbeing(
    request: Request,
    session: DbSession,
    me: PolicyUser,
    run: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    """Levels by region as a chart and a region × level table; start a scoring."""
    t = _translator(request)
    runs = wellbeing_service.list_runs(session, methodology_id=None, page=1, size=20)
    current = None
    regions: list[Any] = []
    chart = None
    if run is not None:
        current = wellbeing_service.get_run(session, run_id=run)
    elif runs.items:
        current = runs.items[0]
    if current is not None:
        regions = reports_service.wellbeing_regions(session, run_id=current.id)
        levels = [lv.level for lv in current.levels]
        names = {lv.level: getattr(lv.name, t.lang, None) or lv.level for lv in current.levels}

        def region_name(row: Any) -> str:
            if row.region_name:
                return str(getattr(row.region_name, t.lang, None) or row.region_kato)
            return str(row.region_kato or "—")

        chart = charts.bars(
            title=t("wellbeing.chart"),
            categories=[region_name(r) for r in regions],
            series=[
                charts.Series(f"{lv} {names[lv]}", [r.levels.get(lv, 0) for r in regions])
                for lv in levels
            ],
            fmt=t.number,
            stacked=True,
            chart_id="levels",
        )
    return render(
        request,
        "console/wellbeing.html",
        section="wellbeing",
        runs=runs,
        current=current,
        regions=regions,
        chart=chart,
        methodologies=reports_service.methodologies(),
        period=reports_service.current_period(),
        running=_active_jobs("scoring"),
    )


@router.post("/wellbeing")
def start_scoring(request: Request, me: OperatorUser, form: Form) -> Response:
    """Score every family for a month in the background."""
    methodology = form.get("methodology") or None
    period = form.get("period", "")[:7]
    rules_service.parse_period(period)
    job = jobs_worker.start(
        "scoring", {"methodology": methodology, "period": period}, actor=actor_of(request, me)
    )
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/wellbeing/{run_id}/families")
def wellbeing_families(
    request: Request,
    session: DbSession,
    me: OperatorUser,
    run_id: IdPath,
    level: Annotated[str | None, Query(max_length=4)] = None,
    region: Region = None,
    purpose: Annotated[str | None, Query(max_length=30)] = None,
    page: PageQuery = 1,
) -> Response:
    """The families of a level (and region); audited, so a purpose is asked first."""
    chosen = _purpose(purpose)
    if chosen is None:
        return _purpose_prompt(request, what="families", target=request.url.path)
    found = wellbeing_service.list_families(
        session,
        run_id=run_id,
        actor=actor_of(request, me),
        purpose=chosen,
        level=level or None,
        region=region or None,
        page=page,
        size=PAGE_SIZE,
    )
    return render(
        request,
        "console/wellbeing_families.html",
        section="wellbeing",
        found=found,
        pager=_pages(found.total, page),
        purpose=chosen.value,
    )


@router.get("/wellbeing/{run_id}/changes")
def wellbeing_changes(
    request: Request,
    session: DbSession,
    me: OperatorUser,
    run_id: IdPath,
    purpose: Annotated[str | None, Query(max_length=30)] = None,
    page: PageQuery = 1,
) -> Response:
    """Level changes since the previous run of the same methodology."""
    chosen = _purpose(purpose)
    if chosen is None:
        return _purpose_prompt(request, what="families", target=request.url.path)
    found = wellbeing_service.level_changes(
        session,
        run_id=run_id,
        actor=actor_of(request, me),
        purpose=chosen,
        page=page,
        size=PAGE_SIZE,
    )
    return render(
        request,
        "console/wellbeing_changes.html",
        section="wellbeing",
        found=found,
        pager=_pages(found.total, page),
        purpose=chosen.value,
        run_id=run_id,
    )


# --- outreach -----------------------------------------------------------------------------------


@router.get("/outreach")
def outreach(request: Request, session: DbSession, me: OperatorUser) -> Response:
    """Segments with their funnels (counts only) and a form to invite each one."""
    segments = outreach_service.list_segments(session)
    funnels = {s.code: outreach_service.funnel(session, code=s.code) for s in segments}
    return render(
        request,
        "console/outreach.html",
        section="outreach",
        methodologies=wellbeing_service.list_methodologies(),
        segments=segments,
        funnels=funnels,
        purposes=PURPOSES,
        outcomes=[o.value for o in CaseOutcome],
    )


@router.post("/outreach")
def create_segment(request: Request, session: DbSession, me: OperatorUser, form: Form) -> Response:
    """Define a segment from the form (a bad criterion answers an error page naming it)."""

    def listed(name: str) -> list[str]:
        return [v.strip() for v in form.get(name, "").split(",") if v.strip()]

    try:
        payload = SegmentCreate(
            code=form.get("code", "").strip(),
            title=form.get("title", "").strip(),
            methodology_id=form.get("methodology_id") or None,
            levels=listed("levels"),
            region=form.get("region") or None,
            indicators=listed("indicators"),
            worsened=form.get("worsened") == "on",
            condition=form.get("condition", "").strip() or None,
        )
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "reason": e["msg"]}
            for e in exc.errors()
        ]
        raise InvalidInput(
            "; ".join(f"{e['field']}: {e['reason']}" for e in errors), details=errors
        ) from None
    outreach_service.create_segment(session, payload=payload, actor=actor_of(request, me))
    return RedirectResponse("/outreach", status_code=303)


@router.post("/outreach/{code}/campaigns")
def outreach_campaign(
    request: Request,
    session: DbSession,
    me: OperatorUser,
    form: Form,
    code: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{1,39}$")],
) -> Response:
    """Invite a segment's families of the newest scoring run (audited with the given purpose)."""
    chosen = _purpose(form.get("purpose"))
    if chosen is None:
        raise InvalidInput(
            "purpose: required", details=[{"field": "purpose", "reason": "choose a purpose"}]
        )
    outreach_service.start_campaign(session, code=code, actor=actor_of(request, me), purpose=chosen)
    return RedirectResponse("/outreach", status_code=303)


@router.get("/outreach/cases")
def outreach_cases(
    request: Request,
    session: DbSession,
    me: OperatorUser,
    segment: Annotated[str | None, Query(max_length=40)] = None,
    outcome: Annotated[str | None, Query(max_length=20)] = None,
    purpose: Annotated[str | None, Query(max_length=30)] = None,
    page: PageQuery = 1,
) -> Response:
    """The families' cases (audited, so a purpose is asked first)."""
    chosen = _purpose(purpose)
    if chosen is None:
        return _purpose_prompt(request, what="families", target=request.url.path)
    found = outreach_service.list_cases(
        session,
        actor=actor_of(request, me),
        purpose=chosen,
        segment_code=segment or None,
        outcome=_choice(CaseOutcome, outcome, "outcome"),
        page=page,
        size=PAGE_SIZE,
    )
    return render(
        request,
        "console/outreach_cases.html",
        section="outreach",
        found=found,
        pager=_pages(found.total, page),
        purpose=chosen.value,
    )


@router.get("/outreach/cases/{case_id}")
def outreach_case(
    request: Request,
    session: DbSession,
    me: OperatorUser,
    case_id: IdPath,
    purpose: Annotated[str | None, Query(max_length=30)] = None,
) -> Response:
    """One case with the form a worker updates it by."""
    chosen = _purpose(purpose)
    if chosen is None:
        return _purpose_prompt(request, what="families", target=request.url.path)
    case = outreach_service.get_case(
        session, case_id=case_id, actor=actor_of(request, me), purpose=chosen
    )
    return render(
        request,
        "console/outreach_case.html",
        section="outreach",
        case=case,
        purpose=chosen.value,
        outcomes=[o.value for o in CaseOutcome],
        channels=[c.value for c in ContactChannel],
    )


@router.post("/outreach/cases/{case_id}")
def update_outreach_case(
    request: Request, session: DbSession, me: OperatorUser, form: Form, case_id: IdPath
) -> Response:
    """Record a worker, a contact, the outcome or the next review (audited)."""
    chosen = _purpose(form.get("purpose"))
    if chosen is None:
        raise InvalidInput(
            "purpose: required", details=[{"field": "purpose", "reason": "choose a purpose"}]
        )
    channel = _choice(ContactChannel, form.get("channel"), "channel")
    contact = (
        ContactCreate(channel=channel, note=form.get("note", "")[:1000])
        if channel is not None
        else None
    )
    payload = CaseUpdate(
        assigned_worker=(form.get("assigned_worker") or "").strip()[:100] or None,
        contact=contact,
        outcome=_choice(CaseOutcome, form.get("outcome"), "outcome"),
        next_review_on=_day(form.get("next_review_on"), "next_review_on"),
    )
    outreach_service.update_case(
        session, case_id=case_id, payload=payload, actor=actor_of(request, me), purpose=chosen
    )
    return RedirectResponse(f"/outreach/cases/{case_id}?purpose={chosen.value}", status_code=303)


# --- wallet -------------------------------------------------------------------------------------


@router.get("/wallet")
def wallet(request: Request, session: DbSession, me: ConsoleUser) -> Response:
    """Voucher statistics, merchants, budgets and their balances, and the ledger check."""
    t = _translator(request)
    rows = reports_service.voucher_summary(session, region_digits=2)
    by_type: dict[str, reports_service.VoucherTotals] = {}
    for row in rows:
        by_type.setdefault(row.type, reports_service.VoucherTotals()).add(row)
    types = sorted(by_type)
    chart = charts.bars(
        title=t("wallet.chart"),
        categories=[t("voucher." + v) for v in types],
        series=[
            charts.Series(t("wallet.issued"), [by_type[v].issued for v in types]),
            charts.Series(t("wallet.activated"), [by_type[v].activated for v in types]),
            charts.Series(t("wallet.redeemed"), [by_type[v].redeemed for v in types]),
            charts.Series(t("wallet.expired"), [by_type[v].expired for v in types]),
        ],
        fmt=t.number,
        chart_id="vouchers",
    )
    turnover = reports_service.voucher_turnover(session, region_digits=2)
    titles = reports_service.program_titles(t.lang)
    for budget, vtype in reports_service.budget_voucher_types().items():
        titles.setdefault(budget, t("voucher." + vtype))
    periods = sorted({r["period"] for r in turnover})
    programs = sorted({r["program_id"] for r in turnover})
    sums = {(r["period"], r["program_id"]): 0 for r in turnover}
    for r in turnover:
        sums[(r["period"], r["program_id"])] += r["amount_minor"]
    turnover_chart = charts.bars(
        title=t("wallet.turnover_chart"),
        categories=periods,
        series=[
            charts.Series(titles.get(p, p), [sums.get((m, p), 0) / 100 for m in periods])
            for p in programs
        ],
        fmt=lambda v: t.number(round(v)),
        stacked=True,
        chart_id="turnover",
    )
    return render(
        request,
        "console/wallet.html",
        turnover=turnover,
        turnover_chart=turnover_chart,
        section="wallet",
        rows=rows,
        by_type=by_type,
        chart=chart,
        merchants=merchant_service.list_merchants(session),
        budgets=reports_service.budgets(session),
        check=_last_wallet_check(),
        running=_active_jobs("check"),
        titles=titles,
    )


@router.post("/wallet/check")
def start_check(request: Request, me: OperatorUser, form: Form) -> Response:
    """Run `wallet check` in the background."""
    job = jobs_worker.start("check", {}, actor=actor_of(request, me))
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


# --- audit --------------------------------------------------------------------------------------


@router.get("/audit")
def audit(
    request: Request,
    session: DbSession,
    me: AuditorUser,
    subject_type: Annotated[str | None, Query(max_length=20)] = None,
    subject_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    actor: Annotated[str | None, Query(max_length=80)] = None,
    action: Annotated[str | None, Query(max_length=60)] = None,
    purpose: Annotated[str | None, Query(max_length=30)] = None,
    date_from: Annotated[str | None, Query(max_length=10)] = None,
    date_to: Annotated[str | None, Query(max_length=10)] = None,
    page: PageQuery = 1,
) -> Response:
    """Who read whose data, when and why; newest first, filterable by subject, actor, action,
    purpose and date range."""
    chosen_purpose = _choice(Purpose, purpose, "purpose")
    rows, total = security_service.list_audit_events(
        session,
        subject_type=subject_type or None,
        subject_id=subject_id,
        actor_prefix=(actor or "").strip() or None,
        action_prefix=(action or "").strip() or None,
        purpose=chosen_purpose,
        on_or_after=_day(date_from, "date_from"),
        on_or_before=_day(date_to, "date_to"),
        offset=(page - 1) * 50,
        limit=50,
    )
    return render(
        request,
        "console/audit.html",
        section="audit",
        rows=rows,
        pager=_pages(total, page, 50),
        purposes=[p.value for p in Purpose],
        form={
            "subject_type": subject_type,
            "subject_id": subject_id,
            "actor": actor or "",
            "action": action or "",
            "purpose": chosen_purpose.value if chosen_purpose else "",
            "date_from": date_from or "",
            "date_to": date_to or "",
        },
    )


def _choice(kind: type[E], value: str | None, field: str) -> E | None:
    """An optional enum value from a filter form ("" is any); a bad one names its field."""
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise InvalidInput(
            f"{field}: not one of the choices", details=[{"field": field, "reason": "unknown"}]
        ) from None


def _day(value: str | None, field: str) -> date | None:
    """An optional ISO date from a filter form ("" is none); a bad one names its field."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field}: a date as YYYY-MM-DD", details=[{"field": field, "reason": "YYYY-MM-DD"}]
        ) from None
