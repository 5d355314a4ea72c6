"""The national views' category labels are cached per arrangements version in a bounded, thread-safe LRU cache
(cachetools, as pinned.py's versions): when it is full the least recently used version goes, not all of them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from cachetools import LRUCache
from sqlalchemy import event
from sqlmodel import Session, select

from safeguarding import national
from safeguarding.tables import ArrangementsVersion
from tests.support.read_model_rows import NE, RV


def _add_version(engine, partnership: str, number: int) -> None:
    with Session(engine) as session:
        first = session.exec(select(ArrangementsVersion).where(ArrangementsVersion.partnership_id == partnership,
                                                               ArrangementsVersion.number == 1)).one()
        session.add(ArrangementsVersion(partnership_id=partnership, number=number, content_hash=first.content_hash,
                                        document=first.document, author="test"))
        session.commit()


def test_the_labels_cache_is_bounded_and_keeps_the_recently_used(seeded_engine, monkeypatch):
    assert isinstance(national._LABELS, LRUCache) and national._LABELS.maxsize == national.CACHED_LABELS
    monkeypatch.setattr(national, "_LABELS", LRUCache(maxsize=2))
    _add_version(seeded_engine, RV, 2)
    queries: list[str] = []

    def count(conn, cursor, statement, *args):
        if "arrangements_version" in statement:
            queries.append(statement)

    event.listen(seeded_engine, "before_cursor_execute", count)
    try:
        with Session(seeded_engine) as session:
            def labels(*versions):
                return national.category_labels(session, set(versions))

            assert labels((RV, 1))[(RV, 1)]["death_abuse_neglect"].startswith("Child died")
            labels((NE, 1))
            labels((RV, 1))  # used again: the most recent
            assert len(queries) == 2
            labels((RV, 2))  # the cache is full: the least recently used (NE 1) goes
            assert len(national._LABELS) == 2 and len(queries) == 3
            labels((RV, 1))
            assert len(queries) == 3  # still cached
            both = labels((NE, 1), (RV, 2), (RV, 1))  # more than it holds at once: every answer still given
            assert all(both[v] for v in ((NE, 1), (RV, 2), (RV, 1))) and len(national._LABELS) == 2
    finally:
        event.remove(seeded_engine, "before_cursor_execute", count)


def test_the_labels_cache_is_safe_across_threads(seeded_engine, monkeypatch):
    monkeypatch.setattr(national, "_LABELS", LRUCache(maxsize=1))

    def read(i: int):
        with Session(seeded_engine) as session:
            return national.category_labels(session, {(RV, 1) if i % 2 else (NE, 1)})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(read, range(64)))
    assert all(next(iter(a.values())) for a in answers) and len(national._LABELS) == 1
