"""The monthly report for a ministry as a PDF in kk, ru or en, typeset by Typst.

Typst's Python package carries its compiler and fonts (Libertinus Serif, New Computer Modern:
Cyrillic and the Kazakh letters), so the report renders the same on any machine that installed
the project with pip, and reads no system font. Every text goes into the document as a Typst
string literal, never as markup, so no value can change the layout. Aggregates by region
suppress counts below 5 as the CSV/XLSX downloads do.
"""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typst
from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.proactive import service as proactive_service
from socialcard.reports import charts
from socialcard.reports import service as reports_service
from socialcard.reports.exports import MIN_COUNT, SUPPRESSED
from socialcard.rules import service as rules_service
from socialcard.wallet.vouchers import service as voucher_service

Translate = Callable[..., str]


@dataclass
class MonthlyData:
    """What the monthly report shows."""

    period: str
    funnel: dict[str, int]
    funnel_by_region: list[tuple[str, dict[str, int]]]
    paid_by_program: list[tuple[str, int, int]]  # program, orders, tiyn
    paid_by_region: list[tuple[str, int, int]]
    vouchers: list[tuple[str, int, int, int, int, int]]  # type, issued, redeemed, expired, ...
    exceptions: list[tuple[str, str, int]]  # what, program, count


def monthly_data(session: Session, *, period: str) -> MonthlyData:
    """Gather the month's funnel, payments, vouchers and exceptions from the domains."""
    rules_service.parse_period(period)
    rows = [r for r in proactive_service.funnel(session) if r.period == period]
    totals = reports_service.funnel_totals(rows)
    regions: dict[str, reports_service.FunnelTotals] = defaultdict(reports_service.FunnelTotals)
    for row in rows:
        regions[row.region_kato].add(row)
    payments = proactive_service.payments_by_program_region(session, period=period)
    by_program: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_region: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    failed: Counter[str] = Counter()
    for p in payments:
        if p["status"] == "paid":
            by_program[p["program_id"]][0] += p["orders"]
            by_program[p["program_id"]][1] += p["amount_minor"]
            by_region[p["region_kato"]][0] += p["orders"]
            by_region[p["region_kato"]][1] += p["amount_minor"]
        elif p["status"] == "failed":
            failed[p["program_id"]] += p["orders"]
    refused: Counter[str] = Counter()
    lapsed: Counter[str] = Counter()
    for row in rows:
        refused[row.program_id] += row.refused
        lapsed[row.program_id] += row.lapsed
    exceptions = [("lapsed", k, v) for k, v in lapsed.items() if v]
    exceptions += [("refused", k, v) for k, v in refused.items() if v]
    exceptions += [("failed_payment", k, v) for k, v in failed.items() if v]
    exceptions.sort(key=lambda e: -e[2])
    vouchers: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for v in voucher_service.summary(session, region_digits=2):
        entry = vouchers[v.type]
        for i, value in enumerate(
            (v.issued, v.redeemed, v.expired, v.issued_minor, v.redeemed_minor)
        ):
            entry[i] += value
    return MonthlyData(
        period=period,
        funnel=totals.counts,
        funnel_by_region=sorted((k, t.counts) for k, t in regions.items()),
        paid_by_program=sorted(
            ((k, v[0], v[1]) for k, v in by_program.items()), key=lambda r: -r[2]
        ),
        paid_by_region=sorted((k, v[0], v[1]) for k, v in by_region.items()),
        vouchers=sorted((k, *v) for k, v in vouchers.items()),  # type: ignore[misc]
        exceptions=exceptions[:10],
    )


