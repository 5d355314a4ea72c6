"""The FastAPI application: JSON API and (with the web UI) the pages. Built by ``create_app``."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response

from safeguarding.heap import freeze_startup_objects
from safeguarding.settings import Settings, get_settings
from web.errors import install_error_handlers

log = logging.getLogger("sgflow.web")


def install_session(app: FastAPI, settings: Settings) -> None:
    """Signed session cookie + CSRF check on every state-changing request (see ``web.session``)."""
    from web.auth import next_path_of, session_principal, sign_in_url
    from web.cases import audit
    from web.errors import error_for
    from web.session import SessionMiddleware, SignInThrottle

    def csrf_failure(request, reason: str):
        principal = None
        try:
            principal = session_principal(request)
            audit(request.app.state.engine, principal, "csrf.rejected", outcome="rejected",
                  detail=f"{request.method} {request.url.path}: token {reason}")
        except Exception:
            log.exception("could not audit a refused form")
        if reason == "expired" and principal is None and not request.url.path.startswith("/api/"):
            if request.headers.get("hx-request") == "true":
                return Response(status_code=200, headers={"HX-Redirect": sign_in_url(next_path_of(request), True)})
            return RedirectResponse(sign_in_url(next_path_of(request), True), status_code=303)
        return error_for(request, 403, "csrf_failed",
                         "The form was sent without its security token, or the token had expired, so nothing was "
                         "changed. Go back, reload the page and try again.",
                         heading="Sorry, we could not accept that form")

    def too_large(request):
        return error_for(request, 413, "too_large", "Nothing was changed: the form was over the size limit.")

    app.state.sign_in_throttle = SignInThrottle()
    app.add_middleware(SessionMiddleware, secret_key=settings.resolved_secret_key, on_csrf_failure=csrf_failure,
                       on_too_large=too_large)


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
    install_error_handlers(app)
    install_session(app, settings)
    from fastapi.staticfiles import StaticFiles

    from web.templating import STATIC_DIR, STATIC_URL

    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness: the app answers."""
        return {"status": "ok"}

    from web.api.arrangements import router as arrangements_router
    from web.api.cases import router as cases_router
    from web.pages import escalations, lead, learning, monitoring, national, reviewer, reviews

    # Routes are tried in turn on every request, so the order is the cost of finding one (the paths never overlap:
    # the API's all start with /api/; tests/test_api.py checks): the reviewer pages first (the inbox and the case
    # page are the busiest pages; before, each of their requests first tried the API's 18 routes: 5% of a case
    # page's instructions, benchmarks/pages_cpu.py), then the API, then the other pages.
    app.include_router(reviewer.router)
    app.include_router(arrangements_router)
    app.include_router(cases_router)
    for pages in (lead, national, escalations, reviews, monitoring, learning):
        app.include_router(pages.router)
    return app
