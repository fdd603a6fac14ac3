"""The post renderer: DMARC policies unknown on arrival (issue 7.18), and preparing a post
without the store's write lock (issue 7.17)."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from email import message_from_bytes

import pytest
import sqlalchemy.event
from sqlmodel import select

from listserv import config as config_mod
from listserv import delivery, links
from listserv.addresses import Kind
from listserv.decorate import personal_lines
from listserv.delivery import PostRenderer, ready_before
from listserv.dmarc import Policy
from listserv.models import MailingList, Message
from listserv.store import Store
from listserv.transports import WireReady, wire_ready

RAW = (b"From: Ann <ann@strict.example>\r\nTo: demo@lists.example.org\r\nSubject: hi\r\n"
       b"Message-ID: <p1@strict.example>\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n\r\nhello\r\n")


def add_post(store: Store, policy: str) -> int:
    with store.session() as s:
        ml = MailingList(name="demo", description="Demo")
        s.add(ml)
        s.flush()
        msg = Message(list_id=ml.id, message_id="<p1@strict.example>", raw=RAW,
                      from_address="ann@strict.example", from_name="Ann", dmarc_policy=policy)
        s.add(msg)
        s.flush()
        assert msg.id is not None
        return msg.id


def from_of(data: bytes) -> str:
    return str(message_from_bytes(data)["From"])


def stored_policy(store: Store) -> str:
    with store.session() as s:
        return s.exec(select(Message.dmarc_policy)).one()


def test_an_unknown_policy_is_looked_up_again_at_delivery(store: Store) -> None:
    pk = add_post(store, "unknown")
    asked: list[str] = []

    def lookup(domain: str) -> Policy:
        asked.append(domain)
        return Policy.REJECT

    renderer = PostRenderer(store, config_mod.load(None, env={}), dmarc=lookup)
    assert from_of(renderer(pk, "bob@example.org")) == "Ann via demo <demo@lists.example.org>"
    assert from_of(renderer(pk, "cy@example.org")).startswith("Ann via demo")
    assert asked == ["strict.example"]  # once per post, then cached
    assert stored_policy(store) == "reject"  # and kept: a later render does not ask again


def test_a_policy_still_unknown_is_sent_unmunged_and_asked_again_later(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    pk = add_post(store, "unknown")
    answers = [Policy.UNKNOWN, Policy.QUARANTINE]
    renderer = PostRenderer(store, config_mod.load(None, env={}), dmarc=lambda d: answers.pop(0))
    assert from_of(renderer(pk, "bob@example.org")) == "Ann <ann@strict.example>"
    assert stored_policy(store) == "unknown"
    monkeypatch.setattr(delivery, "RETRY_UNKNOWN", 0.0)  # the retry window is over
    renderer._cache[pk] = renderer._cache[pk]._replace(until=0.0)
    assert from_of(renderer(pk, "cy@example.org")).startswith("Ann via demo")
    assert stored_policy(store) == "quarantine" and answers == []


def test_a_known_policy_is_not_looked_up(store: Store) -> None:
    pk = add_post(store, "none")

    def lookup(domain: str) -> Policy:
        raise AssertionError("looked up a known policy")

    renderer = PostRenderer(store, config_mod.load(None, env={}), dmarc=lookup)
    assert from_of(renderer(pk, "bob@example.org")) == "Ann <ann@strict.example>"


def test_preparing_a_post_does_not_wait_for_the_write_lock(store: Store) -> None:
    """Issue 7.17: a cache miss only reads, so a writer holding SQLite's lock cannot stall it."""
    if not store.is_sqlite:
        pytest.skip("the write lock is SQLite's")
    pk = add_post(store, "none")
    renderer = PostRenderer(store, config_mod.load(None, env={}))
    writer = sqlite3.connect(store.url.split("///", 1)[1], isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # e.g. a large fan-out being committed
    done = threading.Event()
    result: list[bytes] = []

    def render() -> None:
        result.append(renderer(pk, "bob@example.org"))
        done.set()

    threading.Thread(target=render, daemon=True).start()
    try:
        assert done.wait(3), "preparing the post waited for the write lock"
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert result and b"hello" in result[0]


def test_members_rendered_at_once_prepare_the_post_once(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sender threads that miss the cache together wait for one preparation, not one each
    (ingest's 10-member posts were prepared ~1.8 times each)."""
    pk = add_post(store, "none")
    renderer = PostRenderer(store, config_mod.load(None, env={}))
    calls: list[int] = []
    real = delivery.prepare

    def slow_prepare(*args: object, **kw: bool) -> delivery.PreparedPost:
        calls.append(1)
        threading.Event().wait(0.2)  # long enough for every thread to miss
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(delivery, "prepare", slow_prepare)
    start = threading.Barrier(4)
    out: dict[str, bytes] = {}

    def render(rcpt: str) -> None:
        start.wait()
        out[rcpt] = renderer(pk, rcpt)

    threads = [threading.Thread(target=render, args=(f"m{i}@example.org",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(calls) == 1
    assert sorted(out) == [f"m{i}@example.org" for i in range(4)]
    assert len(set(out.values())) == 4  # each with its own unsubscribe link


def test_a_failed_preparation_lets_the_waiters_try_again(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    pk = add_post(store, "none")
    renderer = PostRenderer(store, config_mod.load(None, env={}))
    real = delivery.prepare
    failures = [RuntimeError("first try fails")]

    def flaky(*args: object, **kw: bool) -> delivery.PreparedPost:
        if failures:
            raise failures.pop()
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(delivery, "prepare", flaky)
    with pytest.raises(RuntimeError):
        renderer(pk, "bob@example.org")
    assert b"hello" in renderer(pk, "bob@example.org")
    assert renderer._preparing == {}


def test_cached_copies_are_the_same_bytes_and_never_read_the_store(store: Store) -> None:
    pk = add_post(store, "none")
    renderer = PostRenderer(store, config_mod.load(None, env={}))
    assert renderer.cached(pk, "bob@example.org") is None  # a miss: the caller prepares
    first = renderer(pk, "bob@example.org")
    assert renderer.cached(pk, "bob@example.org") == first
    assert renderer.cached(pk, "cy@example.org") == renderer(pk, "cy@example.org") != first


def test_a_post_whose_policy_is_unknown_is_not_cached_past_its_retry(store: Store) -> None:
    pk = add_post(store, "unknown")
    renderer = PostRenderer(store, config_mod.load(None, env={}), dmarc=lambda d: Policy.UNKNOWN)
    renderer(pk, "bob@example.org")
    assert renderer.cached(pk, "cy@example.org") is not None
    renderer._cache[pk] = renderer._cache[pk]._replace(until=0.0)  # its retry window is over
    assert renderer.cached(pk, "cy@example.org") is None


def test_warming_prepares_a_known_post_and_leaves_an_unknown_one_to_its_copy(
        store: Store) -> None:
    pk = add_post(store, "none")
    asked: list[str] = []

    def lookup(domain: str) -> Policy:
        asked.append(domain)
        return Policy.REJECT

    renderer = PostRenderer(store, config_mod.load(None, env={}), dmarc=lookup)
    renderer.warm([pk, pk + 1000])  # a post that is not there is skipped, not raised
    assert renderer.cached(pk, "bob@example.org") == renderer(pk, "bob@example.org")
    assert renderer._preparing == {}
    with store.session() as s:  # the same post, its policy unknown now
        s.exec(select(Message)).one().dmarc_policy = "unknown"
    fresh = PostRenderer(store, config_mod.load(None, env={}), dmarc=lookup)
    fresh.warm([pk])
    assert asked == [] and fresh.cached(pk, "bob@example.org") is None  # no DNS while claiming
    assert from_of(fresh(pk, "bob@example.org")).startswith("Ann via demo")
    assert asked == ["strict.example"]


def test_copies_of_a_wire_ready_post_say_so_and_only_then(store: Store) -> None:
    """A copy is handed over as ``WireReady`` (the transport then skips its scans) exactly
    when scanning all of it would have said it is ready."""
    pk = add_post(store, "none")
    renderer = PostRenderer(store, config_mod.load(None, env={}))
    copy = renderer(pk, "bob@example.org")
    assert type(copy) is WireReady and wire_ready(bytes(copy))
    assert renderer.cached(pk, "bob@example.org") == copy
    with store.session() as s:  # a line of the body starts with a dot: aiosmtplib stuffs it
        s.get_one(Message, pk).raw = RAW + b".dot\r\n"
    renderer = PostRenderer(store, config_mod.load(None, env={}))
    copy = renderer(pk, "bob@example.org")
    assert type(copy) is bytes and not wire_ready(copy)


def test_personal_lines_before_a_ready_body_make_a_ready_copy_exactly_when_scanned_so() -> None:
    # Every head of up to 5 of these bytes before every ready body of up to 4 (and a copy
    # that does not end with the body): the cheap answer never says ready when the full
    # scan would not, and says it whenever the head itself is ready.
    pieces = (b"a", b"\r", b"\n", b".", b"\r\n")
    bodies = [b"".join(p) for n in range(5) for p in itertools.product(pieces, repeat=n)]
    bodies = [b for b in bodies if wire_ready(b)]
    heads = [b"".join(p) for n in range(6) for p in itertools.product(pieces[:4], repeat=n)]
    for body in bodies:
        for head in heads:
            copy = head + body
            assert ready_before(copy, body) == (bool(head) and wire_ready(head)), (head, body)
            if ready_before(copy, body):
                assert wire_ready(copy), (head, body)
        assert not ready_before(b"X-Other: 1\r\n" + body + b"x\r\n", body + b"y\r\n")


def test_the_personal_lines_are_ready_for_every_token_exactly_when_checked_so() -> None:
    # Every unsubscribe URL base and leave address of up to 4 of these pieces: the per-post
    # answer is the full scan's for every token (an empty address's token starts with a dot).
    pieces = (b"a", b"\r", b"\n", b".", b"\r\n")
    parts = [b"".join(p).decode() for n in range(5) for p in itertools.product(pieces, repeat=n)]
    tokens = [links.unsubscribe_token(b"k", "demo", email) for email in ("", "a@b.example")]
    for url, leave in itertools.product(parts, parts):
        before, after = personal_lines(url, leave)
        for token in tokens:
            full = before + token.encode() + after
            assert full == personal_lines(url + token, leave)[0] + after
            assert delivery.personal_ready(before, after) <= wire_ready(full), (url, leave)
        if "\r" not in url and "\n" not in url:  # only these are ever not ready by the check
            assert delivery.personal_ready(before, after) == all(
                wire_ready(before + t.encode() + after) for t in tokens), (url, leave)


def test_a_copy_is_what_for_recipient_makes(store: Store) -> None:
    pk = add_post(store, "none")
    cfg = config_mod.load(None, env={})
    renderer = PostRenderer(store, cfg)
    prepared, info = renderer.prepared(pk)
    for recipient in ("bob@example.org", "Zo\u00eb@example.org", "x+y@host.example"):
        url = links.unsubscribe_url(info.web_base_url, renderer.secret, info.name, recipient)
        old = prepared.for_recipient(url, info.address(Kind.LEAVE))
        assert renderer(pk, recipient) == renderer.cached(pk, recipient) == old


def test_warming_reads_its_posts_in_one_statement_and_a_bad_one_spoils_none(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    first = add_post(store, "none")
    with store.session() as s:
        list_id = s.get_one(Message, first).list_id
        for n in range(2, 5):
            s.add(Message(list_id=list_id, message_id=f"<p{n}@strict.example>",
                          raw=RAW.replace(b"<p1@", f"<p{n}@".encode()),
                          from_address="ann@strict.example", from_name="Ann",
                          dmarc_policy="none"))
    pks = list(range(first, first + 4))
    renderer = PostRenderer(store, config_mod.load(None, env={}))
    real = delivery.prepare
    prepared: list[bytes] = []

    def failing_second(raw: bytes, *args: object, **kw: bool) -> delivery.PreparedPost:
        prepared.append(raw)
        if b"<p2@" in raw:
            raise RuntimeError("this one fails")
        return real(raw, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(delivery, "prepare", failing_second)
    statements: list[str] = []

    def seen(*args: object) -> None:
        statements.append(str(args[2]))

    sqlalchemy.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        renderer.warm([*pks, first + 1000])
    finally:
        sqlalchemy.event.remove(store.engine, "before_cursor_execute", seen)
    reads = [s for s in statements if "FROM message" in s]
    assert len(reads) == 1 and len(prepared) == 4
    assert renderer._preparing == {}
    assert [renderer.cached(pk, "bob@example.org") is not None for pk in pks] == [
        True, False, True, True]
    monkeypatch.setattr(delivery, "prepare", real)
    assert b"Message-ID: <p2@" in renderer(first + 1, "bob@example.org")  # its copy prepares it
