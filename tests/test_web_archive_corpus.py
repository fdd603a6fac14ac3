"""A real list's threads on the archive's thread pages: fedora-devel-list, January 2010, against
the tree in that archive's own thread index (MHonArc's nested lists). (The browser test of a
thread page is in test_web_archive.py.)"""

from __future__ import annotations

import gzip
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlmodel import select

from listserv import thread_summary
from listserv.lists import find
from listserv.models import Message, MessageStatus, utcnow
from listserv.store import Store
from listserv.threads import assign_thread
from tests.test_threads_corpus import FEDORA, Post, read_mbox
from tests.test_web_archive import _tree
from tests.web_harness import Site


class _ThreadTree(HTMLParser):
    """MHonArc's "Archive by Thread": nested <ul>s between the <hr>s; ``<a name="NNNNN">`` is
    the post's position in the mbox. Records each post's parent position (None for a root)."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.depth = 0
        self.last_at: dict[int, int] = {}  # depth -> the last post seen at that depth
        self.parent: dict[int, int | None] = {}
        self.level: dict[int, int] = {}  # 1 for a thread's first post
        self.follow_up: set[int] = set()  # listed after "<Possible follow-ups>"
        self.follow_ups_at: set[int] = set()  # depths whose list has had that marker

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "hr":
            self.inside = not self.inside
        elif not self.inside:
            return
        elif tag == "ul":
            self.depth += 1
            self.follow_ups_at.discard(self.depth)
        elif tag == "a" and (name := dict(attrs).get("name")) is not None:
            pos = int(name)
            self.parent[pos] = self.last_at.get(self.depth - 1) if self.depth > 1 else None
            self.level[pos] = self.depth
            if self.depth in self.follow_ups_at:
                self.follow_up.add(pos)
            self.last_at[self.depth] = pos

    def handle_data(self, data: str) -> None:
        if self.inside and "<Possible follow-ups>" in data:
            self.follow_ups_at.add(self.depth)

    def handle_endtag(self, tag: str) -> None:
        if self.inside and tag == "ul":
            self.follow_ups_at.discard(self.depth)
            self.depth -= 1


def archive_tree(corpus: Path) -> _ThreadTree:
    parser = _ThreadTree()
    parser.feed(gzip.decompress((corpus / FEDORA / "2010-January_thread.html.gz").read_bytes())
                .decode("latin-1"))
    return parser


def _store_as_accepted(store: Store, posts: list[Post]) -> dict[int, int]:
    """The posts as accepted posts of "demo" (as an archive import keeps them); pk -> position."""
    fallback = utcnow()
    positions: dict[int, int] = {}
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None and ml.id is not None
        for p in posts:
            date = p.date or fallback
            tid = assign_thread(s, ml.id, p.message_id, p.references, p.subject, date, "demo")
            row = Message(list_id=ml.id, thread_id=tid, message_id=p.message_id,
                          subject=p.subject, date=date, from_name="", from_address="",
                          accepted_at=date, status=MessageStatus.ACCEPTED.value, raw=p.raw)
            s.add(row)
            s.flush()
            assert row.id is not None
            positions[row.id] = p.position
            thread_summary.refresh(s, tid)
    return positions


@pytest.fixture
def fedora_site(site: Site, corpus: Path) -> tuple[Site, dict[int, int], _ThreadTree]:
    posts = read_mbox(corpus / FEDORA / "2010-January.txt.gz")
    return site, _store_as_accepted(site.server.store, posts), archive_tree(corpus)


def test_thread_pages_show_the_archives_own_trees(
        fedora_site: tuple[Site, dict[int, int], _ThreadTree]) -> None:
    site, positions, mhonarc = fedora_site
    want = mhonarc.parent
    with site.server.store.read_session() as s:
        thread_ids = sorted({t for t in s.exec(select(Message.thread_id)) if t is not None})
    assert len(thread_ids) == 60
    got: dict[int, int | None] = {}
    for tid in thread_ids:
        page = site.get(f"/lists/demo/threads/{tid}")
        assert page.status_code == 200
        for pk, parent in _tree(page.text).items():
            got[positions[pk]] = positions[parent] if parent is not None else None
    assert len(got) == 292
    deepest = max(mhonarc.level.values())

    def ancestors(pos: int) -> list[int]:
        out = []
        parent = got[pos]
        while parent is not None:
            out.append(parent)
            parent = got[parent]
        return out

    def explained(pos: int) -> bool:
        """MHonArc lists replies deeper than its TLEVELS under their deepest shown ancestor
        (so that ancestor is ours, and those between are clamped too), and a post whose parent
        never reached the archive as a "<Possible follow-up>" of the thread (a root here)."""
        theirs = want[pos]
        if pos in mhonarc.follow_up:
            return got[pos] is None
        chain = ancestors(pos)
        if mhonarc.level[pos] != deepest or theirs not in chain:
            return False
        return all(mhonarc.level[a] == deepest for a in chain[:chain.index(theirs)])

    same = [pos for pos in want if got[pos] == want[pos]]
    differ = {pos: (got[pos], want[pos]) for pos in want
              if got[pos] != want[pos] and not explained(pos)}
    assert differ == {}
    assert len(same) >= 200  # most posts sit exactly where the archive put them
