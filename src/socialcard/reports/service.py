"""Statistics for the console and the reports, composed from the domains' services.

The home page's figures aggregate over the whole registry; they are kept for a short while
(`_TTL`) so that a page view does not recount millions of rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from socialcard.core.clock import today
from socialcard.core.db import session_scope
from socialcard.core.errors import NotFound
from socialcard.core.logging import get_logger
from socialcard.proactive import service as proactive_service
from socialcard.proactive.config import PUBLISHED_TAKE_UP
from socialcard.proactive.schemas import CampaignRead, FunnelRow
from socialcard.proactive.templates import is_outreach
from socialcard.registry import service as registry_service
from socialcard.reports.exports import Column, Table
from socialcard.rules import service as rules_service
from socialcard.rules.schemas import RunDetail
from socialcard.wallet.funding import service as funding_service
from socialcard.wallet.vouchers import service as voucher_service
from socialcard.wallet.vouchers.catalog import load_catalog
from socialcard.wallet.vouchers.schemas import VoucherSummaryRow
from socialcard.wellbeing import service as wellbeing_service
from socialcard.wellbeing.schemas import RunRead as WellbeingRun

T = TypeVar("T")
_TTL = 30.0
_cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
_lock = threading.Lock()
_refreshing: set[tuple[Any, ...]] = set()
log = get_logger(__name__)

FUNNEL_STAGES = (
    "eligible",
    "offered",
    "delivered",
    "agreed",
    "refused",
    "lapsed",
    "assigned",
    "paid",
)


def cached(
    key: tuple[Any, ...], session: Session | None, make: Callable[[Session], T], ttl: float = _TTL
) -> T:
    """A figure computed at most once per `ttl` seconds per key (per process).

    Once a value is older than `ttl`, the page gets it at once while a thread recomputes it in
    a session of its own (stale while revalidating): an aggregate over millions of rows is never
    waited for twice. Only the first view computes in the request, in its session.
    """
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        stale = hit is not None and hit[0] <= now
        if stale and key not in _refreshing:
            _refreshing.add(key)
            threading.Thread(target=_refresh, args=(key, make, ttl), daemon=True).start()
    if hit is not None:
        return hit[1]  # type: ignore[no-any-return]
    if session is None:
        with session_scope() as own:
            value = make(own)
    else:
        value = make(session)
    with _lock:
        _cache[key] = (time.monotonic() + ttl, value)
    return value


def _refresh(key: tuple[Any, ...], make: Callable[[Session], Any], ttl: float) -> None:
    try:
        with session_scope() as session:
            value = make(session)
        with _lock:
            _cache[key] = (time.monotonic() + ttl, value)
    except Exception:  # the stale figure stays; the next view tries again
        log.exception("report_refresh_failed", key=str(key))
    finally:
        with _lock:
            _refreshing.discard(key)


def clear_cache() -> None:
    """Forget cached statistics (after a job finishes, and between tests)."""
    with _lock:
        _cache.clear()


def funnel_rows(
    session: Session, *, campaign_id: int | None = None, program_id: str | None = None
) -> list[FunnelRow]:
    """The campaigns' funnel per region (refreshed every 30 s: it counts every offer)."""
    return cached(
        ("funnel", campaign_id, program_id),
        session,
        lambda s: proactive_service.funnel(s, campaign_id=campaign_id, program_id=program_id),
    )


def voucher_summary(session: Session, *, region_digits: int = 2) -> list[VoucherSummaryRow]:
    """Vouchers by type and region (refreshed every 60 s: it reads every voucher's entries)."""
    return cached(
        ("vouchers", region_digits),
        session,
        lambda s: voucher_service.summary(s, region_digits=region_digits),
        60,
    )


def voucher_turnover(session: Session, *, region_digits: int = 2) -> list[dict[str, Any]]:
    """Turnover by month, program and region (refreshed every 60 s)."""
    return cached(
        ("turnover", region_digits),
        session,
        lambda s: voucher_service.turnover(s, region_digits=region_digits),
        60,
    )


def wellbeing_regions(session: Session, *, run_id: int) -> list[Any]:
    """Families per level and region of a run (a run's results never change: kept a day)."""
    return cached(
        ("wellbeing-regions", run_id),
        session,
        lambda s: wellbeing_service.region_counts(s, run_id=run_id),
        86_400,
    )


