"""Group commit (issue 12): SMTP sessions that finish DATA together share one transaction, each
message in its own savepoint, each 250 sent after the commit that holds it.

The writer is held by a unit that waits on an event, so the test knows which messages form one
group: those queued while it waits.
"""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlmodel import Session

from listserv import accept, async_commit, audit, inbound, inbound_queue, posting
from listserv import config as config_mod
from listserv.addresses import Destination, Kind
from listserv.group_commit import QUIET, GroupCommitter, for_store
from listserv.models import AuditEntry, InboundMessage, Message, MessageStatus
from listserv.store import Store, after_commit
from tests.harness import DOMAIN, Running, mail, make_list, running, wait_until, write_config
from tests.smtpsink import SmtpSink

POST = f"demo@{DOMAIN}"
MEMBER = "ann@example.org"


@pytest.fixture
def server(store: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> Iterator[Running]:
    make_list(store, "demo", members=(MEMBER, "bob@example.org"))
    cfg = config_mod.load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={})
    with running(cfg, store) as srv:
        yield srv


def committer(server: Running) -> GroupCommitter:
    assert server.app.committer is not None
    return server.app.committer


class Gate:
    """Units that hold the writers (the urgent writer too, where there is one) until
    ``open``; what queues meanwhile is one group."""

    def __init__(self, c: GroupCommitter) -> None:
        self.release = threading.Event()
        self.done: list[Future[None]] = []
        # One taken by each writer in turn; with them held, the urgent one by the urgent writer.
        for urgent in [False] * c.writers + ([True] if c.urgent_writer else []):
            held = threading.Event()

            def hold(_: Session, held: threading.Event = held) -> None:
                held.set()
                assert self.release.wait(30)

            self.done.append(c.submit(hold, urgent=urgent))
            assert held.wait(10)

    def open(self) -> None:
        self.release.set()
        for done in self.done:
            done.result(30)


def send_all(port: int, subjects: list[str], sender: str = MEMBER,
             ) -> tuple[list[threading.Thread], dict[str, Any]]:
    """One smtplib session per subject, each in a thread; answers (code, time) by subject."""
    answers: dict[str, Any] = {}

    def one(subject: str) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo()
            client.mail(sender)
            client.rcpt(POST)
            code, _ = client.data(mail(sender, POST, subject))
            answers[subject] = (code, time.monotonic())

    threads = [threading.Thread(target=one, args=(s,)) for s in subjects]
    for t in threads:
        t.start()
    return threads, answers


def queued(server: Running, n: int) -> None:
    """Wait until ``n`` messages wait at the door for the writer (those that finish DATA while
    the writer is busy go to it together, as one unit: smtp.Enqueuer)."""
    handler = server.app.handler
    assert handler is not None
    wait_until(lambda: handler.enqueuer.waiting >= n, what=f"{n} messages queued for the writer")


def stored(store: Store, status: MessageStatus) -> list[str]:
    with store.session() as s:
        return sorted(s.exec(select(Message.subject).where(  # type: ignore[call-overload]
            Message.status == status.value)).scalars())


def commits_of(store: Store) -> list[float]:
    """Times of the group committer's commits from now on (SQLAlchemy's connection event; the
    commit is done when the writer thread's next statement runs, so these are lower bounds)."""
    times: list[float] = []

    def note(_conn: Any) -> None:
        if threading.current_thread().name.startswith("group-commit"):
            times.append(time.monotonic())

    event.listen(store.engine, "commit", note)
    return times


