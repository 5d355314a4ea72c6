"""Driving the pages over HTTP in tests: a signed-in browser (``Pages``: cookies, CSRF token), the ``site``
fixture (app, worker and CaseDriver on the time-skipping server; registered in tests/conftest.py), rows to check."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlmodel import Session, select

from safeguarding.tables import AuditEntry, Task, User
from tests.support.workflow_driver import CaseDriver, running_worker
from web.app import create_app

PASSWORD = "demo-password"
LEAD = "rv-business-manager@demo.test"  # partnership lead, Riverford and Vale
DCS = "rv-la-dcs@demo.test"  # notifying role member (does the notification task)
NE_LEAD = "ne-business-manager@demo.test"
PANEL = "panel@demo.test"
HX = {"HX-Request": "true"}
SCRIPT = "<script>alert(1)</script>"


def visible(html: str) -> str:
    """The text a person reads (tags and their attributes, such as link addresses, removed)."""
    return re.sub(r"<[^>]+>", " ", html)


def token_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


class Pages:
    """One browser: an httpx client with its own cookie jar, speaking to the ASGI app."""

    def __init__(self, app):
        self.app = app
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                        base_url="http://testserver",
                                        follow_redirects=False)
        self.token = ""

    async def get(self, url: str, **kw) -> httpx.Response:
        response = await self.client.get(url, **kw)
        if 'name="csrf_token"' in response.text:
            self.token = token_of(response.text)
        return response

    async def post(self, url: str, data: dict | None = None, *, token: bool = True, **kw) -> httpx.Response:
        data = dict(data or {})
        if token:
            data["csrf_token"] = self.token
        return await self.client.post(url, data=data, **kw)

    async def sign_in(self, email: str, password: str = PASSWORD, next_path: str = "/") -> httpx.Response:
        await self.get("/sign-in")
        response = await self.post("/sign-in", {"email": email, "password": password, "next": next_path})
        if response.status_code == 303:
            await self.get(response.headers["location"])  # pick up the signed-in session's token
        return response

    async def close(self):
        await self.client.aclose()


@pytest.fixture
async def site(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        app = create_app(settings, engine=seeded_engine, temporal_client=time_env.client, connect_temporal=False)
        browsers: list[Pages] = []

        def browser() -> Pages:
            browsers.append(Pages(app))
            return browsers[-1]

        driver = CaseDriver(time_env, seeded_engine, settings)
        yield browser, driver
        for b in browsers:
            await b.close()


def user(engine, email: str) -> User:
    with Session(engine) as session:
        return session.exec(select(User).where(User.email == email)).one()


def audit_actions(engine, action: str) -> list[AuditEntry]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def task_row(engine, case_id: str, key: str) -> Task:
    with Session(engine) as session:
        return session.get(Task, f"{case_id}/{key}")