def current_period() -> str:
    return f"{today():%Y-%m}"


@dataclass
class ProgramKpi:
    program_id: str
    eligible: int
    receiving: int
    not_receiving: int
    amount_minor: int


@dataclass
class FunnelTotals:
    """The funnel's stages summed over regions (and campaigns)."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FUNNEL_STAGES, 0))

    def add(self, row: FunnelRow) -> None:
        for stage in FUNNEL_STAGES:
            self.counts[stage] += int(getattr(row, stage))


@dataclass
class VoucherTotals:
    issued: int = 0
    activated: int = 0
    redeemed: int = 0
    expired: int = 0
    issued_minor: int = 0
    redeemed_minor: int = 0
    expired_minor: int = 0
    remaining_minor: int = 0

    def add(self, row: VoucherSummaryRow) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + int(getattr(row, name)))


@dataclass
class HomeKpis:
    period: str
    persons: int
    families: int
    wellbeing: WellbeingRun | None
    programs: list[ProgramKpi]
    rules_run_id: int | None
    funnel: FunnelTotals
    vouchers: VoucherTotals


def latest_wellbeing_run(session: Session) -> WellbeingRun | None:
    page = wellbeing_service.list_runs(session, methodology_id=None, page=1, size=1)
    return page.items[0] if page.items else None


def latest_rules_run(session: Session, period: str | None = None) -> RunDetail | None:
    """The newest succeeded run covering the month (any month when None), with its summary."""
    if period is not None:
        run = rules_service.latest_run(session, period=period)
        return rules_service.get_run(session, run_id=run.id) if run is not None else None
    for item in rules_service.list_runs(session, page=1, size=20).items:
        if item.status == "succeeded":
            return rules_service.get_run(session, run_id=item.id)
    return None


def campaigns_of(session: Session, period: str) -> list[CampaignRead]:
    return [c for c in proactive_service.list_campaigns(session) if c.period == period]


def funnel_totals(rows: list[FunnelRow], period: str | None = None) -> FunnelTotals:
    totals = FunnelTotals()
    for row in rows:
        if period is None or row.period == period:
            totals.add(row)
    return totals


@dataclass(frozen=True)
class TakeUp:
    """Offers sent against benefits assigned without an application, for a program and region
    (None: all of them)."""

    program_id: str | None
    region_kato: str | None
    offered: int
    assigned: int
    year: int | None = None  # a published figure's year

    @property
    def share(self) -> float | None:
        """Assignments per offer; None before any offer."""
        return self.assigned / self.offered if self.offered else None


def take_up(rows: list[FunnelRow]) -> list[TakeUp]:
    """Take-up per program and region, then per program (region None), then overall (both
    None): what the published national figure is compared with (`published_take_up`)."""
    cells: dict[tuple[str | None, str | None], list[int]] = {}
    for row in rows:
        if is_outreach(row.program_id):
            continue  # an invitation to a support centre is not a benefit offer
        for key in (
            (row.program_id, row.region_kato),
            (row.program_id, None),
            (None, None),
        ):
            cell = cells.setdefault(key, [0, 0])
            cell[0] += row.offered
            cell[1] += row.assigned
    ordered = sorted(cells, key=lambda k: (k[0] is None, k[0] or "", k[1] is None, k[1] or ""))
    return [TakeUp(p, r, *cells[(p, r)]) for p, r in ordered]


def published_take_up() -> TakeUp:
    """The country's offers and assignments of the published year (REFERENCE.md §3)."""
    figure = PUBLISHED_TAKE_UP
    return TakeUp(
        None, None, int(figure["offers"]), int(figure["assignments"]), int(figure["year"])
    )


def voucher_totals(rows: list[VoucherSummaryRow]) -> VoucherTotals:
    totals = VoucherTotals()
    for row in rows:
        totals.add(row)
    return totals


def home_kpis(session: Session) -> HomeKpis:
    """The console's home figures for the current month (cached for a few seconds)."""
    period = current_period()
    return cached(("home", period), session, lambda s: _home_kpis(s, period))