def inserts_per_commit(store: Store, monkeypatch: pytest.MonkeyPatch) -> tuple[list[int],
                                                                              list[int]]:
    """For each commit of the group committer from now on, how many messages it queued, and
    in how many INSERT statements."""
    counts: list[int] = []
    statements: list[int] = []
    current = [0, 0]
    real = inbound_queue.enqueue_many

    def enqueue_many(session: Session, messages: Any) -> list[int]:
        current[0] += len(messages)
        return real(session, messages)

    def statement(_conn: Any, _cursor: Any, sql: str, *_a: Any) -> None:
        if threading.current_thread().name.startswith("group-commit") and \
                sql.lstrip().upper().startswith("INSERT INTO INBOUND"):
            current[1] += 1

    def commit(_conn: Any) -> None:
        if threading.current_thread().name.startswith("group-commit"):
            counts.append(current[0])
            statements.append(current[1])
            current[:] = [0, 0]

    monkeypatch.setattr(inbound_queue, "enqueue_many", enqueue_many)
    event.listen(store.engine, "before_cursor_execute", statement)
    event.listen(store.engine, "commit", commit)
    return counts, statements


def test_sessions_finishing_together_share_one_commit(server: Running, store: Store,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    c = committer(server)
    subjects = [f"Post {n}" for n in range(6)]
    gate = Gate(c)
    threads, answers = send_all(server.port, subjects)
    queued(server, len(subjects))
    assert answers == {}, "no 250 before the commit that holds the message"
    commits = commits_of(store)
    per_commit, statements = inserts_per_commit(store, monkeypatch)
    gate.open()
    for t in threads:
        t.join(30)
    assert {s: a[0] for s, a in answers.items()} == {s: 250 for s in subjects}
    # The six were queued in one transaction, by one INSERT, and each 250 came after its commit.
    assert per_commit[0] == 6, per_commit
    assert statements[0] == 1, statements
    assert all(a[1] > commits[0] for a in answers.values())
    server.settle()
    assert stored(store, MessageStatus.ACCEPTED) == subjects


def test_a_message_whose_handling_raises_is_shunted_alone(
        server: Running, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    real_post = posting.post

    def fragile(*args: Any, **kwargs: Any) -> Any:
        result = real_post(*args, **kwargs)  # its rows are written, then it fails
        if args[4].subject == "Boom":
            raise RuntimeError("the pipeline fell over")
        return result

    monkeypatch.setattr(posting, "post", fragile)
    c = committer(server)
    subjects = ["Before", "Boom", "After"]
    gate = Gate(c)
    threads, answers = send_all(server.port, subjects)
    queued(server, 3)
    gate.open()
    for t in threads:
        t.join(30)
    server.settle()
    # Accepted means durable: the broken one is kept, shunted, and answered 250 like the rest.
    assert {s: a[0] for s, a in answers.items()} == {"Before": 250, "Boom": 250, "After": 250}
    assert stored(store, MessageStatus.ACCEPTED) == ["After", "Before"]
    assert stored(store, MessageStatus.SHUNTED) == ["Boom"]
    with store.session() as s:  # the rows its pipeline wrote before failing were rolled back
        assert s.exec(select(func.count()).select_from(Message).where(  # type: ignore[call-overload]
            Message.subject == "Boom")).scalar_one() == 1
        assert s.exec(select(func.count()).select_from(InboundMessage)).scalar_one() == 0


def waiting_rows(store: Store) -> list[tuple[int, str]]:
    with store.session() as s:
        return [(r.attempts, r.last_error) for r in s.exec(select(InboundMessage)).scalars()]


def test_a_message_that_cannot_even_be_shunted_stays_queued_and_the_others_go_on(
        server: Running, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("everything is broken for this one")

    real_post = posting.post
    monkeypatch.setattr(posting, "post", lambda *a, **k: (
        broken() if a[4].subject == "Doomed" else real_post(*a, **k)))
    # Shunting breaks too (the queue's own use of the module is left alone). A real MTA's retry
    # would not help a bug in the pipeline: the 250 stands and the message waits in the queue.
    monkeypatch.setattr(inbound, "shunt", SimpleNamespace(envelope_to=broken))
    c = committer(server)
    gate = Gate(c)
    threads, answers = send_all(server.port, ["Fine 1", "Doomed", "Fine 2"])
    queued(server, 3)
    gate.open()
    for t in threads:
        t.join(30)
    assert {s: a[0] for s, a in answers.items()} == {"Fine 1": 250, "Doomed": 250, "Fine 2": 250}
    server.settle()
    wait_until(lambda: waiting_rows(store) and waiting_rows(store)[0][0] == 1,
               what="the failed attempt recorded")
    assert stored(store, MessageStatus.ACCEPTED) == ["Fine 1", "Fine 2"]
    assert stored(store, MessageStatus.SHUNTED) == []
    [(attempts, error)] = waiting_rows(store)
    assert attempts == 1 and "everything is broken for this one" in error


def test_a_group_whose_commit_fails_is_retried_one_by_one(server: Running,
                                                          store: Store) -> None:
    """A message that makes the commit fail (here: the database refuses any transaction holding
    a post called "Poison") fails alone; the others are handled, and the poison stays queued."""

    def refuse_poison(conn: Any) -> None:
        found = conn.execute(text("SELECT count(*) FROM message WHERE subject = 'Poison'"))
        if found.scalar_one():
            raise RuntimeError("the commit failed")

    c = committer(server)
    gate = Gate(c)
    subjects = ["Good 1", "Poison", "Good 2", "Good 3"]
    threads, answers = send_all(server.port, subjects)
    queued(server, len(subjects))
    event.listen(store.engine, "commit", refuse_poison)
    try:
        gate.open()
        for t in threads:
            t.join(30)
        server.settle()
        # The failure is recorded by a unit of its own after the handling: wait for it.
        wait_until(lambda: [r for r in waiting_rows(store) if r[0]],
                   what="the poison's attempt recorded")
    finally:
        event.remove(store.engine, "commit", refuse_poison)
    assert {s: a[0] for s, a in answers.items()} == {s: 250 for s in subjects}
    assert stored(store, MessageStatus.ACCEPTED) == ["Good 1", "Good 2", "Good 3"]
    [(attempts, error)] = waiting_rows(store)
    assert attempts == 1 and "the commit failed" in error


def test_a_message_the_store_refuses_fails_alone_and_the_others_of_its_insert_are_kept(
        server: Running, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages that finish DATA together share one INSERT (smtp.Enqueuer); when the store
    refuses it for one of them, each is tried alone: only that one is answered 451."""
    real = inbound_queue.enqueue_many
    sizes: list[int] = []

    def refuse_poison(session: Session, messages: Any) -> list[int]:
        sizes.append(len(messages))
        if any(p.parsed.subject == "Poison" for p, _ in messages):
            raise RuntimeError("the database refused the row")
        return real(session, messages)

    monkeypatch.setattr(inbound_queue, "enqueue_many", refuse_poison)
    gate = Gate(committer(server))
    subjects = ["Good 1", "Poison", "Good 2"]
    threads, answers = send_all(server.port, subjects)
    queued(server, 3)
    gate.open()
    for t in threads:
        t.join(30)
    assert {s: a[0] for s, a in answers.items()} == {"Good 1": 250, "Poison": 451, "Good 2": 250}
    assert sizes[0] == 3 and sorted(sizes[1:]) == [1, 1, 1], sizes
    server.settle()
    assert stored(store, MessageStatus.ACCEPTED) == ["Good 1", "Good 2"]
    assert waiting_rows(store) == []


def test_a_session_gone_before_the_writer_takes_its_message_leaves_it_unwritten(
        server: Running, store: Store) -> None:
    gate = Gate(committer(server))
    client = smtplib.SMTP("127.0.0.1", server.port, timeout=30)
    client.ehlo()
    client.mail(MEMBER)
    client.rcpt(POST)
    assert client.docmd("DATA")[0] == 354
    client.send(mail(MEMBER, POST, "Gone") + b"\r\n.\r\n")
    threads, answers = send_all(server.port, ["Kept"])
    queued(server, 2)
    client.close()  # no answer read: the sender still has the message
    wait_until(lambda: server.app.handler is not None and server.app.handler.enqueuer.waiting == 1,
               what="the gone session's message taken out")
    gate.open()
    for t in threads:
        t.join(30)
    assert answers["Kept"][0] == 250
    server.settle()
    assert stored(store, MessageStatus.ACCEPTED) == ["Kept"]


def test_one_insert_gives_each_message_its_own_row_id(store: Store) -> None:
    cfg = config_mod.Config()
    prepared = [accept.prepare(cfg, accept.Delivery(
        envelope_from=f"n{n}@example.org", destinations=(Destination("demo", Kind.POST),),
        raw=mail(f"n{n}@example.org", POST, f"Post {n}"))) for n in range(5)]
    with store.session() as s:
        first = inbound_queue.enqueue(s, prepared[0], False)
        ids = inbound_queue.enqueue_many(s, [(p, n % 2 == 0) for n, p in enumerate(prepared)])
        s.commit()
    assert len(set(ids)) == 5 and first not in ids
    with store.session() as s:
        rows = {r.id: (r.envelope_from, r.urgent) for r in s.exec(select(InboundMessage)).scalars()}
    assert [rows[i] for i in ids] == [(f"n{n}@example.org", n % 2 == 0) for n in range(5)]
    assert inbound_queue.enqueue_many(s, []) == []


def test_a_members_post_goes_ahead_of_queued_posts_from_non_members(
        store: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> None:
    """Messages queued by an earlier run (or accepted in a burst) are handled urgent first."""
    make_list(store, "demo", members=(MEMBER, "bob@example.org"))
    cfg = config_mod.load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={})
    flood = [f"Spam {n}" for n in range(4)]
    with store.session() as s:
        for subject in flood:
            queue_raw(s, cfg, "spam@elsewhere.example", subject, urgent=False)
        queue_raw(s, cfg, MEMBER, "From a member", urgent=True)
    with running(cfg, store) as server:
        server.settle()
    with store.session() as s:
        order = list(s.exec(select(Message.subject).order_by(  # type: ignore[call-overload]
            Message.id)).scalars())
    assert order[0] == "From a member", order
    assert order[1:] == flood, "the rest in arrival order"


def queue_raw(s: Session, cfg: config_mod.Config, sender: str, subject: str, *,
              urgent: bool) -> int:
    raw = mail(sender, POST, subject)
    d = accept.Delivery(envelope_from=sender, destinations=(Destination("demo", Kind.POST),),
                         raw=raw)
    return inbound_queue.enqueue(s, accept.prepare(cfg, d), urgent)


def test_the_door_marks_members_posts_and_requests_urgent(server: Running, store: Store) -> None:
    c = committer(server)
    gate = Gate(c)  # hold the writer: the rows are read before the pipeline takes them
    threads, _ = send_all(server.port, ["Member's"])
    t2, _ = send_all(server.port, ["Stranger's"], sender="who@elsewhere.example")
    queued(server, 2)
    gate.open()
    for t in threads + t2:
        t.join(30)
    server.settle()
    with store.session() as s:
        flags = {m.subject: m.status for m in s.exec(select(Message)).scalars()}
    assert flags == {"Member's": "accepted", "Stranger's": "held"}


@pytest.mark.parametrize("kinds,member,urgent", [
    ([Kind.POST], True, True),
    ([Kind.POST], False, False),  # a non-member's post: held, nobody waits on it
    ([Kind.JOIN], False, True),
    ([Kind.CONFIRM], False, True),
    ([Kind.REQUEST], False, True),
    ([Kind.BOUNCES], False, False),
    ([Kind.BOUNCES], True, False),
])
def test_what_goes_ahead(kinds: list[Kind], member: bool, urgent: bool) -> None:
    assert accept.is_urgent(kinds, member) is urgent


# --- the committer on its own ---------------------------------------------------------------

@pytest.fixture
def writer(store: Store) -> Iterator[GroupCommitter]:
    c = GroupCommitter(store)
    c.start()
    yield c
    c.stop()


def test_urgent_units_go_ahead_in_a_group_of_their_own(writer: GroupCommitter) -> None:
    ran: list[str] = []
    gate = Gate(writer)
    before = writer.groups
    futures = [writer.submit(lambda _s, n=n: ran.append(f"n{n}")) for n in range(3)]
    futures += [writer.submit(lambda _s, n=n: ran.append(f"u{n}"), urgent=True)
                for n in range(2)]
    gate.open()
    for f in futures:
        f.result(10)
    assert ran == ["u0", "u1", "n0", "n1", "n2"]
    assert writer.groups - before == 3  # the gate's, the urgent two, the other three


def test_units_run_and_resolve_in_arrival_order(writer: GroupCommitter) -> None:
    ran: list[int] = []
    resolved: list[int] = []
    gate = Gate(writer)
    futures = []
    for n in range(10):
        f = writer.submit(lambda _s, n=n: ran.append(n) or n)
        f.add_done_callback(lambda f: resolved.append(f.result()))
        futures.append(f)
    gate.open()
    assert [f.result(10) for f in futures] == list(range(10))
    assert ran == resolved == list(range(10))


def test_post_commit_work_runs_after_the_commit_and_not_for_a_failed_unit(
        writer: GroupCommitter, store: Store) -> None:
    commits = commits_of(store)
    hooks: list[tuple[str, int]] = []

    def unit(name: str, fail: bool) -> Callable[[Session], None]:
        def work(session: Session) -> None:
            audit.record(session, list_id=None, actor="test", action=name, target="", detail="")
            after_commit(session, lambda: hooks.append((name, len(commits))))
            if fail:
                raise ValueError(name)
        return work

    gate = Gate(writer)
    ok = writer.submit(unit("ok", False))
    bad = writer.submit(unit("bad", True))
    gate.open()
    ok.result(10)
    with pytest.raises(ValueError):
        bad.result(10)
    # After the group's commit, none for the failed unit.
    assert hooks == [("ok", 1)]


def test_at_most_max_group_units_share_a_transaction(store: Store) -> None:
    c = GroupCommitter(store, max_group=3)
    c.start()
    try:
        gate = Gate(c)
        before = c.groups
        futures = [c.submit(lambda _s: None) for _ in range(7)]
        gate.open()
        for f in futures:
            f.result(10)
        assert c.groups - before == 4  # the gate's, then 3 + 3 + 1
    finally:
        c.stop()


def test_several_writers_commit_everything(store: Store) -> None:
    c = GroupCommitter(store, writers=3)
    c.start()
    try:
        def write(n: int) -> Callable[[Session], int]:
            def work(session: Session) -> int:
                audit.record(session, list_id=None, actor="test", action=f"unit-{n}")
                return n
            return work

        futures = [c.submit(write(n), urgent=n % 5 == 0) for n in range(40)]
        assert sorted(f.result(30) for f in futures) == list(range(40))
    finally:
        c.stop()
    with store.session() as s:
        actions = s.exec(select(AuditEntry.action).where(  # type: ignore[call-overload]
            AuditEntry.actor == "test")).scalars().all()
    assert sorted(actions) == sorted(f"unit-{n}" for n in range(40))
    assert c.units == 40


def test_a_cancelled_unit_is_not_written_and_the_writer_goes_on(writer: GroupCommitter,
                                                              store: Store) -> None:
    def write(name: str) -> Callable[[Session], None]:
        return lambda session: audit.record(session, list_id=None, actor="test", action=name)

    gate = Gate(writer)
    gone = writer.submit(write("gone"))
    kept = writer.submit(write("kept"))
    assert gone.cancel()  # its SMTP session closed while it waited
    gate.open()
    kept.result(10)
    assert writer.submit(write("after")).result(10) is None
    with store.session() as s:
        actions = s.exec(select(AuditEntry.action).where(  # type: ignore[call-overload]
            AuditEntry.actor == "test")).scalars().all()
    assert sorted(actions) == ["after", "kept"]


def test_background_units_take_one_place_in_a_busy_group_and_fill_a_quiet_one(
        writer: GroupCommitter) -> None:
    ran: list[str] = []
    gate = Gate(writer)
    futures = [writer.submit(lambda _s, n=n: ran.append(f"b{n}"), background=True)
               for n in range(3)]
    futures += [writer.submit(lambda _s, n=n: ran.append(f"n{n}")) for n in range(2)]
    before = writer.groups
    time.sleep(QUIET * 2)  # arrivals are quiet once the first group is taken
    gate.open()
    for f in futures:
        f.result(10)
    # Arrivals first with one background unit; the other two once arrivals are quiet.
    assert ran == ["n0", "n1", "b0", "b1", "b2"]
    assert writer.groups - before == 2 + 1, "the gate's, n0 n1 b0, then b1 b2"


def test_a_quiet_group_of_background_units_gives_way_to_an_arrival(
        writer: GroupCommitter) -> None:
    """A group of background units (arrivals quiet) is cut short when other work arrives: the
    arrival waits behind the unit being run, not the whole group; the units left run after it,
    in their order, and every one runs once."""
    ran: list[str] = []
    started = threading.Event()

    def slow(_s: Session, n: int) -> None:
        ran.append(f"b{n}")
        started.set()
        time.sleep(0.02)

    futures = [writer.submit(lambda s, n=n: slow(s, n), background=True) for n in range(12)]
    assert started.wait(10)
    arrived = time.monotonic()
    normal = writer.submit(lambda _s: ran.append("n"))
    normal.result(10)
    waited = time.monotonic() - arrived
    for f in futures:
        f.result(10)
    at = ran.index("n")
    assert 1 <= at <= 3, ran  # behind the unit being run (and one more at most), not all 12
    assert waited < 0.15, f"the arrival waited {waited:.3f} s: the whole group's time"
    assert [r for r in ran if r != "n"] == [f"b{n}" for n in range(12)], ran
    assert writer.gave_way >= 1


def test_a_unit_that_waited_too_long_goes_before_later_urgent_ones(
        writer: GroupCommitter, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    gate = Gate(writer)
    old = writer.submit(lambda _s: ran.append("normal"))
    monkeypatch.setattr(time, "monotonic", lambda real=time.monotonic: real() + 10)
    fresh = [writer.submit(lambda _s, n=n: ran.append(f"u{n}"), urgent=True) for n in range(2)]
    gate.open()
    for f in [old, *fresh]:
        f.result(10)
    assert ran == ["normal", "u0", "u1"], "it had waited longer than MAX_NORMAL_WAIT"


def test_an_urgent_group_takes_background_work_only_once_it_has_waited(
        writer: GroupCommitter, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    gate = Gate(writer)
    fresh = writer.submit(lambda _s: ran.append("b0"), background=True)
    urgent = writer.submit(lambda _s: ran.append("u0"), urgent=True)
    before = writer.groups
    gate.open()
    for f in (fresh, urgent):
        f.result(10)
    assert ran == ["u0", "b0"] and writer.groups - before == 3, "the gate, u0 alone, b0"
    gate = Gate(writer)
    old = writer.submit(lambda _s: ran.append("b1"), background=True)
    later = writer.submit(lambda _s: ran.append("u1"), urgent=True)
    monkeypatch.setattr(time, "monotonic", lambda real=time.monotonic: real() + 10)
    before = writer.groups
    gate.open()
    for f in (old, later):
        f.result(10)
    assert ran[2:] == ["u1", "b1"] and writer.groups - before == 2, "the gate, u1 with b1"


def test_an_urgent_writer_writes_urgent_units_while_the_writer_is_busy(store: Store) -> None:
    """PostgreSQL has no database-wide write lock: a member's post need not wait for the group
    being written (a held post or a few) when an urgent writer takes urgent units alone."""
    c = GroupCommitter(store, urgent_writer=True)
    c.start()
    try:
        held, release = threading.Event(), threading.Event()

        def busy(session: Session) -> None:
            if store.is_postgres:  # a transaction that has written (one writer at a time on SQLite)
                audit.record(session, list_id=None, actor="test", action="busy")
            held.set()
            assert release.wait(30)

        ran: list[str] = []
        gate = c.submit(busy, own_savepoints=True)
        assert held.wait(10)
        others = [c.submit(lambda _s: ran.append("normal")),
                  c.submit(lambda _s: ran.append("background"), background=True)]
        urgent = c.submit(lambda s: audit.record(s, list_id=None, actor="test", action="urgent"),
                          urgent=True)
        urgent.result(10)  # committed while the writer is still busy
        with store.read_session() as s:
            assert s.execute(select(AuditEntry.action).where(
                AuditEntry.actor == "test")).scalars().all() == ["urgent"]
        assert ran == [] and not any(f.done() for f in others), "the rest waits for the writer"
        release.set()
        gate.result(10)
        for f in others:
            f.result(10)
        assert ran == ["normal", "background"]
    finally:
        release.set()
        c.stop()
    assert c._threads == []


def test_serve_and_its_smtp_process_give_an_urgent_writer_to_postgresql_only(
        server: Running, store: Store) -> None:
    assert committer(server).urgent_writer is store.is_postgres
    assert for_store(store).urgent_writer is store.is_postgres  # listserv/door.py's


def commit_setting(session: Session) -> str | None:
    """The transaction's ``synchronous_commit`` on PostgreSQL; its ``synchronous`` on SQLite
    (fixed for the transaction: SQLite refuses to change it inside one), "1" NORMAL or "2"
    FULL."""
    if session.connection().dialect.name != "postgresql":
        return str(session.execute(text("PRAGMA synchronous")).scalar())
    return str(session.execute(text("SELECT current_setting('synchronous_commit')")).scalar())


def lazy_and_durable(store: Store) -> tuple[str, str]:
    return ("off", "on") if store.is_postgres else ("1", "2")


@pytest.mark.parametrize(("durable", "lazy"), [([], False), ([False], True),
                                               ([False, False], True), ([False, True], False),
                                               ([True], False)])
def test_only_a_group_of_units_nobody_waits_on_commits_lazily(durable: list[bool],
                                                              lazy: bool) -> None:
    assert async_commit.lazy(durable) is lazy


def test_a_group_of_pipeline_units_commits_without_waiting_for_the_wal_flush(
        writer: GroupCommitter, store: Store) -> None:
    off, on = lazy_and_durable(store)
    gate = Gate(writer)
    lazy = [writer.submit(commit_setting, background=True, durable=False) for _ in range(2)]
    gate.open()
    assert [f.result(10) for f in lazy] == [off, off]
    # A durable unit (the SMTP door's) in the group: the whole group waits for the flush.
    gate = Gate(writer)
    mixed = [writer.submit(commit_setting, durable=False), writer.submit(commit_setting)]
    gate.open()
    assert [f.result(10) for f in mixed] == [on, on]
    # The setting was the transaction's own: the next group is back to the server's default.
    assert writer.submit(commit_setting).result(10) == on


def test_the_pipeline_handles_a_post_lazily_and_the_door_stores_it_durably(
        server: Running, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, str | None] = {}
    real_enqueue, real_handle = inbound_queue.enqueue_many, inbound_queue.handle

    def enqueue(session: Session, *args: Any, **kwargs: Any) -> Any:
        seen["door"] = commit_setting(session)
        return real_enqueue(session, *args, **kwargs)

    def handle(session: Session, *args: Any, **kwargs: Any) -> Any:
        seen["pipeline"] = commit_setting(session)
        return real_handle(session, *args, **kwargs)

    monkeypatch.setattr(inbound_queue, "enqueue_many", enqueue)
    monkeypatch.setattr(inbound_queue, "handle", handle)
    threads, answers = send_all(server.port, ["Lazy"])
    for t in threads:
        t.join(30)
    assert answers["Lazy"][0] == 250
    server.settle()
    assert stored(store, MessageStatus.ACCEPTED) == ["Lazy"]
    off, on = lazy_and_durable(store)
    assert seen == {"door": on, "pipeline": off}
