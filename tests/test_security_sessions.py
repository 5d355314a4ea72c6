"""Server-side sessions (issue 15, point 3) on SQLite and PostgreSQL: a copied cookie dies at sign-out, deactivation
and a password change; idle and absolute expiry (the app's clock moved on); polls are not use; CSRF still refused
without the token; expired rows do not pile up; and a 5 MB report uploaded without JavaScript (token in the form)."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, date, datetime

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from safeguarding.accounts import hash_password
from safeguarding.tables import AuditEntry, Case, User, WebSession
from sgflow.seed import DEMO_PASSWORD, seed_demo
from web.app import create_app
from web.session import ABSOLUTE, COOKIE_NAME, IDLE, new_signed_in_cookie

DCS = "rv-la-dcs@demo.test"
LEAD = "rv-business-manager@demo.test"


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Browser:
    def __init__(self, app):
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        self.token = ""

    async def get(self, url: str) -> httpx.Response:
        response = await self.client.get(url)
        if (match := re.search(r'name="csrf_token" value="([^"]+)"', response.text)):
            self.token = match.group(1)
        return response

    async def post(self, url: str, data: dict | None = None, **kw) -> httpx.Response:
        return await self.client.post(url, data={"csrf_token": self.token, **(data or {})}, **kw)

    async def sign_in(self, email: str, password: str = DEMO_PASSWORD) -> httpx.Response:
        await self.get("/sign-in")
        response = await self.post("/sign-in", {"email": email, "password": password})
        await self.get("/tasks")
        return response

    @property
    def cookie(self) -> str:
        return self.client.cookies[COOKIE_NAME]

    def copy(self, app) -> Browser:
        other = Browser(app)
        other.client.cookies.set(COOKIE_NAME, self.cookie)
        other.token = self.token
        return other


@pytest.fixture
async def site(engine, settings):
    list(seed_demo(engine))
    app = create_app(settings, engine=engine, temporal_client=None, connect_temporal=False)
    app.state.clock = Clock()
    browsers: list[Browser] = []

    def browser() -> Browser:
        browsers.append(Browser(app))
        return browsers[-1]

    yield app, browser
    for b in browsers:
        await b.client.aclose()


def rows(engine) -> list[WebSession]:
    with Session(engine) as session:
        return list(session.exec(select(WebSession)).scalars())


def signed_in(response: httpx.Response) -> bool:
    """A page that needs a signed-in person: 200, or a redirect to sign in."""
    assert response.status_code in (200, 303), response.status_code
    return response.status_code == 200


async def test_a_copied_cookie_is_dead_after_sign_out_and_only_a_hash_of_the_id_is_stored(site, engine):
    app, browser = site
    a = browser()
    await a.sign_in(DCS)
    thief = a.copy(app)
    assert signed_in(await thief.get("/tasks"))
    [row] = rows(engine)
    session_id = a.cookie.split(".")[1]  # "u.<id>.<timestamp>.<signature>" (itsdangerous)
    assert row.id_hash == hashlib.sha256(session_id.encode()).hexdigest() and session_id not in row.id_hash
    out = await a.post("/sign-out")
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    assert rows(engine) == []
    assert not signed_in(await thief.get("/tasks"))
    refused = await thief.post("/sign-out")  # nor can the copy do anything: its session is gone
    assert refused.status_code in (303, 403)


async def test_deactivating_the_account_or_changing_its_password_kills_every_copy(site, engine):
    app, browser = site

    def change(**values) -> None:
        with Session(engine) as session:
            account = session.exec(select(User).where(User.email == DCS)).scalar_one()
            for name, value in values.items():
                setattr(account, name, value)
            session.add(account)
            session.commit()

    a = browser()
    await a.sign_in(DCS)
    copy = a.copy(app)
    change(active=False)
    assert not signed_in(await copy.get("/tasks"))
    assert rows(engine) == []  # the session was ended for good, not only refused
    change(active=True)
    assert not signed_in(await a.get("/tasks"))  # reactivating does not bring the old session back

    b = browser()
    await b.sign_in(DCS)
    copy = b.copy(app)
    assert signed_in(await copy.get("/tasks"))
    change(password_hash=hash_password("a-new-password"))
    assert not signed_in(await copy.get("/tasks"))
    assert not signed_in(await b.get("/tasks"))


async def test_idle_and_absolute_expiry_and_polls_are_not_use(site, engine):
    app, browser = site
    clock = app.state.clock
    a = browser()
    await a.sign_in(DCS)
    clock.now += IDLE - 60
    assert signed_in(await a.get("/tasks"))  # used just before the idle limit: carries on
    clock.now += 3 * 3600  # 10 h 59 min after sign-in, 3 h after its last use
    assert signed_in(await a.get("/tasks"))
    clock.now += 62 * 60  # busy all along, but now past the absolute limit (12 h) from sign-in
    assert clock.now - rows(engine)[0].created_at > ABSOLUTE
    expired = await a.get("/tasks")
    assert not signed_in(expired) and "expired=1" in expired.headers["location"]
    assert rows(engine) == []

    b = browser()
    await b.sign_in(DCS)
    clock.now += IDLE - 60
    poll = await b.client.get("/tasks?poll=1", headers={"HX-Request": "true"})
    assert poll.status_code in (200, 204)  # the open tab still polls ...
    clock.now += 120
    assert not signed_in(await b.get("/tasks"))  # ... but that was not use: idle for over 8 hours


async def test_expired_sessions_are_swept_at_sign_in(site, engine):
    app, browser = site
    with Session(engine) as session:
        dcs = session.exec(select(User).where(User.email == DCS)).scalar_one()
    for _ in range(3):
        new_signed_in_cookie(app, dcs.id, dcs.password_hash, now=app.state.clock() - ABSOLUTE - 10)
    assert len(rows(engine)) == 3
    await browser().sign_in(LEAD)
    assert len(rows(engine)) == 1  # only the new one


async def test_a_form_without_the_token_is_still_refused(site, engine):
    _app, browser = site
    a = browser()
    await a.sign_in(DCS)
    for data in ({}, {"csrf_token": "forged"}):
        refused = await a.client.post("/sign-out", data=data)
        assert refused.status_code == 403
    assert signed_in(await a.get("/tasks")) and len(rows(engine)) == 1  # nothing was done
    with Session(engine) as session:
        refusals = session.exec(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "csrf.rejected")).scalar_one()
    assert refusals == 2
    # a token from another session does not do either
    b = browser()
    await b.sign_in(LEAD)
    assert (await a.client.post("/sign-out", data={"csrf_token": b.token})).status_code == 403


async def test_signing_in_starts_a_new_session_id(site):
    app, browser = site
    a = browser()
    await a.get("/sign-in")
    before = a.cookie  # the anonymous session that carries the sign-in form's token
    planted = a.copy(app)  # as if an attacker had planted this cookie before the victim signed in
    await a.sign_in(DCS)
    assert a.cookie.split(".")[1] != before.split(".")[1]
    assert not signed_in(await planted.get("/tasks"))


async def test_the_sign_in_form_refuses_a_field_it_does_not_have_and_stays_vague_about_credentials(site, engine):
    _app, browser = site
    a = browser()
    await a.get("/sign-in")
    empty = await a.post("/sign-in", {"email": "  ", "password": ""})
    assert empty.status_code == 422 and "Enter your email address" in empty.text and "Enter your password" in empty.text
    assert 'href="#email"' in empty.text and 'href="#password"' in empty.text
    extra = await a.post("/sign-in", {"email": DCS, "password": DEMO_PASSWORD, "is_admin": "1"})
    assert extra.status_code == 422 and "This form does not take ‘is_admin’" in extra.text
    assert not signed_in(await a.get("/tasks"))  # refused before any password was looked at
    spaced = await a.post("/sign-in", {"email": f" {DCS} ", "password": f" {DEMO_PASSWORD}"})  # the password as typed
    assert spaced.status_code == 422 and "Enter a correct email address and password" in spaced.text
    assert f'value="{DCS}"' in spaced.text  # the address is kept for another try, the password is not
    with Session(engine) as session:
        outcomes = session.exec(select(AuditEntry.outcome, AuditEntry.detail).where(
            AuditEntry.action == "sign_in")).all()
    assert [o for o, _ in outcomes] == ["rejected"] and "wrong credentials" in outcomes[0][1]
    done = await a.post("/sign-in", {"email": f" {DCS} ", "password": DEMO_PASSWORD, "next": "/cases"})
    assert done.status_code == 303 and done.headers["location"] == "/cases"


# --- a no-JavaScript upload of a 5 MB report (SQLite, seeded) ---------------------------------------------------


async def test_a_5_mb_report_uploads_without_javascript(seeded_engine, settings):
    case_id = "lcspr-riverford-and-vale-R9"
    with Session(seeded_engine) as session:
        session.add(Case(id=case_id, partnership_id="riverford-and-vale", case_ref="R9", process="lcspr",
                         national_ref="N-9", category="lcspr", status="open", arrangements_version=1,
                         aware_date=date(2026, 11, 2), opened_by="system", opened_at=datetime.now(UTC)))
        session.commit()
    app = create_app(settings, engine=seeded_engine, temporal_client=None, connect_temporal=False)
    lead = Browser(app)
    await lead.sign_in(LEAD)
    report = b"%PDF-1.7\n" + b"x" * (5 * 1024 * 1024)
    response = await lead.client.post(f"/reviews/{case_id}/report", data={"csrf_token": lead.token},
                                      files={"file": ("Final report.pdf", report, "application/pdf")})
    assert response.status_code == 303, response.text[:500]
    assert "uploaded=" in response.headers["location"]
    stored = list((settings.data_dir / "files").rglob("*.pdf"))
    assert len(stored) == 1 and stored[0].read_bytes() == report
    # and still refused without the token
    refused = await lead.client.post(f"/reviews/{case_id}/report",
                                     files={"file": ("Other.pdf", b"%PDF-1.7\n" + b"y" * 100, "application/pdf")})
    assert refused.status_code == 403
    assert len(list((settings.data_dir / "files").rglob("*.pdf"))) == 1
    await lead.client.aclose()