def _home_kpis(session: Session, period: str) -> HomeKpis:
    counts = registry_service.registry_counts(session)
    run = latest_rules_run(session, period)
    campaigns = {c.program_id: c for c in reversed(campaigns_of(session, period))}
    programs: list[ProgramKpi] = []
    if run is not None:
        for summary in run.by_program:
            if summary.period != period:
                continue
            campaign = campaigns.get(summary.program_id)
            receiving = campaign.skipped_receiving if campaign else 0
            programs.append(
                ProgramKpi(
                    program_id=summary.program_id,
                    eligible=summary.eligible,
                    receiving=receiving,
                    not_receiving=max(summary.eligible - receiving, 0),
                    amount_minor=summary.amount_minor,
                )
            )
    return HomeKpis(
        period=period,
        persons=counts["persons"],
        families=counts["families"],
        wellbeing=latest_wellbeing_run(session),
        programs=programs,
        rules_run_id=run.id if run else None,
        funnel=funnel_totals(funnel_rows(session), period),
        vouchers=voucher_totals(voucher_summary(session, region_digits=2)),
    )


# --- programs as the pack defines them ------------------------------------------------------


@dataclass
class ParameterView:
    name: str
    title: dict[str, str]
    unit: str
    values: list[tuple[Any, Any]]


@dataclass
class ProgramView:
    id: str
    title: dict[str, str]
    legal_basis: dict[str, str]
    citation: str
    entity: str
    period: str
    versions: list[tuple[Any, str, str]]  # effective from, note, citation
    parameters: list[ParameterView]


def programs() -> list[ProgramView]:
    """The rule pack's benefit programs: versions, parameters by date and legal basis."""
    pack = rules_service.loaded_pack().compiled.pack
    out = []
    for program in pack.programs:
        if program.kind != "benefit":
            continue
        out.append(
            ProgramView(
                id=program.id,
                title=program.title,
                legal_basis=program.legal_basis,
                citation=program.citation,
                entity=str(program.entity),
                period=str(program.period),
                versions=[(v.effective_from, v.note, v.citation) for v in program.versions],
                parameters=[
                    ParameterView(
                        name=p.name,
                        title=p.title,
                        unit=p.unit,
                        values=[(day, value) for day, value in p.values],
                    )
                    for p in program.parameters.values()
                ],
            )
        )
    return out


def program_titles(lang: str) -> dict[str, str]:
    """Each program's title in a language (its id when it has none): benefits and statuses."""
    pack = rules_service.loaded_pack().compiled.pack
    return {p.id: p.title.get(lang) or p.title.get("ru") or p.id for p in pack.programs}


def simulation_parameters() -> list[tuple[str, str]]:
    """(override key, current value) of every scalar parameter a what-if may change."""
    pack = rules_service.loaded_pack().compiled.pack
    day = today()
    out: list[tuple[str, str]] = []
    owners: list[tuple[str, dict[str, Any]]] = [(pack.id, pack.parameters)]
    owners += [(p.id, p.parameters) for p in pack.programs]
    for owner, parameters in owners:
        for name, param in parameters.items():
            if param.is_table:
                continue
            value = param.value_on(day)
            out.append((f"{owner}.{name}", "" if value is None else str(value)))
    return sorted(out)


def budgets(session: Session) -> list[Any]:
    """Program budgets by region and their balances."""
    return funding_service.list_budgets(session)


# --- tables for download ----------------------------------------------------------------------


def _funnel_table(session: Session) -> Table:
    rows = [
        {**row.model_dump(), "region_kato": row.region_kato}
        for row in proactive_service.funnel(session)
    ]
    return Table(
        name="funnel",
        columns=[
            Column("campaign_id", "export.campaign"),
            Column("program_id", "col.program"),
            Column("period", "col.period"),
            Column("region_kato", "col.region"),
            *[Column(stage, f"funnel.{stage}", "count") for stage in FUNNEL_STAGES],
        ],
        rows=rows,
        suppress=True,
    )


def _take_up_table(session: Session) -> Table:
    rows = [
        {
            "program_id": t.program_id or "",
            "region_kato": t.region_kato or "",
            "offered": t.offered,
            "assigned": t.assigned,
            "share": "" if t.share is None else round(100 * t.share, 1),
        }
        for t in take_up(proactive_service.funnel(session))
    ]
    return Table(
        name="take-up",
        columns=[
            Column("program_id", "col.program"),
            Column("region_kato", "col.region"),
            Column("offered", "funnel.offered", "count"),
            Column("assigned", "funnel.assigned", "count"),
            Column("share", "campaigns.take_up_percent", "share"),
        ],
        rows=rows,
        suppress=True,
    )


