"""The FastAPI application factory: composes the domains' routers, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import anyio
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from socialcard import __version__
from socialcard.card import fast as card_fast
from socialcard.card import service as card_service
from socialcard.card.router import router as card_router
from socialcard.core.config import get_settings
from socialcard.core.db import session_scope
from socialcard.core.http import (
    RequestGuard,
    RequestIdMiddleware,
    install_error_handlers,
    install_openapi,
)
from socialcard.core.logging import configure_logging
from socialcard.jobs import service as jobs_service
from socialcard.jobs.router import router as jobs_router
from socialcard.outreach.router import router as outreach_router
from socialcard.proactive import service as proactive_service
from socialcard.proactive.router import pages as proactive_pages
from socialcard.proactive.router import router as proactive_router
from socialcard.registry.ingestion.router import router as ingestion_router
from socialcard.registry.router import router as registry_router
from socialcard.rules import service as rules_service
from socialcard.rules.router import router as rules_router
from socialcard.security import deps as security_deps
from socialcard.security import keyring
from socialcard.security import service as security_service
from socialcard.security.router import router as security_router
from socialcard.wallet import deps as wallet_deps
from socialcard.wallet.redemption import fast as redemption_fast
from socialcard.wallet.router import router as wallet_router
from socialcard.web import router as web
from socialcard.wellbeing.router import router as wellbeing_router


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The rule pack is compiled before the first request rather than during it.
    await anyio.to_thread.run_sync(rules_service.warm_up)
    # Jobs a dead process left queued or running are marked failed (and resumable).
    await anyio.to_thread.run_sync(jobs_service.recover)
    # The card verifier answers from memory: keys and status lists are loaded now and
    # refreshed in the background, never on a merchant's request.
    verifier = card_service.online_verifier()
    with suppress(Exception):
        await anyio.to_thread.run_sync(_refresh_card_verifier)
    verifier.start(session_scope)
    sealer = security_service.start_audit_sealer()
    try:
        yield
    finally:
        verifier.stop()
        if sealer is not None:
            await anyio.to_thread.run_sync(sealer.stop)


def _refresh_card_verifier() -> None:
    with session_scope() as session:
        card_service.online_verifier().refresh(session)


def create_app() -> FastAPI:
    """Build the application (docs served offline at /docs, OpenAPI at /openapi.json)."""
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    # No secret is written in the source: without usable secrets the server does not start.
    keyring.check_startup()
    proactive_service.check_secrets()
    app = FastAPIOffline(
        title="socialcard",
        version=__version__,
        description="Proactive social benefits: registry, rules, campaigns, wallet, card.",
        lifespan=_lifespan,
    )
    # Outermost first: request id and security headers; the guard (address rate limit,
    # credentials before the body, body size, strict JSON); the merchants' redemption hot
    # path, which answers before the router.
    app.add_middleware(redemption_fast.FastPath)
    # The merchants' status check likewise (card/fast.py).
    app.add_middleware(card_fast.VerifyFastPath)
    app.add_middleware(
        RequestGuard,
        authenticators={
            security_deps.current_actor: security_deps.preauthenticate,
            wallet_deps.terminal_key: wallet_deps.preauthenticate,
        },
        credential_headers=("x-api-key", "authorization", "x-terminal-key", "x-signature"),
        exempt_paths=("/health",),
    )
    docs = [p for p in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url) if p]
    app.add_middleware(RequestIdMiddleware, docs_paths=docs)
    install_error_handlers(app)
    install_openapi(app, unguarded=("/health",))

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Liveness probe: answers from the event loop, whatever the database or the thread
        pool are doing."""
        return {"status": "ok"}

    app.include_router(registry_router)
    app.include_router(ingestion_router)
    app.include_router(security_router)
    app.include_router(rules_router)
    app.include_router(wellbeing_router)
    app.include_router(outreach_router)
    app.include_router(proactive_router)
    app.include_router(proactive_pages)
    app.include_router(wallet_router)
    app.include_router(card_router)
    app.include_router(jobs_router)
    # The pages last: the console owns the root URL.
    web.install(app)
    return app
