"""Request size (issue 15, point 4): an oversized JSON or form body is refused with 413, in the one error shape,
before the app parses it or authenticates its sender; whether its size is declared (Content-Length) or not
(chunked). The app stops reading at the limit (counted here at the ASGI ``receive``), and nothing was done."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlmodel import Session, func, select

from safeguarding.tables import ArrangementsVersion, AuditEntry
from sgflow.seed import DEMO_PASSWORD
from web.app import create_app
from web.security import UPLOAD_ROUTES

LEAD = ("rv-business-manager@demo.test", DEMO_PASSWORD)
CHUNK = 64 * 1024
HUNDRED_MB = 100 * 1024 * 1024


@pytest.fixture
def app(seeded_engine, settings):
    return create_app(settings, engine=seeded_engine, temporal_client=None, connect_temporal=False)


def counts(engine) -> tuple[int, int]:
    with Session(engine) as session:
        return (session.exec(select(func.count()).select_from(ArrangementsVersion)).one(),
                session.exec(select(func.count()).select_from(AuditEntry)).one())


async def call(app, method: str, path: str, headers: dict[str, str], total: int, chunk: int = CHUNK):
    """Send ``total`` bytes as a stream of ``chunk``-byte messages straight to the ASGI app; returns
    (status, JSON or text of the answer, bytes the app took from receive())."""
    handed = 0
    sent_status: list[int] = []
    body: list[bytes] = []

    async def receive():
        nonlocal handed
        if handed >= total:
            return {"type": "http.disconnect"}
        piece = min(chunk, total - handed)
        handed += piece
        return {"type": "http.request", "body": b"{" + b"a" * (piece - 1) if handed == piece else b"a" * piece,
                "more_body": handed < total}

    async def send(message):
        if message["type"] == "http.response.start":
            sent_status.append(message["status"])
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()] + [(b"host", b"testserver")],
             "client": ("203.0.113.9", 50000), "server": ("testserver", 80)}
    await app(scope, receive, send)
    text = b"".join(body).decode("utf-8", "replace")
    try:
        answer = json.loads(text)
    except ValueError:
        answer = text
    return sent_status[0], answer, handed


async def test_an_unauthenticated_chunked_100_mb_json_body_is_refused_at_the_limit(app, seeded_engine, settings):
    before = counts(seeded_engine)
    status, answer, handed = await call(app, "POST", "/api/partnerships/riverford-and-vale/arrangements",
                                        {"content-type": "application/json", "transfer-encoding": "chunked"},
                                        HUNDRED_MB)
    assert status == 413
    assert answer["error"]["status"] == 413 and answer["error"]["code"] == "too_large"
    assert "1,024 KB" in answer["error"]["message"]
    assert handed <= settings.max_json_kb * 1024 + CHUNK  # stopped reading at the limit, not after 100 MB
    assert counts(seeded_engine) == before  # nothing stored, nothing audited


async def test_a_declared_oversized_body_is_refused_before_a_byte_is_read(app, seeded_engine):
    before = counts(seeded_engine)
    status, answer, handed = await call(app, "POST", "/api/arrangements/validate",
                                        {"content-type": "application/json", "content-length": str(HUNDRED_MB)},
                                        HUNDRED_MB)
    assert status == 413 and answer["error"]["code"] == "too_large" and handed == 0
    # the same with (valid) credentials: refused before they are even checked
    import base64

    basic = "Basic " + base64.b64encode(f"{LEAD[0]}:{LEAD[1]}".encode()).decode()
    status, answer, handed = await call(app, "POST", "/api/partnerships/riverford-and-vale/arrangements",
                                        {"content-type": "application/json", "content-length": str(2 * 1024 * 1024),
                                         "authorization": basic}, 2 * 1024 * 1024)
    assert status == 413 and handed == 0
    assert counts(seeded_engine) == before


async def test_an_oversized_form_to_a_page_is_refused_with_the_error_page(app, seeded_engine):
    before = counts(seeded_engine)
    status, answer, handed = await call(app, "POST", "/sign-in",
                                        {"content-type": "application/x-www-form-urlencoded",
                                         "transfer-encoding": "chunked"}, HUNDRED_MB)
    assert status == 413 and "What you sent is too large" in answer and handed <= 1024 * 1024 + CHUNK
    # a JSON body under the limit still works (and is parsed as usual)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        response = await c.post("/api/arrangements/validate", content=b"{not json", auth=LEAD,
                                headers={"content-type": "application/json"})
        assert response.status_code == 422
    assert counts(seeded_engine)[0] == before[0]


async def test_an_upload_streams_to_its_own_limit_and_no_further(app, settings):
    limit = settings.max_upload_mb * 1024 * 1024
    headers = {"content-type": "multipart/form-data; boundary=xyz", "transfer-encoding": "chunked"}
    status, answer, handed = await call(app, "POST", "/api/cases/some-case/files", headers, HUNDRED_MB)
    # no credentials: refused (401) before the body is read at all
    assert status == 401 and handed == 0
    declared = {"content-type": "multipart/form-data; boundary=xyz", "content-length": str(limit + 1024 * 1024)}
    status, answer, handed = await call(app, "POST", "/api/cases/some-case/files", declared, limit + 1024 * 1024)
    assert status == 413 and handed == 0 and f"the limit is {settings.max_upload_mb} MB" in answer["error"]["message"]
    # multipart to an endpoint that takes no files: the small limit
    status, answer, handed = await call(app, "POST", "/sign-in", {**declared, "content-length": str(2 * 1024 * 1024)},
                                        2 * 1024 * 1024)
    assert status == 413 and handed == 0


def test_every_upload_route_exists():
    """web.security.UPLOAD_ROUTES names real routes (a renamed route would silently get the small limit)."""
    from web.api.arrangements import router as api_arrangements
    from web.api.cases import router as api_cases
    from web.app import page_modules

    routers = [api_arrangements, api_cases] + [m.router for m in page_modules()]
    routes = {(method, route.path) for router in routers for route in router.routes for method in route.methods}
    assert set(UPLOAD_ROUTES) <= routes
