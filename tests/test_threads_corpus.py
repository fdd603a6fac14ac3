"""Threading against real answer keys.

- fedora-devel-list, January 2010: 292 posts and the archive's own thread index (MHonArc's
  "Archive by Thread" page). Fed to ``assign_thread`` one post at a time, in mbox order, reversed
  and shuffled, the partition of posts into threads must equal the archive's.
- Dovecot imaptest's RFC 5256 cases: cycles, duplicate ids, missing parents, subject threading.
  We compare partitions (which posts share a thread), not IMAP's trees.
"""

from __future__ import annotations

import dataclasses
import gzip
import mailbox
import random
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlmodel import select

from listserv.message import parse
from listserv.models import MailingList, Message, Thread
from listserv.store import Store
from listserv.threads import assign_thread

FEDORA = Path("jwzthreading-fedora") / "fedora-devel-mailman"
IMAPTEST = Path("imaptest-thread")


@dataclasses.dataclass(frozen=True)
class Post:
    position: int
    message_id: str
    references: tuple[str, ...]
    parent: str | None  # In-Reply-To, else the last reference
    subject: str
    date: datetime | None
    raw: bytes


def _envelope_date(msg: mailbox.mboxMessage) -> datetime | None:
    """The mbox From_ line's date ("From user@domain  Fri Feb 22 15:06:23 2008"), as UTC."""
    stamp = " ".join(msg.get_from().split()[1:])
    try:
        d = parsedate_to_datetime(stamp)
    except (TypeError, ValueError):
        return None
    return (d if d.utcoffset() is not None else d.replace(tzinfo=UTC)).astimezone(UTC)


def read_mbox(path: Path) -> list[Post]:
    """Posts of an mbox (gzipped or not), read by ``listserv.message.parse`` as the door does.

    A post without a Date gets its mbox envelope date, as an archive import would.
    """
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    with tempfile.NamedTemporaryFile(suffix=".mbox") as f:  # mailbox.mbox wants a file name
        f.write(raw)
        f.flush()
        box = mailbox.mbox(f.name, create=False)
        posts = []
        for i, msg in enumerate(box):
            data = msg.as_bytes()
            parsed = parse(data, domain="corpus.test")
            parent = parsed.in_reply_to or (parsed.references or (None,))[-1]
            posts.append(Post(i, parsed.message_id, parsed.references, parent, parsed.subject,
                              parsed.date or _envelope_date(msg), data))
        box.close()
    return posts


