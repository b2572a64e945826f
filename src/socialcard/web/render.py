"""Jinja2 templates: one environment, rendered with the request's language and session."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from socialcard.web.i18n import LANGUAGE_NAMES, LANGUAGES, Translator

TEMPLATES = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "svg"]),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.globals["LANGUAGES"] = LANGUAGES
    env.globals["LANGUAGE_NAMES"] = LANGUAGE_NAMES
    return env


def query(request: Request, **changes: Any) -> str:
    """The current query string with some parameters changed (None removes one)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params) if params else "?"


def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render a page in the request's language with the signed-in session (if any)."""
    lang = getattr(request.state, "lang", None) or "kk"
    translator = Translator(lang)
    signed_in = getattr(request.state, "signed_in", None)
    html = (
        environment()
        .get_template(template)
        .render(
            request=request,
            _=translator,
            fmt=translator,
            lang=translator.lang,
            me=signed_in,
            csrf=getattr(request.state, "csrf", None),
            path=request.url.path,
            query=lambda **changes: query(request, **changes),
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code)
