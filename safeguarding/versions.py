"""Immutable, numbered versions of each partnership's arrangements, and a readable diff between two.

Storing validates first (the one validator in ``safeguarding.arrangements``), so an invalid document is
never stored. Storing a document identical to the latest version creates nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from safeguarding.arrangements import (
    ArrangementsError,
    ValidationIssue,
    canonical_json,
    content_hash,
    validate,
)
from safeguarding.tables import ArrangementsVersion, Partnership


class VersionNotFoundError(LookupError):
    pass


@dataclass(frozen=True)
class StoredVersion:
    partnership_id: str
    number: int
    content_hash: str
    author: str
    change_note: str
    created_at: datetime
    created: bool  # False when the document was identical to the latest version

    @classmethod
    def of(cls, row: ArrangementsVersion, created: bool) -> StoredVersion:
        return cls(row.partnership_id, row.number, row.content_hash, row.author, row.change_note,
                   row.created_at, created)


def _latest_row(session: Session, partnership_id: str) -> ArrangementsVersion | None:
    return session.exec(
        select(ArrangementsVersion)
        .where(ArrangementsVersion.partnership_id == partnership_id)
        .order_by(ArrangementsVersion.number.desc())
        .limit(1)
    ).first()


def store_version(session: Session, partnership_id: str, doc: dict[str, Any], *, author: str,
                  change_note: str = "") -> StoredVersion:
    """Validate ``doc`` and store it as the partnership's next version (in the caller's transaction)."""
    issues = validate(doc)
    doc_pid = (doc.get("partnership") or {}).get("id") if isinstance(doc.get("partnership"), dict) else None
    if not issues and doc_pid != partnership_id:
        issues = [ValidationIssue("/partnership/id", doc_pid,
                                  f"this document is for partnership ‘{doc_pid}’, not ‘{partnership_id}’")]
    if issues:
        raise ArrangementsError(issues)

    digest = content_hash(doc)
    latest = _latest_row(session, partnership_id)
    if latest is not None and latest.content_hash == digest:
        return StoredVersion.of(latest, created=False)

    partnership = session.get(Partnership, partnership_id)
    name = doc["partnership"]["name"]
    if partnership is None:
        session.add(Partnership(id=partnership_id, name=name))
        session.flush()
    elif partnership.name != name:
        partnership.name = name
        session.add(partnership)
    row = ArrangementsVersion(
        partnership_id=partnership_id,
        number=(latest.number + 1) if latest else 1,
        content_hash=digest,
        document=canonical_json(doc),
        author=author,
        change_note=change_note.strip(),
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # two people stored a version at the same moment
        raise ArrangementsError([ValidationIssue(
            "", None, "another version was stored at the same moment; reload and submit again")]) from exc
    return StoredVersion.of(row, created=True)


def list_versions(session: Session, partnership_id: str) -> list[ArrangementsVersion]:
    return list(session.exec(
        select(ArrangementsVersion)
        .where(ArrangementsVersion.partnership_id == partnership_id)
        .order_by(ArrangementsVersion.number.desc())
    ))


def get_version(session: Session, partnership_id: str, number: int | None = None) -> ArrangementsVersion:
    """Version ``number`` of the partnership's arrangements, or the latest when ``number`` is None."""
    if number is None:
        row = _latest_row(session, partnership_id)
    else:
        row = session.exec(select(ArrangementsVersion).where(
            ArrangementsVersion.partnership_id == partnership_id, ArrangementsVersion.number == number)).first()
    if row is None:
        which = "any arrangements" if number is None else f"arrangements version {number}"
        raise VersionNotFoundError(f"partnership ‘{partnership_id}’ has no {which}")
    return row


def document_of(row: ArrangementsVersion) -> dict[str, Any]:
    return json.loads(row.document)


# --- diff -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    path: str  # JSON Pointer in the newer document (the older one for removals)
    kind: str  # added | removed | changed
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        if self.kind == "added":
            return f"{self.path}: added {_show(self.new)}"
        if self.kind == "removed":
            return f"{self.path}: removed (was {_show(self.old)})"
        return f"{self.path}: {_show(self.old)} → {_show(self.new)}"


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "…"


def _ptr(base: str, key: str | int) -> str:
    return f"{base}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _ids(items: list[Any]) -> list[str] | None:
    """The ``id`` of every item when every item is an object with a unique id (lists like agencies, roles)."""
    ids = [item.get("id") for item in items if isinstance(item, dict)]
    if len(ids) == len(items) and all(isinstance(i, str) for i in ids) and len(set(ids)) == len(ids):
        return ids
    return None


def diff(old: Any, new: Any, path: str = "") -> list[Change]:
    """Changes from ``old`` to ``new`` as a list a person can read; lists of objects with ids match by id."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[Change] = []
        for key in sorted(old.keys() | new.keys()):
            if key not in new:
                changes.append(Change(_ptr(path, key), "removed", old=old[key]))
            elif key not in old:
                changes.append(Change(_ptr(path, key), "added", new=new[key]))
            else:
                changes.extend(diff(old[key], new[key], _ptr(path, key)))
        return changes
    if isinstance(old, list) and isinstance(new, list):
        old_ids, new_ids = _ids(old), _ids(new)
        if old_ids is not None and new_ids is not None:
            changes = []
            old_by_id = dict(zip(old_ids, old, strict=True))
            for index, (item_id, item) in enumerate(zip(new_ids, new, strict=True)):
                if item_id in old_by_id:
                    changes.extend(diff(old_by_id[item_id], item, _ptr(path, index)))
                else:
                    changes.append(Change(_ptr(path, index), "added", new=item))
            for index, item_id in enumerate(old_ids):
                if item_id not in new_ids:
                    changes.append(Change(_ptr(path, index), "removed", old=old[index]))
            if [i for i in new_ids if i in old_by_id] != [i for i in old_ids if i in new_ids]:
                changes.append(Change(path, "changed", old=old_ids, new=new_ids))
            return changes
        if old == new:
            return []
        if all(not isinstance(v, dict | list) for v in old + new):
            return [Change(path, "changed", old=old, new=new)]
        changes = []
        for index in range(max(len(old), len(new))):
            if index >= len(new):
                changes.append(Change(_ptr(path, index), "removed", old=old[index]))
            elif index >= len(old):
                changes.append(Change(_ptr(path, index), "added", new=new[index]))
            else:
                changes.extend(diff(old[index], new[index], _ptr(path, index)))
        return changes
    if old != new or type(old) is not type(new):
        return [Change(path or "/", "changed", old=old, new=new)]
    return []
