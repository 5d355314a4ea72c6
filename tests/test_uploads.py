"""Report uploads: only real PDF or Word files, within the size limit, stored outside the web root, served
only as attachments, and only to the case's own partnership."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime

import httpx
import pytest
from sqlmodel import Session, select

from safeguarding.tables import AuditEntry, Case
from sgflow.seed import DEMO_PASSWORD
from web.app import create_app
from web.uploads import path_of

LEAD = ("rv-business-manager@demo.test", DEMO_PASSWORD)
OTHER = ("ne-business-manager@demo.test", DEMO_PASSWORD)
CASE = "lcspr-riverford-and-vale-R1"


@pytest.fixture
async def api(seeded_engine, settings):
    settings.max_upload_mb = 1
    with Session(seeded_engine) as session:
        session.add(Case(id=CASE, partnership_id="riverford-and-vale", case_ref="R1", process="lcspr",
                         national_ref="N-1", category="lcspr", status="open", arrangements_version=1,
                         aware_date=date(2026, 11, 2), opened_by="system", opened_at=datetime.now(UTC)))
        session.commit()
    app = create_app(settings, engine=seeded_engine, temporal_client=None, connect_temporal=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        client.app_settings = settings
        yield client


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


async def upload(api, name: str, data: bytes, auth=LEAD):
    return await api.post(f"/api/cases/{CASE}/files", files={"file": (name, data)}, auth=auth)


async def test_a_pdf_and_a_word_file_are_stored_and_downloaded_as_attachments(api):
    pdf = b"%PDF-1.7\n" + b"x" * 1000
    response = await upload(api, "Final report.pdf", pdf)
    assert response.status_code == 201
    file_id = response.json()["file_id"]
    assert file_id.endswith(".pdf") and len(file_id) == 68
    stored = path_of(api.app_settings, CASE, file_id)
    assert stored.read_bytes() == pdf and "static" not in str(stored) and oct(stored.stat().st_mode)[-3:] == "600"
    download = await api.get(f"/api/cases/{CASE}/files/{file_id}", auth=LEAD)
    assert download.status_code == 200 and download.content == pdf
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert (await upload(api, "report.docx", docx_bytes())).status_code == 201


async def test_stored_files_and_their_folders_are_private_whatever_the_umask(api):
    """``sgflow web`` run on its own keeps the shell's umask (often 022): the files must not follow it."""
    import os

    old = os.umask(0o022)
    try:
        response = await upload(api, "Final report.pdf", b"%PDF-1.7\n" + b"y" * 500)
    finally:
        os.umask(old)
    stored = path_of(api.app_settings, CASE, response.json()["file_id"])
    assert oct(stored.stat().st_mode)[-3:] == "600"
    assert oct(stored.parent.stat().st_mode)[-3:] == "700"  # the case's folder
    assert oct(stored.parent.parent.stat().st_mode)[-3:] == "700"  # <data dir>/files


@pytest.mark.parametrize(("name", "data", "status", "words"), [
    ("setup.exe", b"MZ\x90\x00" + b"x" * 100, 422, "not a PDF or Word file"),
    ("report.pdf", b"MZ\x90\x00 a program renamed", 422, "does not contain a PDF"),
    ("report.docx", b"PK\x03\x04 not really a zip", 422, "does not contain a Word"),
    ("report.pdf", b"", 422, "empty"),
    ("report.pdf", b"%PDF-1.7\n" + b"x" * (2 * 1024 * 1024), 413, "the limit is 1 MB"),
])
async def test_bad_files_are_refused_and_nothing_is_stored(api, seeded_engine, name, data, status, words):
    response = await upload(api, name, data)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]
    folder = api.app_settings.data_dir / "files"
    assert not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))
    with Session(seeded_engine) as session:
        audit = session.exec(select(AuditEntry).where(AuditEntry.action == "file.upload")).all()
    # an upload over the size limit is refused (413) before the app reads it or authenticates its sender
    # (web.security): it never reaches the route, so nothing to audit; the others are refused by the route, audited
    assert [a.outcome for a in audit] == ([] if status == 413 else ["rejected"])


async def test_a_declared_50_mb_upload_is_refused_before_it_is_read(api):
    response = await api.post(f"/api/cases/{CASE}/files", auth=LEAD, content=b"x" * 100,
                              headers={"content-length": str(50 * 1024 * 1024),
                                       "content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and "50.0 MB" in response.json()["error"]["message"]


async def test_other_partnerships_cannot_upload_or_download(api):
    assert (await upload(api, "r.pdf", b"%PDF-1.4 x", auth=OTHER)).status_code == 404
    file_id = (await upload(api, "r.pdf", b"%PDF-1.4 x")).json()["file_id"]
    assert (await api.get(f"/api/cases/{CASE}/files/{file_id}", auth=OTHER)).status_code == 404
    assert (await api.get(f"/api/cases/{CASE}/files/..%2F..%2Fsecret_key", auth=LEAD)).status_code == 404
