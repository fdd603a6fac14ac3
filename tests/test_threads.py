"""Threading rules: subject keys, the pure decision, and assign_thread on each store."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from listserv.models import Message, Thread, ThreadRef
from listserv.store import Store
from listserv.threads import (
    MAX_REFERENCES,
    SUBJECT_KEY_MAX,
    SUBJECT_WINDOW,
    ThreadDecision,
    assign_thread,
    decide,
    subject_key,
)
from tests.harness import bare_list

T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)


# --- subject_key -----------------------------------------------------------------------------

@pytest.mark.parametrize(("subject", "list_name", "key"), [
    ("Breakfast meeting in Ripley", None, "breakfast meeting in ripley"),
    ("Re: Breakfast meeting", None, "breakfast meeting"),
    ("RE: re: Re:Breakfast meeting", None, "breakfast meeting"),
    ("AW: Aw: WG: Breakfast", None, "breakfast"),
    ("Fwd: FW: fw: Breakfast", None, "breakfast"),
    ("Sv: SV: Antw: Breakfast", None, "breakfast"),
    ("Réf. : Breakfast", None, "breakfast"),
    ("RE : TR : Breakfast", None, "breakfast"),  # French clients put a space before the colon
    ("Re[2]: Re(3): Re^4: Breakfast", None, "breakfast"),
    ("[localgov] Re: Breakfast", "localgov", "breakfast"),
    ("Re: [localgov] Re: [LocalGov] Breakfast", "localgov", "breakfast"),
    ("Re: [other] Fwd: [PATCH v2] Breakfast", None, "breakfast"),
    ("Breakfast (fwd)", None, "breakfast"),
    ("Re: [Fwd: Breakfast]", None, "breakfast"),
    ("Breakfast   meeting\t in\n Ripley ", None, "breakfast meeting in ripley"),
    ("Re: Breakfast: the sequel", None, "breakfast: the sequel"),  # only leading markers
    ("Report: breakfast", None, "report: breakfast"),  # "Re" must end at its colon
    ("Research", None, "research"),
    ("Ad: Re: x", None, "ad: re: x"),  # not a marker, so nothing after it is stripped either
    ("[xyz]", None, "[xyz]"),  # a tag that is the whole subject is the subject
    ("[localgov]", "localgov", ""),  # ... unless it is the list's own tag
    ("", None, ""),
    ("   ", None, ""),
    ("Re:", None, ""),
    ("Re: Re: Fwd: ", None, ""),
    ("ÜBER Straße", None, "über strasse"),  # casefold, not lower
    ("Re: Cafe\u0301", None, "café"),  # NFKC joins the combining accent
    ("回复：会议", None, "会议"),  # a full-width colon and a Chinese marker
    ("RE：ＡＢＣ", None, "abc"),  # full-width letters
])
def test_subject_key(subject: str, list_name: str | None, key: str) -> None:
    assert subject_key(subject, list_name) == key


def test_subject_key_of_hostile_subjects_is_bounded_and_fast() -> None:
    assert subject_key("Re: " * 100_000 + "x") == "x"
    assert subject_key("[a]" * 100_000) == "[a]"
    assert subject_key("(fwd) " * 100_000) == ""
    assert len(subject_key("x" * 100_000)) == SUBJECT_KEY_MAX


def test_list_tag_is_matched_whole() -> None:
    assert subject_key("[local gov] Re: x", "local gov") == "x"
    assert subject_key("[local gov]", None) == "[local gov]"


# --- decide ----------------------------------------------------------------------------------

def _c(tid: int, first_days: float, last_days: float) -> tuple[int, datetime, datetime]:
    return (tid, T0 + first_days * DAY, T0 + last_days * DAY)


@pytest.mark.parametrize(("known", "candidates", "date", "decision"), [
    ({}, [], T0, ThreadDecision(None)),
    ({"a@x": 7}, [], T0, ThreadDecision(7)),
    ({"a@x": 7, "b@x": 7}, [], T0, ThreadDecision(7)),
    ({"a@x": 9, "b@x": 3, "c@x": 5}, [], T0, ThreadDecision(3, (5, 9))),  # oldest survives
    ({"a@x": 7}, [_c(2, 0, 0)], T0, ThreadDecision(7)),  # references beat the subject
    ({}, [_c(4, 0, 2)], T0 + 5 * DAY, ThreadDecision(4)),
    ({}, [_c(4, 0, 2)], T0 + 32 * DAY, ThreadDecision(4)),  # the window is inclusive
    ({}, [_c(4, 0, 2)], T0 + 33 * DAY, ThreadDecision(None)),
    ({}, [_c(4, 0, 2)], T0 - 30 * DAY, ThreadDecision(4)),  # a late-arriving earlier post
    ({}, [_c(4, 0, 2)], T0 - 31 * DAY, ThreadDecision(None)),
    ({}, [_c(8, 0, 1), _c(6, 0, 1)], T0, ThreadDecision(6)),  # a tie: lowest id
    ({}, [_c(6, -90, -60), _c(8, 0, 1)], T0, ThreadDecision(8)),  # only those in the window
])
def test_decide(known: dict[str, int], candidates: list[tuple[int, datetime, datetime]],
                date: datetime, decision: ThreadDecision) -> None:
    assert decide(known, candidates, date) == decision


def test_window_is_thirty_days() -> None:
    assert timedelta(days=30) == SUBJECT_WINDOW


# --- assign_thread ---------------------------------------------------------------------------

def _post(store: Store, list_id: int, message_id: str, references: Sequence[str] = (),
          subject: str = "Breakfast", date: datetime = T0) -> int:
    """Thread a post and store it, as the posting pipeline does: one transaction."""
    with store.session() as s:
        tid = assign_thread(s, list_id, message_id, references, subject, date, "localgov")
        s.add(Message(list_id=list_id, thread_id=tid, message_id=message_id, subject=subject,
                      date=date, raw=b""))
        return tid


def _threads(s: Session, list_id: int) -> list[Thread]:
    return list(s.exec(select(Thread).where(Thread.list_id == list_id).order_by(col(Thread.id))))


def test_reply_joins_parent(store: Store) -> None:
    lid = bare_list(store)
    root = _post(store, lid, "a@x", subject="Breakfast in Ripley")
    assert _post(store, lid, "b@x", ["a@x"], "Re: Breakfast in Ripley", T0 + DAY) == root
    assert _post(store, lid, "c@x", ["a@x", "b@x"], "Re: Booking", T0 + 2 * DAY) == root
    with store.session() as s:
        (t,) = _threads(s, lid)
        assert (t.post_count, t.subject, t.subject_key) == (3, "Breakfast in Ripley",
                                                            "breakfast in ripley")
        assert (t.first_post_at, t.last_post_at) == (T0, T0 + 2 * DAY)


def test_child_before_parent_joins_and_parent_gives_the_subject(store: Store) -> None:
    lid = bare_list(store)
    child = _post(store, lid, "b@x", ["a@x"], "Re: Breakfast", T0 + DAY)
    assert _post(store, lid, "a@x", [], "Breakfast", T0) == child
    with store.session() as s:
        (t,) = _threads(s, lid)
        assert (t.post_count, t.subject, t.first_post_at, t.last_post_at) == (
            2, "Breakfast", T0, T0 + DAY)


def test_two_phantoms_merged_by_a_later_message(store: Store) -> None:
    lid = bare_list(store)
    # Two replies to parents the list never saw, under different subjects: two threads...
    first = _post(store, lid, "b@x", ["p1@x"], "Re: Competition", T0 + DAY)
    second = _post(store, lid, "c@x", ["p2@x"], "Re: Guest posts", T0)
    assert first < second
    # ... until a post names both: they were one conversation all along.
    assert _post(store, lid, "d@x", ["p1@x", "p2@x"], "Re: both", T0 + 2 * DAY) == first
    with store.session() as s:
        (t,) = _threads(s, lid)
        assert (t.id, t.post_count, t.subject, t.first_post_at) == (first, 3, "Re: Guest posts",
                                                                    T0)
        refs = s.exec(select(ThreadRef.ref, ThreadRef.thread_id)
                      .where(ThreadRef.list_id == lid)).all()
        assert sorted(refs) == [(r, first) for r in ("b@x", "c@x", "d@x", "p1@x", "p2@x")]
        assert {m.thread_id for m in s.exec(select(Message))} == {first}


def test_subject_fallback_when_no_reference_is_known(store: Store) -> None:
    lid = bare_list(store)
    root = _post(store, lid, "a@x", subject="Social media cafe")
    # A client that drops References, and a reply to a post from before the archive began.
    assert _post(store, lid, "b@x", [], "RE: Social media cafe", T0 + 3 * DAY) == root
    assert _post(store, lid, "c@x", ["old@x"], "Re: [localgov] Social media cafe",
                 T0 + 4 * DAY) == root
    # The phantom it named now belongs to the thread too.
    assert _post(store, lid, "d@x", ["old@x"], "Re: something else", T0 + 5 * DAY) == root


def test_same_subject_forty_days_apart_stays_apart(store: Store) -> None:
    lid = bare_list(store)
    march = _post(store, lid, "a@x", subject="Guest post Friday")
    april = _post(store, lid, "b@x", subject="Re: Guest post Friday", date=T0 + 40 * DAY)
    assert march != april
    # A post between them fits both windows: the older thread wins, deterministically.
    assert _post(store, lid, "c@x", subject="Guest post Friday", date=T0 + 20 * DAY) == march


def test_references_beat_the_subject(store: Store) -> None:
    lid = bare_list(store)
    other = _post(store, lid, "a@x", subject="Help")
    mine = _post(store, lid, "b@x", ["elsewhere@x"], "Help", T0 + 30 * DAY + DAY)
    assert mine != other
    assert _post(store, lid, "c@x", ["b@x"], "Help", T0 + DAY) == mine


def test_empty_subjects_are_no_evidence(store: Store) -> None:
    lid = bare_list(store)
    assert _post(store, lid, "a@x", subject="") != _post(store, lid, "b@x", subject="Re:")


def test_duplicate_message_id_joins_the_original(store: Store) -> None:
    lid = bare_list(store)
    assert _post(store, lid, "a@x", subject="x") == _post(store, lid, "a@x", subject="y")


def test_cycle_and_self_reference_terminate(store: Store) -> None:
    lid = bare_list(store)
    a = _post(store, lid, "a@x", ["b@x", "a@x"], "one")
    assert _post(store, lid, "b@x", ["a@x", "b@x"], "two") == a


def test_lists_are_threaded_apart(store: Store) -> None:
    one, two = bare_list(store, "one"), bare_list(store, "two")
    assert _post(store, one, "a@x") != _post(store, two, "b@x", ["a@x"])


def test_empty_message_id_is_not_indexed(store: Store) -> None:
    # Giving a post a Message-ID is the caller's job; an empty one must not glue posts together.
    lid = bare_list(store)
    assert _post(store, lid, "", subject="one") != _post(store, lid, "", subject="two")
    with store.session() as s:
        assert s.exec(select(ThreadRef).where(ThreadRef.ref == "")).first() is None


def test_many_references_are_trimmed(store: Store) -> None:
    lid = bare_list(store)
    refs = [f"r{i}@x" for i in range(5000)]
    tid = _post(store, lid, "a@x", refs)
    with store.session() as s:
        kept = set(s.exec(select(ThreadRef.ref).where(ThreadRef.thread_id == tid)))
    assert len(kept) == MAX_REFERENCES + 1
    assert {"a@x", "r0@x", "r4999@x"} <= kept  # the root and the nearest parent survive


def test_naive_date_is_a_bug(store: Store) -> None:
    lid = bare_list(store)
    with store.session() as s, pytest.raises(ValueError, match="aware"):
        assign_thread(s, lid, "a@x", [], "x", datetime(2024, 1, 1))


def test_concurrent_posts_naming_one_phantom_share_a_thread(store: Store) -> None:
    # Two SMTP sessions deliver replies to the same unseen parent at once. Without threading
    # being serialised per list, both would create a thread and the second would then fail
    # on thread_ref's primary key.
    lid = bare_list(store)
    inside, release = threading.Event(), threading.Event()
    results: dict[str, int | BaseException] = {}

    def deliver(name: str, message_id: str) -> None:
        try:
            if name == "second":
                inside.wait(10)
            with store.session() as s:
                results[name] = assign_thread(s, lid, message_id, ["p@x"], "x", T0)
                if name == "first":
                    inside.set()
                    release.wait(10)
        except BaseException as e:  # reported below, not lost in the thread
            results[name] = e

    workers = [threading.Thread(target=deliver, args=a) for a in [("first", "a@x"),
                                                                    ("second", "b@x")]]
    for w in workers:
        w.start()
    inside.wait(10)
    time.sleep(0.3)  # let the second reach the lock before the first commits
    release.set()
    for w in workers:
        w.join(20)
    assert results["first"] == results["second"], results


def test_a_thread_the_session_holds_stays_equal_to_its_row(store: Store) -> None:
    # place writes threads with core statements (issue 12); an ORM Thread loaded earlier in the
    # same transaction (the Discord door reads one before posting) must neither read stale
    # counts nor flush them back over the row, nor keep a rolled-back savepoint's.
    lid = bare_list(store)
    tid = _post(store, lid, "a@x", subject="Breakfast", date=T0)
    with store.session() as s:
        held = s.get(Thread, tid)
        assert held is not None and held.post_count == 1
        assert assign_thread(s, lid, "b@x", ["a@x"], "Re: Breakfast", T0 + timedelta(hours=1),
                             "localgov") == tid
        assert (held.post_count, held.last_post_at) == (2, T0 + timedelta(hours=1))
        assert held not in s.dirty
        held.participants = '["Ann"]'  # a change of its own is flushed, the counts kept
        with pytest.raises(RuntimeError), s.begin_nested():  # a post whose unit fails
            assign_thread(s, lid, "c@x", ["a@x"], "Re: Breakfast", T0 + timedelta(hours=2),
                          "localgov")
            raise RuntimeError("the unit failed")
        assert (held.post_count, held.last_post_at) == (2, T0 + timedelta(hours=1))
    with store.session() as s:
        row = s.get(Thread, tid)
        assert row is not None
        assert (row.post_count, row.last_post_at, row.participants) == (
            2, T0 + timedelta(hours=1), '["Ann"]')
