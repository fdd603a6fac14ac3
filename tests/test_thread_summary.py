"""Thread summaries kept incrementally as posts join (``thread_summary.after_join``) must equal a
full rebuild (``thread_summary.refresh``) of the same thread, on each backend: over a real list's
threads imported in order, reversed and shuffled, and over posts through the posting path."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from listserv import archive_import, thread_summary
from listserv.models import MailingList, Thread
from listserv.store import Store
from tests.archive_posts import post
from tests.harness import mail, make_list
from tests.test_threads_corpus import FEDORA

TO = "demo@lists.example.org"

Summary = tuple[int | None, str, int]


def _kept(store: Store) -> dict[int, Summary]:
    with store.read_session() as s:
        return {t.id: (t.opening_pk, t.participants, t.participant_count)
                for t in s.exec(select(Thread)) if t.id is not None}


def _rebuilt(store: Store) -> dict[int, Summary]:
    """Every thread's summary recomputed from its posts (rolled back, so the store is kept)."""
    with store.engine.connect() as conn:
        trans = conn.begin()
        from sqlmodel import Session
        with Session(bind=conn) as s:
            ids = [t for t in s.exec(select(Thread.id)) if t is not None]
            for tid in ids:
                thread_summary.refresh(s, tid)
            out = {t.id: (t.opening_pk, t.participants, t.participant_count)
                   for t in s.exec(select(Thread)) if t.id is not None}
        trans.rollback()
    return out


@pytest.fixture
def full_rebuilds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the full rebuilds the code under test falls back to (the real one still runs)."""
    calls: list[int] = []
    real: Callable[..., Any] = thread_summary.refresh

    def counting(session: Any, thread_id: int) -> None:
        calls.append(thread_id)
        real(session, thread_id)

    monkeypatch.setattr(thread_summary, "refresh", counting)
    return calls


def _import(store: Store, path: Path, order: str) -> int:
    with archive_import.open_mailbox(path) as (_, entries):
        listed = list(entries)
    if order == "reversed":
        listed.reverse()
    elif order == "shuffled":
        random.Random(12).shuffle(listed)
    summary = archive_import.Summary()
    with store.session() as s:
        ml = s.exec(select(MailingList).where(MailingList.name == "demo")).one()
        for entry in listed:
            archive_import.import_entry(s, ml, entry, summary, domain="lists.test",
                                        source=path.name)
    return summary.imported


@pytest.mark.parametrize("order", ["mbox", "reversed", "shuffled"])
def test_kept_summaries_equal_full_rebuilds_over_a_real_list(
        store: Store, corpus: Path, order: str, full_rebuilds: list[int]) -> None:
    # Members with names of their own, so the summary's names come from people, not headers.
    make_list(store, members=("notting@redhat.com", "jkeating@redhat.com", "mclasen@redhat.com"))
    with store.session() as s:
        from listserv.models import Address, Person
        for email, name in (("notting@redhat.com", "Bill N"), ("jkeating@redhat.com", "")):
            address = s.exec(select(Address).where(Address.email == email)).one()
            person = s.get(Person, address.person_id)
            assert person is not None
            person.display_name = name
            s.add(person)
    imported = _import(store, corpus / FEDORA / "2010-January.txt.gz", order)
    assert imported > 250
    rebuilds = len(full_rebuilds)
    kept = _kept(store)
    assert len(kept) > 50
    assert kept == _rebuilt(store)
    if order == "mbox":  # in date order nearly every post is added, not rebuilt
        assert rebuilds < imported / 5


def test_posts_through_the_posting_path_keep_the_same_summary(
        store: Store, full_rebuilds: list[int]) -> None:
    make_list(store, members=("alice@example.org", "bob@example.org", "cy@example.org"))
    dates = ["Wed, 25 Nov 2026 10:00:00 +0000", "Wed, 25 Nov 2026 10:00:00 +0000",
             "Wed, 25 Nov 2026 11:00:00 +0000", "Wed, 25 Nov 2026 09:00:00 +0000",
             "Wed, 25 Nov 2026 12:00:00 +0000"]
    senders = ['"Alice A" <alice@example.org>', "Bob <BOB@example.org>", "bob@example.org",
               '"Cy" <cy@example.org>', '"Alice again" <alice@example.org>']
    for n, (sender, date) in enumerate(zip(senders, dates, strict=True)):
        raw = mail(sender, TO, "Re: Plans" if n else "Plans", f"Post {n}.",
                   message_id=f"p{n}@x", headers={"In-Reply-To": "<p0@x>"} if n else None)
        raw = raw.replace(b"Wed, 25 Nov 2026 10:00:00 +0000", date.encode())
        assert post(store, raw).decision.action.value == "accept"
    rebuilds = len(full_rebuilds)
    kept = _kept(store)
    assert len(kept) == 1 and kept == _rebuilt(store)
    (opening, names, count), = kept.values()
    assert opening is not None and (names, count) == ('["Cy", "Alice A", "Bob"]', 3)
    # Only the post dated before the others (09:00) needed a rebuild.
    assert rebuilds == 1


def test_a_reply_joins_its_thread_without_re_reading_it(store: Store) -> None:
    from sqlalchemy import event

    make_list(store, members=("alice@example.org", "bob@example.org"))
    post(store, mail("alice@example.org", TO, "Plans", "First.", message_id="a@x"))
    seen: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda _c, _cur, sql, *_a: seen.append(" ".join(sql.split())))
    post(store, mail("bob@example.org", TO, "Re: Plans", "Second.", message_id="b@x",
                     headers={"In-Reply-To": "<a@x>"}))
    selects = [q for q in seen if q.upper().startswith(("SELECT", "WITH"))]  # WITH: PG locks
    assert len([q for q in selects if "FROM thread_ref" in q]) == 1  # with its thread row
    # No other read of the thread (the one with its refs asks for the subject's threads too).
    assert not [q for q in selects if ("FROM thread " in q or q.endswith("FROM thread"))
                and "FROM thread_ref" not in q]
    assert not [q for q in selects if "FROM search_text" in q]
    assert not [q for q in selects if "ORDER BY coalesce" in q]  # the thread's posts, re-read
    kept = _kept(store)
    assert kept == _rebuilt(store) and next(iter(kept.values()))[2] == 2