def _vouchers_table(session: Session) -> Table:
    return Table(
        name="vouchers",
        columns=[
            Column("type", "col.voucher"),
            Column("region_kato", "col.region"),
            Column("issued", "wallet.issued", "count"),
            Column("activated", "wallet.activated", "count"),
            Column("redeemed", "wallet.redeemed", "count"),
            Column("expired", "wallet.expired", "count"),
            Column("issued_minor", "wallet.issued_sum", "money"),
            Column("redeemed_minor", "wallet.redeemed_sum", "money"),
            Column("remaining_minor", "wallet.remaining", "money"),
        ],
        rows=[r.model_dump() for r in voucher_service.summary(session, region_digits=4)],
        suppress=True,
    )


def _run_regions_table(session: Session, run_id: int) -> Table:
    run = rules_service.get_run(session, run_id=run_id)
    return Table(
        name=f"run-{run_id}-regions",
        columns=[
            Column("program_id", "col.program"),
            Column("period", "col.period"),
            Column("region_kato", "col.region"),
            Column("evaluated", "col.evaluated", "count"),
            Column("eligible", "col.eligible", "count"),
            Column("amount_minor", "col.monthly_cost", "money"),
        ],
        rows=[r.model_dump() for r in run.by_region],
        suppress=True,
    )


def _wellbeing_regions_table(session: Session, run_id: int) -> Table:
    run = wellbeing_service.get_run(session, run_id=run_id)
    levels = [lv.level for lv in run.levels]
    rows = [
        {"region_kato": r.region_kato or "", "families": r.families, **r.levels}
        for r in wellbeing_service.region_counts(session, run_id=run_id)
    ]
    return Table(
        name=f"wellbeing-{run_id}-regions",
        columns=[
            Column("region_kato", "col.region"),
            *[Column(level, f"export.level_{level}", "count") for level in levels],
            Column("families", "col.families", "count"),
        ],
        rows=rows,
        suppress=True,
    )


def _payments_table(session: Session, period: str) -> Table:
    return Table(
        name=f"payments-{period}",
        columns=[
            Column("program_id", "col.program"),
            Column("region_kato", "col.region"),
            Column("status", "col.status"),
            Column("orders", "export.orders", "count"),
            Column("amount_minor", "col.amount", "money"),
        ],
        rows=proactive_service.payments_by_program_region(session, period=period),
        suppress=True,
    )


def _turnover_table(session: Session) -> Table:
    return Table(
        name="turnover",
        columns=[
            Column("period", "col.period"),
            Column("program_id", "col.program"),
            Column("region_kato", "col.region"),
            Column("postings", "merchant.postings", "count"),
            Column("amount_minor", "wallet.redeemed_sum", "money"),
        ],
        rows=voucher_service.turnover(session, region_digits=4),
        suppress=True,
    )


TABLE_NAMES = (
    "funnel",
    "take-up",
    "vouchers",
    "turnover",
    "run-N-regions",
    "wellbeing-N-regions",
    "payments-YYYY-MM",
)


def table(session: Session, name: str) -> Table:
    """A downloadable table by name (see TABLE_NAMES); NotFound for any other name."""
    parts = name.split("-")
    if name == "funnel":
        return _funnel_table(session)
    if name == "take-up":
        return _take_up_table(session)
    if name == "vouchers":
        return _vouchers_table(session)
    if name == "turnover":
        return _turnover_table(session)
    if len(parts) == 3 and parts[2] == "regions" and parts[1].isdigit() and len(parts[1]) < 18:
        if parts[0] == "run":
            return _run_regions_table(session, int(parts[1]))
        if parts[0] == "wellbeing":
            return _wellbeing_regions_table(session, int(parts[1]))
    if parts[0] == "payments" and len(parts) == 3:
        period = f"{parts[1]}-{parts[2]}"
        rules_service.parse_period(period)
        return _payments_table(session, period)
    raise NotFound(f"no table {name!r}; tables: {', '.join(TABLE_NAMES)}")


def methodologies() -> list[Any]:
    """The well-being methodologies with their levels (checked once an hour, not per view)."""
    return cached(("methodologies",), None, lambda _: wellbeing_service.list_methodologies(), 3600)


def budget_voucher_types() -> dict[str, str]:
    """The wallet's budget programs that pay earmarked vouchers, each with its voucher type."""
    return {s.budget: s.voucher for s in load_catalog().decision_sources}
