"""What pages add to every answer: the language chosen for the request (and its cookie), and
the caching of downloads and static files."""

from __future__ import annotations

import contextlib
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socialcard.core.config import get_settings
from socialcard.web.i18n import LANGUAGES, negotiate

LANG_COOKIE = "sc_lang"
# The API, its documents, probes and the card's public keys and status lists (read by
# verifiers, not people).
_NOT_PAGES = (
    "/api/",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/health",
    "/consent/",
    "/status",
    "/.well-known/",
)
# The security headers of every HTML answer (CSP, no framing, no referrer, no-store) are set by
# core.http.RequestIdMiddleware; here only what pages add: downloads are not cached either,
# static files are.
_NO_STORE = [(b"cache-control", b"no-store")]
_STATIC_CACHE = [(b"cache-control", b"public, max-age=3600")]


def is_page(path: str) -> bool:
    """True for the paths the web pages own (everything but the API, its docs and probes)."""
    return not path.startswith(_NOT_PAGES) and path != "/docs"


def chosen_language(scope: Scope) -> str | None:
    """The language picked with the switcher (?lang=), if any."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    chosen = query.get("lang", [""])[0]
    return chosen if chosen in LANGUAGES else None


def request_language(scope: Scope) -> str:
    """?lang= first, then the language cookie, then Accept-Language."""
    if (chosen := chosen_language(scope)) is not None:
        return chosen
    cookie_header = b""
    accept = b""
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            cookie_header = value
        elif name == b"accept-language":
            accept = value
    if cookie_header:
        cookie: SimpleCookie = SimpleCookie()
        with contextlib.suppress(Exception):  # a malformed cookie header is ignored
            cookie.load(cookie_header.decode("latin-1"))
        morsel = cookie.get(LANG_COOKIE)
        if morsel is not None and morsel.value in LANGUAGES:
            return morsel.value
    return negotiate(accept.decode("latin-1"))


class PageHeadersMiddleware:
    """Sets the request's language, remembers a switch in a cookie, and sets the caching."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_page(scope["path"]):
            await self.app(scope, receive, send)
            return
        lang = request_language(scope)
        scope.setdefault("state", {})["lang"] = lang
        static = scope["path"].startswith("/static/")
        remember = chosen_language(scope) is not None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.extend(_STATIC_CACHE if static else _NO_STORE)
                if remember:
                    secure = "; Secure" if get_settings().web.cookie_secure else ""
                    cookie = f"{LANG_COOKIE}={lang}; Path=/; Max-Age=31536000; SameSite=Lax{secure}"
                    headers.append((b"set-cookie", cookie.encode()))
            await send(message)

        await self.app(scope, receive, send_with_headers)
