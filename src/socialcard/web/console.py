"""The operator console: home, registry, programs, campaigns, well-being, wallet, audit."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from socialcard.core.deps import DbSession
from socialcard.reports import service as reports_service
from socialcard.web.deps import ConsoleUser
from socialcard.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request, session: DbSession, me: ConsoleUser) -> Response:
    """Key figures of the month, each linking to its list."""
    kpis = reports_service.home_kpis(session)
    return render(request, "console/home.html", section="home", kpis=kpis)
