"""The FastAPI application: JSON API and (with the web UI) the pages. Built by ``create_app``."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response

from safeguarding.heap import freeze_startup_objects
from safeguarding.settings import Settings, get_settings
from web.errors import install_error_handlers

log = logging.getLogger("sgflow.web")


def install_session(app: FastAPI, settings: Settings) -> None:
    """Session cookie (server-side sessions) + CSRF check on every state-changing request (see ``web.session``)."""
    from safeguarding.audit_log import audit
    from web.auth import next_path_of, session_principal, sign_in_url
    from web.errors import error_for
    from web.session import SessionMiddleware, session_of

    def csrf_failure(request, reason: str):
        principal = None
        try:
            principal = session_principal(request)
            audit(request.app.state.engine, principal, "csrf.rejected", outcome="rejected",
                  detail=f"{request.method} {request.url.path}: token {reason}")
        except Exception:
            log.exception("could not audit a refused form")
        if principal is None and session_of(request).expired and not request.url.path.startswith("/api/"):
            if request.headers.get("hx-request") == "true":
                return Response(status_code=200, headers={"HX-Redirect": sign_in_url(next_path_of(request), True)})
            return RedirectResponse(sign_in_url(next_path_of(request), True), status_code=303)
        return error_for(request, 403, "csrf_failed",
                         "The form was sent without its security token, or the token had expired, so nothing was "
                         "changed. Go back, reload the page and try again.",
                         heading="Sorry, we could not accept that form")

    def too_large(request):
        return error_for(request, 413, "too_large", f"Nothing was changed: the form was over the size limit "
                         f"({settings.max_upload_mb} MB with files, else {settings.max_json_kb:,} KB).")

    app.add_middleware(SessionMiddleware, secret_key=settings.resolved_secret_key, on_csrf_failure=csrf_failure,
                       on_too_large=too_large)


def install_security(app: FastAPI, settings: Settings) -> None:
    """Body limits, security headers and the trusted-proxy rule (``web.security``). Added last, so they run first:
    the proxy rule outermost, then the headers (so even a 413 carries them), then the body limit."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from web.errors import error_for
    from web.security import (
        UPLOAD_ROUTES,
        BodyLimitMiddleware,
        SecurityHeadersMiddleware,
        parse_trusted_proxies,
    )

    def too_large(request, limit: int, upload: bool, declared: int | None):
        if upload:
            size = f"the upload is {declared / 1024 / 1024:.1f} MB; " if declared else ""
            message = f"Nothing was changed: {size}the limit is {settings.max_upload_mb} MB."
        else:
            message = f"Nothing was changed: the request is over the size limit of {settings.max_json_kb:,} KB."
        return error_for(request, 413, "too_large", message, look_up_user=False)

    app.add_middleware(BodyLimitMiddleware, json_limit=settings.max_json_kb * 1024,
                       upload_limit=settings.max_upload_mb * 1024 * 1024, upload_routes=UPLOAD_ROUTES,
                       on_too_large=too_large)
    app.add_middleware(SecurityHeadersMiddleware)
    trusted = parse_trusted_proxies(settings.trusted_proxies)
    if trusted:  # without any, the TCP peer is the client and the scheme is the connection's own
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted)


def create_app(settings: Settings | None = None, *, engine=None, temporal_client=None,
               connect_temporal: bool = True) -> FastAPI:
    settings = settings or get_settings()
    from safeguarding.db import make_engine

    engine = engine or make_engine(settings.resolved_database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # The thread pool that runs sync endpoints and dependencies (per process): see SGFLOW_WEB_THREADS.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.web_threads
        freeze_startup_objects()
        if app.state.temporal is None and connect_temporal:
            from safeguarding.temporal_connection import connect

            app.state.temporal = await connect(settings)
        yield

    app = FastAPI(
        title="sgflow",
        summary="Workflow engine for England's local safeguarding children partnerships",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.temporal = temporal_client
    app.state.clock = time.time  # sessions' idle and absolute expiry (tests move it on)
    from web.auth import PasswordThrottle

    app.state.password_throttle = PasswordThrottle(settings.rate_limit_storage)
    install_error_handlers(app)
    install_session(app, settings)
    install_security(app, settings)
    from fastapi.staticfiles import StaticFiles

    from web.templating import STATIC_DIR, STATIC_URL

    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness: the app answers."""
        return {"status": "ok"}

    from web.api.arrangements import router as arrangements_router
    from web.api.cases import router as cases_router
    from web.api.yearly_reports import router as yearly_reports_router

    # Routes are tried in turn on every request, so the order is the cost of finding one (the paths never overlap:
    # the API's all start with /api/; tests/test_api.py checks): the inbox and the case page first (the busiest
    # pages), then the API, then the other pages.
    busiest, rest = page_modules()[:2], page_modules()[2:]
    for pages in busiest:
        app.include_router(pages.router)
    app.include_router(arrangements_router)
    app.include_router(cases_router)
    app.include_router(yearly_reports_router)
    for pages in rest:
        app.include_router(pages.router)
    return app


PAGE_MODULES = ("inbox", "case", "sign_in", "case_list", "tasks", "national_tasks", "incidents", "lead",
                "arrangements", "national", "escalations", "escalation_forms", "reviews", "monitoring", "learning",
                "yearly_report")


def page_modules() -> list[Any]:
    """The page modules (``web.pages.<name>``, each with its ``router``), the busiest first."""
    import importlib

    return [importlib.import_module(f"web.pages.{name}") for name in PAGE_MODULES]
