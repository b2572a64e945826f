"""Composes the pages' routers and installs what pages need (static files, headers, errors)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from socialcard.web import admin, auth, citizen, console, errors, kiosk, merchant, reports
from socialcard.web.security import PageHeadersMiddleware

STATIC = Path(__file__).resolve().parent / "static"


def install(app: FastAPI) -> None:
    """Add the pages to the app: routes, /static, security headers and HTML errors."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(auth.router)
    app.include_router(console.router)
    app.include_router(reports.router)
    app.include_router(citizen.router)
    app.include_router(merchant.router)
    app.include_router(kiosk.router)
    app.include_router(admin.router)
    app.add_middleware(PageHeadersMiddleware)
    errors.install(app)
