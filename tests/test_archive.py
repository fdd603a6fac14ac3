"""The archive's queries (listserv/archive.py) over posts that went through the real posting
path, on each backend: only accepted posts, thread summaries kept on accept, keyset pages."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from listserv import archive
from listserv.archive import Cursor
from listserv.models import Held, Message, MessageStatus, Thread, utcnow
from listserv.reply_tree import flatten
from listserv.store import Store
from tests.archive_posts import add_vendor, post
from tests.harness import mail, make_list

TO = "demo@lists.example.org"


def _conversation(store: Store) -> dict[str, int]:
    make_list(store, members=("alice@example.org", "bob@example.org"))
    add_vendor(store, "carol@acme.example", "Acme Ltd", name="Carol Vendor")
    pks = {}
    pks["open"] = post(store, mail('"Alice A" <alice@example.org>', TO, "Which LMS?",
                                   "We use Moodle.", message_id="open@x")).message_pk
    pks["reply"] = post(store, mail('"Bob B" <bob@example.org>', TO, "Re: Which LMS?",
                                    "Totara here.\n\n> We use Moodle.", message_id="reply@x",
                                    headers={"In-Reply-To": "<open@x>",
                                             "References": "<open@x>"})).message_pk
    pks["vendor"] = post(store, mail("carol@acme.example", TO, "Re: Which LMS?",
                                     "https://acme.example/lms", message_id="vendor@x",
                                     headers={"In-Reply-To": "<reply@x>",
                                              "References": "<open@x> <reply@x>"})).message_pk
    pks["held"] = post(store, mail("stranger@elsewhere.example", TO, "Re: Which LMS?",
                                   "Buy our LMS!", message_id="held@x",
                                   headers={"In-Reply-To": "<open@x>"})).message_pk
    pks["discarded"] = post(store, mail("alice@example.org", TO, "Out of office",
                                        "Away.", message_id="auto@x",
                                        headers={"Auto-Submitted": "auto-replied",
                                                 "In-Reply-To": "<open@x>"})).message_pk
    return pks


def test_a_thread_shows_accepted_posts_in_a_tree_with_a_kept_summary(store: Store) -> None:
    pks = _conversation(store)
    with store.read_session() as s:
        statuses = {m.id: m.status for m in s.exec(select(Message))}
        assert statuses[pks["held"]] == MessageStatus.HELD.value
        assert statuses[pks["discarded"]] == MessageStatus.DISCARDED.value
        page = archive.threads(s, 1)
        assert len(page.rows) == 1 and page.next is None
        row = page.rows[0]
        assert (row.subject, row.posts, row.replies) == ("Which LMS?", 3, 2)
        assert row.participants == ("Alice A", "Bob B", "Carol Vendor")
        assert row.participant_count == 3
        assert s.get(Thread, row.id).opening_pk == pks["open"]  # type: ignore[union-attr]
        view = archive.thread(s, 1, row.id)
        assert view is not None
        order = [(n.post.pk, n.depth) for n in flatten(view.roots)]
        assert order == [(pks["open"], 0), (pks["reply"], 1), (pks["vendor"], 2)]
        assert view.authors[pks["vendor"]].badge == "Acme Ltd, vendor"
        assert view.authors[pks["open"]].badge == ""
        for hidden in ("held", "discarded"):
            assert archive.message(s, 1, pks[hidden]) is None
        assert archive.message(s, 1, pks["reply"]) is not None
        assert archive.message(s, 2, pks["reply"]) is None  # another list's id space
        reply = archive.message(s, 1, pks["vendor"])
        assert reply is not None
        parent = archive.parent_of(s, 1, reply)
        assert parent is not None and parent.id == pks["reply"]


def test_threads_page_by_latest_activity_with_a_cursor(store: Store) -> None:
    make_list(store, members=("alice@example.org",), max_posts_per_hour=0)
    for i in range(23):
        day = f"{1 + i % 28:02d}"
        raw = mail("alice@example.org", TO, f"Topic {i}", "Text.", message_id=f"t{i}@x")
        raw = raw.replace(b"Wed, 25 Nov 2026 10:00:00", f"{day} Oct 2026 10:00:00".encode())
        post(store, raw)
    seen: list[int] = []
    cursor: Cursor | None = None
    with store.read_session() as s:
        while True:
            page = archive.threads(s, 1, cursor, limit=10)
            seen += [r.id for r in page.rows]
            lasts = [(r.last, r.id) for r in page.rows]
            assert lasts == sorted(lasts, reverse=True)
            if page.next is None:
                break
            cursor = Cursor.decode(page.next.encode())
            assert cursor == page.next
    assert len(seen) == len(set(seen)) == 23


def test_cursor_decoding_refuses_garbage() -> None:
    for text in (None, "", "x", "1-", "-1", "1-2-3", "9" * 30 + "-1", "1.5-2"):
        assert Cursor.decode(text) is None


def test_public_lists_show_activity_and_hide_other_archives(store: Store) -> None:
    make_list(store, members=("alice@example.org", "bob@example.org"))
    make_list(store, "secret", archive="private")
    post(store, mail("alice@example.org", TO, "Hello", "Hi."))
    with store.read_session() as s:
        cards = archive.public_lists(s, utcnow() + timedelta(minutes=1))
    assert [c.name for c in cards] == ["demo"]
    assert cards[0].members == 2
    assert cards[0].posts_this_month == 1
    assert sum(cards[0].weekly) == 1 and cards[0].weekly[-1] == 1


def test_chart_points_scale_to_the_busiest_week() -> None:
    assert archive.chart_points([0, 5, 10], width=30, height=20) == [(0, 0), (10, 10), (20, 20)]
    assert archive.chart_points([0, 0]) == [(0, 0), (60, 0)]


def _downgrade(store: Store, revision: str) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from listserv.store import MIGRATIONS

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_upgrade_to_0011_fills_summaries_of_existing_threads(db_url: str) -> None:
    from sqlalchemy import text

    from listserv.models import MailingList

    store = Store(db_url)
    try:
        store.upgrade("0009")
        with store.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO mailing_list (id, name, description, subject_prefix, nonmember_action,"
                " dmarc_mitigation, policy_scope, public_sources, policy_word_limit, emergency,"
                " max_posts_per_hour, hold_days, expiry_action, digest_schedule, timezone,"
                " created_at) VALUES (1, 'old', '', '', 'hold', 'auto', 'vendors', '', 60, false,"
                " 10, 7, 'reject', '0 8 * * mon', 'Europe/London', CURRENT_TIMESTAMP)"))
            conn.execute(text(
                "INSERT INTO thread (id, list_id, subject, subject_key, first_post_at,"
                " last_post_at, post_count) VALUES (7, 1, 'x', 'x', CURRENT_TIMESTAMP,"
                " CURRENT_TIMESTAMP, 2)"))
            for pk, who, name in ((11, "b@x.org", "Bea"), (10, "a@x.org", ""), (12, "b@x.org", "")):
                conn.execute(text(
                    "INSERT INTO message (id, list_id, thread_id, message_id, envelope_from,"
                    " envelope_to, from_address, from_name, subject, received_at, accepted_at,"
                    " size, dmarc_policy, policy, status, reason, raw) VALUES (:pk, 1, 7, :mid,"
                    " '', '', :who, :name, 'x', :at, :at, 0, '', '', 'accepted', '', :raw)"),
                    {"pk": pk, "mid": f"{pk}@x", "who": who, "name": name,
                     "at": utcnow() + timedelta(minutes=pk), "raw": b""})
        store.upgrade()
        with store.session() as s:
            t = s.get(Thread, 7)
            ml = s.get(MailingList, 1)
        assert t is not None and ml is not None
        assert (t.opening_pk, t.participants, t.participant_count) == (10, '["a", "Bea"]', 2)
        assert ml.archive == "public"
        _downgrade(store, "0009")  # with rows that point at mailing_list and thread
        store.upgrade()
        with store.session() as s:
            t = s.get(Thread, 7)
        assert t is not None and t.participant_count == 2
    finally:
        store.dispose()


def test_an_approved_post_joins_its_thread_and_summary(store: Store) -> None:
    from listserv import moderation
    from listserv.models import Action
    from tests.archive_posts import CFG

    pks = _conversation(store)
    with store.session() as s:
        held_id = s.exec(select(Held.id).where(Held.message_pk == pks["held"])).one()
        assert moderation.act(s, CFG, held_id, Action.ACCEPT, actor="test").ok
    with store.read_session() as s:
        row = archive.threads(s, 1).rows[0]
        assert row.posts == 4 and row.participant_count == 4
        assert row.participants[-1] == "stranger"
        view = archive.thread(s, 1, row.id)
        assert view is not None
        parents = {n.post.pk: n.parent for n in flatten(view.roots)}
        assert parents[pks["held"]] == pks["open"]
        assert archive.message(s, 1, pks["held"]) is not None