def _s(value: Any) -> str:
    """A Typst string literal."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{text}"'


def _count(value: int, suppress: bool) -> str:
    return SUPPRESSED if suppress and 0 < value < MIN_COUNT else str(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    align = ", ".join("left" if i < numeric_from else "right" for i in range(len(headers)))
    cells = [f"table.header({', '.join(f'strong({_s(h)})' for h in headers)})"]
    cells += [_s(cell) for row in rows for cell in row]
    return (
        f"#table(columns: {len(headers)}, align: ({align},), stroke: 0.5pt + luma(180), "
        f"inset: 5pt, {', '.join(cells)})\n"
    )


def render_monthly(data: MonthlyData, t: Any) -> bytes:
    """The report as PDF bytes; `t` is a web.i18n.Translator-like object (messages, formats)."""
    titles = reports_service.program_titles(t.lang)
    stages = list(reports_service.FUNNEL_STAGES)
    funnel_svg = charts.bars(
        title=t("report.funnel_chart"),
        categories=[t("funnel." + s) for s in stages],
        series=[charts.Series(t("campaigns.families"), [data.funnel[s] for s in stages])],
        fmt=t.number,
        chart_id="funnel",
    )
    spend_svg = charts.bars(
        title=t("report.paid_chart"),
        categories=[titles.get(p, p) for p, _, _ in data.paid_by_program] or ["—"],
        series=[
            charts.Series(t("col.amount"), [a / 100 for _, _, a in data.paid_by_program] or [0])
        ],
        fmt=lambda v: t.number(round(v)),
        chart_id="paid",
    )
    voucher_svg = charts.bars(
        title=t("wallet.chart"),
        categories=[t("voucher." + v[0]) for v in data.vouchers] or ["—"],
        series=[
            charts.Series(t("wallet.issued"), [v[1] for v in data.vouchers] or [0]),
            charts.Series(t("wallet.redeemed"), [v[2] for v in data.vouchers] or [0]),
            charts.Series(t("wallet.expired"), [v[3] for v in data.vouchers] or [0]),
        ],
        fmt=t.number,
        chart_id="vouchers",
    )
    doc = [
        '#set page(paper: "a4", margin: 18mm, numbering: "1")\n',
        '#set text(font: ("Libertinus Serif", "New Computer Modern"), size: 10pt, '
        f'lang: "{t.lang}")\n',
        "#set heading(numbering: none)\n",
        f'#text(size: 18pt, weight: "bold", {_s(t("report.title", period=data.period))})\n\n',
        f"#text(fill: luma(90), {_s(t('report.generated', at=t.datetime(utcnow())))})\n\n",
        f"#text({_s(t('report.suppression'))})\n\n",
        f"== #{_s(t('report.funnel'))}\n",
        '#image("funnel.svg", width: 100%)\n',
        _table(
            [t("col.region")] + [t("funnel." + s) for s in stages],
            [
                [kato] + [_count(counts[s], True) for s in stages]
                for kato, counts in data.funnel_by_region
            ],
        ),
        f"== #{_s(t('report.spending'))}\n",
        '#image("paid.svg", width: 100%)\n',
        _table(
            [t("col.program"), t("export.orders"), t("col.amount")],
            [[titles.get(p, p), t.number(n), t.money(a)] for p, n, a in data.paid_by_program],
        ),
        _table(
            [t("col.region"), t("export.orders"), t("col.amount")],
            [
                [k, _count(n, True), SUPPRESSED if 0 < n < MIN_COUNT else t.money(a)]
                for k, n, a in data.paid_by_region
            ],
        ),
        f"== #{_s(t('report.vouchers'))}\n",
        '#image("vouchers.svg", width: 100%)\n',
        _table(
            [
                t("col.voucher"),
                t("wallet.issued"),
                t("wallet.redeemed"),
                t("wallet.expired"),
                t("wallet.issued_sum"),
                t("wallet.redeemed_sum"),
            ],
            [
                [
                    t("voucher." + v[0]),
                    t.number(v[1]),
                    t.number(v[2]),
                    t.number(v[3]),
                    t.money(v[4]),
                    t.money(v[5]),
                ]
                for v in data.vouchers
            ],
        ),
        f"== #{_s(t('report.exceptions'))}\n",
        _table(
            [t("report.exception"), t("col.program"), t("report.count")],
            [[t("report.exc_" + w), titles.get(p, p), t.number(n)] for w, p, n in data.exceptions]
            or [[t("report.no_exceptions"), "", ""]],
            numeric_from=2,
        ),
    ]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "funnel.svg").write_text(funnel_svg, encoding="utf-8")
        (root / "paid.svg").write_text(spend_svg, encoding="utf-8")
        (root / "vouchers.svg").write_text(voucher_svg, encoding="utf-8")
        (root / "report.typ").write_text("".join(doc), encoding="utf-8")
        pdf = typst.compile(str(root / "report.typ"), root=str(root), ignore_system_fonts=True)
    assert isinstance(pdf, bytes)  # noqa: S101 - one PDF, not a list of pages
    return pdf