class _ThreadIndex(HTMLParser):
    """MHonArc's thread page: each top-level <li> of the list between the <hr>s is a thread;
    ``<a name="NNNNN">`` is the post's 0-based position in the mbox."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.depth = 0
        self.new_thread = False
        self.threads: list[list[int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "hr":
            self.inside = not self.inside
        elif not self.inside:
            return
        elif tag == "ul":
            self.depth += 1
        elif tag == "li" and self.depth == 1:
            self.new_thread = True
        elif tag == "a" and (name := dict(attrs).get("name")) is not None:
            if self.new_thread:
                self.threads.append([])
                self.new_thread = False
            self.threads[-1].append(int(name))

    def handle_endtag(self, tag: str) -> None:
        if self.inside and tag == "ul":
            self.depth -= 1


def answer_key(path: Path) -> list[list[int]]:
    parser = _ThreadIndex()
    parser.feed(gzip.decompress(path.read_bytes()).decode("latin-1"))
    return parser.threads


def partition(groups: Iterable[Iterable[int]]) -> set[frozenset[int]]:
    return {frozenset(g) for g in groups}


def thread_posts(store: Store, posts: Sequence[Post], order: Sequence[int],
                 list_name: str = "fedora-devel-list") -> set[frozenset[int]]:
    """Feed posts one transaction each, as the SMTP door would; return the final partition.

    The partition is read back from ``message.thread_id`` so merges must move messages too.
    """
    with store.session() as s:
        ml = MailingList(name=list_name)
        s.add(ml)
        s.flush()
        assert ml.id is not None
        list_id = ml.id
    pk_to_position: dict[int, int] = {}
    fallback = datetime(2000, 1, 1, tzinfo=UTC)
    for i in order:
        p = posts[i]
        with store.session() as s:
            tid = assign_thread(s, list_id, p.message_id, p.references, p.subject,
                                p.date or fallback, list_name)
            row = Message(list_id=list_id, thread_id=tid, message_id=p.message_id,
                          subject=p.subject, date=p.date, raw=p.raw)
            s.add(row)
            s.flush()
            assert row.id is not None
            pk_to_position[row.id] = p.position
    groups: dict[int, list[int]] = {}
    with store.session() as s:
        for pk, in_thread in s.exec(select(Message.id, Message.thread_id)
                                    .where(Message.list_id == list_id)):
            assert pk is not None and in_thread is not None
            groups.setdefault(in_thread, []).append(pk_to_position[pk])
        threads = {t.id: t for t in s.exec(select(Thread).where(Thread.list_id == list_id))
                   if t.id is not None}
    # The thread rows agree with the messages: none left over, counts and spans right.
    assert set(threads) == set(groups)
    for tid, members in groups.items():
        t = threads[tid]
        assert t.post_count == len(members)
        dates = [posts[m].date or fallback for m in members]
        assert (t.first_post_at, t.last_post_at) == (min(dates), max(dates))
    return partition(groups.values())


# --- fedora-devel-list -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def fedora(corpus: Path) -> tuple[list[Post], set[frozenset[int]]]:
    posts = read_mbox(corpus / FEDORA / "2010-January.txt.gz")
    key = answer_key(corpus / FEDORA / "2010-January_thread.html.gz")
    return posts, partition(key)


def test_answer_key_covers_every_post_once(fedora: tuple[list[Post], set[frozenset[int]]]) -> None:
    posts, key = fedora
    assert len(posts) == 292
    assert len(key) == 60
    assert sorted(i for g in key for i in g) == list(range(292))


def _order(name: str, n: int) -> list[int]:
    order = list(range(n))
    if name == "reverse":
        order.reverse()
    elif name.startswith("shuffle-"):
        random.Random(int(name.split("-")[1])).shuffle(order)
    return order


def _describe(posts: Sequence[Post], got: set[frozenset[int]],
              want: set[frozenset[int]]) -> str:
    lines = []
    for label, groups in (("only in ours", got - want), ("only in the archive", want - got)):
        for g in sorted(groups, key=min):
            lines.append(f"{label}: " + ", ".join(f"{i} {posts[i].subject[:40]!r}"
                                                  for i in sorted(g)))
    return "\n".join(lines)


@pytest.mark.parametrize("order", ["mbox", "reverse", "shuffle-1", "shuffle-2"])
def test_fedora_partition_matches_archive(store: Store, order: str,
                                          fedora: tuple[list[Post], set[frozenset[int]]]) -> None:
    posts, want = fedora
    got = thread_posts(store, posts, _order(order, len(posts)))
    assert got == want, _describe(posts, got, want)


@pytest.mark.parametrize("order", ["reverse", "shuffle-1", "shuffle-2"])
def test_fedora_with_parent_only_references(store: Store, order: str,
                                            fedora: tuple[list[Post], set[frozenset[int]]]) -> None:
    """The same, as if every client wrote In-Reply-To alone and no References.

    Every fedora reply cites its thread's root, so the full headers never split a thread that
    a later post must merge. Cut to the parent alone, shuffled posts start thread fragments
    that only a later post joins: this is where merging is tested on real mail.
    """
    posts, want = fedora
    cut = [dataclasses.replace(p, references=(p.parent,) if p.parent else ()) for p in posts]
    got = thread_posts(store, cut, _order(order, len(cut)))
    assert got == want, _describe(cut, got, want)


# --- imaptest (RFC 5256) ---------------------------------------------------------------------

def _imap_posts(corpus: Path, name: str) -> list[Post]:
    # Posts without a Message-ID get a generated one from parse, as at the SMTP door.
    return read_mbox(corpus / IMAPTEST / f"{name}.mbox")


# Partitions as 1-based sequence numbers, like the IMAP answers. Where RFC 5256 builds trees
# and breaks cycles or keeps duplicate Message-IDs apart, we keep together every post that
# shares an id with another: a list archive shows a duplicate where its original is.
IMAP_CASES = {
    "thread": [[1, 2, 3]],  # a <- b -> c <- b: a References cycle, all connected
    "thread2": [[1, 2]],  # the same Message-ID twice
    "thread3": [[1, 2]],  # the same Message-ID, "foo" and "Re: foo"
    "thread4": [[1, 2]],  # parent missing: joined by subject
    "thread5": [[1, 2, 3, 4, 5]],
    "thread6": [[1, 2]],  # no Message-IDs, a shared missing parent
    "thread7": [[1, 2, 3, 4]],  # a duplicate in the middle of a chain
    "thread8": [[1, 2, 3]],
    # RFC 5256 ORDEREDSUBJECT: the same base subjects group; 9 (no subject) and 10 (a blank
    # one) stay apart here, because an empty subject is no evidence of a conversation.
    "thread-orderedsubject": [[1], [2, 7, 12, 13], [3, 5, 11], [4], [6], [8], [9], [10], [14],
                              [15]],
    "thread-orderedsubject2": [[1, 3, 5, 7], [2, 4, 6, 8]],
}


@pytest.mark.parametrize("name", sorted(IMAP_CASES))
@pytest.mark.parametrize("order", ["mbox", "reverse"])
def test_imaptest_partition(store: Store, corpus: Path, name: str, order: str) -> None:
    posts = _imap_posts(corpus, name)
    got = thread_posts(store, posts, _order(order, len(posts)), list_name="imaptest")
    want = partition([[n - 1 for n in g] for g in IMAP_CASES[name]])
    assert got == want, _describe(posts, got, want)
