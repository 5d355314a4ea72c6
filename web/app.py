"""The FastAPI application: JSON API and (with the web UI) the pages. Built by ``create_app``."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from safeguarding.settings import Settings, get_settings
from web.errors import install_error_handlers

log = logging.getLogger("sgflow.web")


def create_app(settings: Settings | None = None, *, engine=None, temporal_client=None,
               connect_temporal: bool = True) -> FastAPI:
    settings = settings or get_settings()
    from safeguarding.db import make_engine

    engine = engine or make_engine(settings.resolved_database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
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

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness: the app answers."""
        return {"status": "ok"}

    from web.api.arrangements import router as arrangements_router
    from web.api.cases import router as cases_router

    app.include_router(arrangements_router)
    app.include_router(cases_router)

    from web.pages import lead, national, reviewer

    for pages in (reviewer, lead, national):
        app.include_router(pages.router)
    return app
