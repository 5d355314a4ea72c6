"""Password guessing (issue 15, point 2): every password check is throttled, the sign-in page's and HTTP Basic's on
the API, per email address and per client address (``limits``); and proxy headers count only from a trusted proxy,
so a spoofed X-Forwarded-For cannot reset the per-client count and X-Forwarded-Proto cannot make the cookie Secure."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlmodel import Session, select

from safeguarding.tables import AuditEntry
from sgflow.seed import DEMO_PASSWORD
from web.app import create_app
from web.auth import EMAIL_LIMIT, IP_LIMIT

DCS = "rv-la-dcs@demo.test"
LEAD = "rv-business-manager@demo.test"


def make_app(seeded_engine, settings, **changes):
    return create_app(settings.model_copy(update=changes), engine=seeded_engine, temporal_client=None,
                      connect_temporal=False)


def client(app, peer: str = "203.0.113.7", scheme: str = "http") -> httpx.AsyncClient:
    """A client whose TCP peer address is ``peer`` (what uvicorn puts in the ASGI scope)."""
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://testserver")


async def page_sign_in(c: httpx.AsyncClient, email: str, password: str, headers: dict | None = None):
    form = await c.get("/sign-in", headers=headers)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    return await c.post("/sign-in", data={"email": email, "password": password, "csrf_token": token},
                        headers=headers)


async def test_forty_wrong_basic_passwords_then_the_right_one_is_refused(seeded_engine, settings):
    app = make_app(seeded_engine, settings)
    async with client(app) as c:
        statuses = [(await c.get("/api/tasks", auth=(DCS, f"guess-{n}"))).status_code for n in range(40)]
        assert statuses[:EMAIL_LIMIT.amount] == [401] * EMAIL_LIMIT.amount
        assert set(statuses[EMAIL_LIMIT.amount:]) == {429}  # refused without checking the password
        right = await c.get("/api/tasks", auth=(DCS, DEMO_PASSWORD))
        assert right.status_code == 429
        assert 0 < int(right.headers["retry-after"]) <= EMAIL_LIMIT.get_expiry()
        error = right.json()["error"]
        assert error["status"] == 429 and error["code"] == "too_many_requests" and "wait" in error["message"]
        # the lock-out is on that address: a colleague on another machine still gets in
        async with client(app, peer="198.51.100.20") as other:
            assert (await other.get("/api/tasks", auth=(LEAD, DEMO_PASSWORD))).status_code == 200


async def test_forty_wrong_passwords_on_the_sign_in_page_then_the_right_one_is_refused(seeded_engine, settings):
    app = make_app(seeded_engine, settings)
    async with client(app) as c:
        statuses = [(await page_sign_in(c, DCS, f"guess-{n}")).status_code for n in range(40)]
        assert statuses[:EMAIL_LIMIT.amount] == [422] * EMAIL_LIMIT.amount and set(statuses[5:]) == {429}
        right = await page_sign_in(c, DCS, DEMO_PASSWORD)
        assert right.status_code == 429 and "tried to sign in too many times" in right.text
        assert int(right.headers["retry-after"]) > 0
        assert (await c.get("/tasks")).status_code == 303  # not signed in
    # the page and the API share the count: guesses on one lock the other
    async with client(app, peer="198.51.100.30") as api:
        assert (await api.get("/api/tasks", auth=(DCS, DEMO_PASSWORD))).status_code == 429


async def test_a_spoofed_forwarded_for_cannot_reset_the_per_client_count(seeded_engine, settings):
    app = make_app(seeded_engine, settings)  # no trusted proxy (the default)
    async with client(app, peer="203.0.113.50") as c:
        for n in range(IP_LIMIT.amount):  # a different address each time, so only the per-client count grows
            spoof = {"X-Forwarded-For": f"10.9.{n}.{n}"}
            response = await c.get("/api/tasks", auth=(f"nobody{n}@example.test", "x"), headers=spoof)
            assert response.status_code == 401
        fresh = {"X-Forwarded-For": "10.200.200.200"}
        assert (await c.get("/api/tasks", auth=(LEAD, DEMO_PASSWORD), headers=fresh)).status_code == 429
        assert (await page_sign_in(c, LEAD, DEMO_PASSWORD, headers=fresh)).status_code == 429
    async with client(app, peer="203.0.113.51") as elsewhere:  # another real client is not affected
        assert (await elsewhere.get("/api/tasks", auth=(LEAD, DEMO_PASSWORD))).status_code == 200


def audited_ips(engine) -> list[str]:
    """The client address each failed sign-in was audited with."""
    with Session(engine) as session:
        details = session.exec(select(AuditEntry.detail).where(AuditEntry.action == "sign_in")
                               .order_by(AuditEntry.id)).all()
    return [re.search(r"ip=(\S+)", d).group(1) for d in details]


async def test_proxy_headers_count_only_from_a_trusted_proxy(seeded_engine, settings):
    spoofed = {"X-Forwarded-For": "192.0.2.99", "X-Forwarded-Proto": "https"}
    untrusted = make_app(seeded_engine, settings)
    async with client(untrusted, peer="203.0.113.60") as c:
        page = await c.get("/sign-in", headers=spoofed)
        assert "secure" not in page.headers["set-cookie"].lower()  # not believed to be https
        assert "strict-transport-security" not in page.headers
        await page_sign_in(c, DCS, "wrong", headers=spoofed)
    trusted = make_app(seeded_engine, settings, trusted_proxies="10.0.0.0/8, 203.0.113.61")
    async with client(trusted, peer="203.0.113.61") as c:
        page = await c.get("/sign-in", headers=spoofed)
        assert "; Secure" in page.headers["set-cookie"] and "strict-transport-security" in page.headers
        c.cookies.clear()  # (a Secure cookie is not sent back over this test's plain-http transport)
        await page_sign_in(c, DCS, "wrong", headers={"X-Forwarded-For": "192.0.2.99"})
    async with client(trusted, peer="203.0.113.62") as c:  # the same app, but not from its proxy
        page = await c.get("/sign-in", headers=spoofed)
        assert "secure" not in page.headers["set-cookie"].lower()
        await page_sign_in(c, DCS, "wrong", headers=spoofed)
    # the audit log holds the real client: the TCP peer, unless the peer is a trusted proxy
    assert audited_ips(seeded_engine) == ["203.0.113.60", "192.0.2.99", "203.0.113.62"]


async def test_the_per_client_count_follows_the_address_a_trusted_proxy_gives(seeded_engine, settings):
    app = make_app(seeded_engine, settings, trusted_proxies="127.0.0.1")
    async with client(app, peer="127.0.0.1") as proxy:
        for n in range(IP_LIMIT.amount):
            await proxy.get("/api/tasks", auth=(f"nobody{n}@example.test", "x"),
                            headers={"X-Forwarded-For": "198.51.100.1"})
        locked = await proxy.get("/api/tasks", auth=(LEAD, DEMO_PASSWORD), headers={"X-Forwarded-For": "198.51.100.1"})
        assert locked.status_code == 429
        other = await proxy.get("/api/tasks", auth=(LEAD, DEMO_PASSWORD), headers={"X-Forwarded-For": "198.51.100.2"})
        assert other.status_code == 200  # behind the proxy, each real client has its own count


def test_a_bad_trusted_proxy_setting_is_named(settings, seeded_engine):
    with pytest.raises(ValueError, match="SGFLOW_TRUSTED_PROXIES: ‘not-an-ip’"):
        make_app(seeded_engine, settings, trusted_proxies="10.0.0.1, not-an-ip")
