"""Report pages: the list of downloads (CSV, XLSX) and the monthly PDF."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from socialcard.core.deps import DbSession
from socialcard.core.errors import InvalidInput
from socialcard.reports import exports, pdf
from socialcard.reports import service as reports_service
from socialcard.web.deps import ConsoleUser
from socialcard.web.i18n import LANGUAGES, Translator
from socialcard.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/reports")
def reports(request: Request, session: DbSession, me: ConsoleUser) -> Response:
    """Downloads of every table and the monthly report."""
    rules_run = reports_service.latest_rules_run(session)
    wellbeing_run = reports_service.latest_wellbeing_run(session)
    return render(
        request,
        "console/reports.html",
        section="reports",
        period=reports_service.current_period(),
        rules_run=rules_run,
        wellbeing_run=wellbeing_run,
    )


@router.get("/reports/monthly.pdf")
def monthly_pdf(
    request: Request,
    session: DbSession,
    me: ConsoleUser,
    period: Annotated[str, Query(max_length=7)],
    lang: Annotated[str | None, Query(max_length=2)] = None,
) -> Response:
    """The monthly PDF report in the chosen language."""
    chosen = lang if lang in LANGUAGES else getattr(request.state, "lang", "kk")
    data = pdf.monthly_data(session, period=period)
    body = pdf.render_monthly(data, Translator(chosen))
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="report-{period}-{chosen}.pdf"'},
    )


@router.get("/reports/{name}.{ext}")
def download(
    request: Request,
    session: DbSession,
    me: ConsoleUser,
    name: Annotated[str, Path(max_length=60, pattern=r"^[a-z0-9-]+$")],
    ext: Annotated[str, Path(max_length=4)],
) -> Response:
    """A table as CSV (streamed) or XLSX."""
    if ext not in ("csv", "xlsx"):
        raise InvalidInput("format: csv or xlsx", details=[{"field": "ext", "reason": "csv, xlsx"}])
    table = reports_service.table(session, name)
    table.rows = list(table.rows)  # read now, inside the request's transaction
    t = Translator(getattr(request.state, "lang", "kk"))
    disposition = {"Content-Disposition": f'attachment; filename="{name}.{ext}"'}
    if ext == "csv":
        return StreamingResponse(
            exports.csv_lines(table, t), media_type="text/csv; charset=utf-8", headers=disposition
        )
    return StreamingResponse(
        exports.xlsx_file(table, t),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers=disposition,
    )
