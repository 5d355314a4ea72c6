"""Report files (PDF or Word) uploaded to a case: checked, stored outside the web root, served only as downloads.

A file is checked by its content, not only its name: a PDF starts with ``%PDF-``, a .docx is a zip holding
``word/document.xml``, a .doc is an OLE2 compound file. Files are stored by their SHA-256 under
``<data dir>/files/<case>/``; the id a form records is ``<sha256>.<ext>``. Nothing uploaded is ever executed,
rendered or served inline.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from starlette.datastructures import UploadFile

from safeguarding.settings import Settings, make_private_dir
from web.errors import ApiError, FieldError

ALLOWED = {".pdf": "PDF", ".docx": "Word", ".doc": "Word"}
FILE_ID = re.compile(r"^[a-f0-9]{64}\.(pdf|docx|doc)$")
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass(frozen=True)
class StoredFile:
    file_id: str
    name: str
    size: int


def write_private_bytes(path: Path, data: bytes) -> None:
    """Write a file created 0600 from the start (never readable by others, not even for an instant)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def case_folder(settings: Settings, case_id: str) -> Path:
    return settings.data_dir.resolve() / "files" / hashlib.sha256(case_id.encode()).hexdigest()[:32]


def _bad(message: str, status: int = 422) -> ApiError:
    return ApiError(status, "invalid_file" if status == 422 else "too_large", message,
                    [FieldError(path="/file", message=message)])


def _looks_like(ext: str, head: bytes, data: bytes) -> bool:
    if ext == ".pdf":
        return head.startswith(b"%PDF-")
    if ext == ".doc":
        return head.startswith(OLE2)
    if not head.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def check_declared_size(request: Request, settings: Settings) -> None:
    """Refuse an upload whose declared size is over the limit before reading any of it."""
    declared = request.headers.get("content-length", "")
    limit = settings.max_upload_mb * 1024 * 1024
    if declared.isdecimal() and int(declared) > limit + 64 * 1024:
        raise _bad(f"the file is {int(declared) / 1024 / 1024:.1f} MB; the limit is {settings.max_upload_mb} MB", 413)


async def store(upload: UploadFile, settings: Settings, case_id: str) -> StoredFile:
    name = Path(upload.filename or "").name
    ext = Path(name).suffix.lower()
    if ext not in ALLOWED:
        raise _bad(f"‘{name or 'the file'}’ is not a PDF or Word file (.pdf, .docx or .doc)")
    limit = settings.max_upload_mb * 1024 * 1024
    buffer = bytearray()
    while chunk := await upload.read(1024 * 1024):
        buffer.extend(chunk)
        if len(buffer) > limit:
            raise _bad(f"the file is over {settings.max_upload_mb} MB; the limit is {settings.max_upload_mb} MB", 413)
    data = bytes(buffer)
    if not data:
        raise _bad("the file is empty")
    if not _looks_like(ext, data[:8], data):
        raise _bad(f"‘{name}’ does not contain a {ALLOWED[ext]} document; upload the report itself")
    digest = hashlib.sha256(data).hexdigest()
    folder = case_folder(settings, case_id)
    make_private_dir(folder.parent)  # <data dir>/files and each case's folder: 0700
    make_private_dir(folder)
    target = folder / f"{digest}{ext}"
    if not target.exists():
        temp = target.with_suffix(".part")
        write_private_bytes(temp, data)
        os.replace(temp, target)
    return StoredFile(f"{digest}{ext}", name, len(data))


def path_of(settings: Settings, case_id: str, file_id: str) -> Path | None:
    """The stored file, or None (an id that is not of our shape never touches the file system)."""
    if not FILE_ID.match(file_id):
        return None
    path = case_folder(settings, case_id) / file_id
    return path if path.is_file() else None
