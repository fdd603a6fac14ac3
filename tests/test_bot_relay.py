"""Email -> Discord through the wire (issue 8): posts sent over SMTP to the running server are
relayed by the bot's relay worker (bot/relay.py) into the Discord API double, through
discord.py's own REST and webhook code: threads opened (forum posts, or a thread on a starter
message), the author's name on the webhook, long posts in order, no pings, retries on 429,
5xx and an unreachable Discord, no part written twice."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import discord
import pytest
from sqlmodel import select

from bot import relay
from listserv import discord_bridge
from listserv.config import Config, load
from listserv.models import DiscordPost, DiscordRelay, DiscordThread, MailingList
from listserv.store import Store
from tests.discord_double import DiscordDouble, Posted, ThreadedDouble, snowflake
from tests.harness import DOMAIN, Running, mail, make_list, wait_until, write_config
from tests.smtpsink import SmtpSink
from tests.test_bot_links import discord_cfg

POST = f"demo@{DOMAIN}"
JANE = "jane@acme.example"
ANN = "ann@council.gov.uk"
FAST = relay.Timing(poll_interval=0.05, retry_base=0.1, retry_cap=0.5, send_timeout=20)


@dataclass
class Bridge:
    server: Running
    threaded: ThreadedDouble
    store: Store
    cfg: Config

    def restart(self) -> None:
        """Stop the whole process and start it again on the same store."""
        self.server.stop()
        self.server = Running(self.cfg, self.store).start()

    @property
    def double(self) -> DiscordDouble:
        return self.threaded.double

    def relays(self) -> list[DiscordRelay]:
        with self.store.session() as s:
            return list(s.exec(select(DiscordRelay).order_by(DiscordRelay.id)))  # type: ignore[arg-type]

    def all_sent(self, count: int | None = None, timeout: float = 15.0) -> list[DiscordRelay]:
        def done() -> list[DiscordRelay] | None:
            rows = self.relays()
            if count is not None and len(rows) < count:
                return None
            return rows if rows and all(r.state != "pending" for r in rows) else None
        result: list[DiscordRelay] = wait_until(done, timeout, "every relay written")
        return result

    def webhook_posts(self) -> list[Posted]:
        return [p for p in self.double.posted if p.webhook_id]


@pytest.fixture(autouse=True)
def fast_relay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "TIMING", FAST)


def _members(store: Store) -> None:
    make_list(store, "demo", members=(ANN,), policy_scope="off")
    from listserv.subscriptions import add_member
    with store.session() as s:
        ml = s.exec(select(MailingList).where(MailingList.name == "demo")).one()
        add_member(s, ml, JANE, name="Jane Doe", organisation="Acme Ltd", vendor=True,
                   verified=True)


@contextmanager
def bridge(tmp_path: Path, db_url: str, sink: SmtpSink, store: Store, *,
           forum: bool = True) -> Iterator[Bridge]:
    _members(store)
    forums = ("demo-list",) if forum else ()
    with ThreadedDouble(forums=forums) as threaded:
        cfg = discord_cfg(load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={}),
                          threaded.double)
        b = Bridge(Running(cfg, store).start(), threaded, store, cfg)
        try:
            yield b
        finally:
            b.server.stop()


def _send(b: Bridge, sender: str, subject: str, body: str, **kw: str) -> None:
    b.server.send(sender, POST, mail(sender, POST, subject, body, **kw))  # type: ignore[arg-type]


def test_email_thread_becomes_a_forum_post_and_replies_follow(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    with bridge(tmp_path, db_url, sink, store) as b:
        _send(b, JANE, "Which LMS do you use?", "We run Moodle.\n\nHappy to show it.\n",
              message_id="q1@acme.example")
        [first] = b.all_sent(1)
        assert first.state == "sent" and first.parts_sent == 1
        channel = b.double.channels["demo-list"]
        [thread_id] = [t for t, th in b.double.threads.items() if th["parent_id"] == channel]
        assert b.double.threads[thread_id]["name"] == "Which LMS do you use?"
        [opening] = b.webhook_posts()
        assert opening.channel_id == thread_id
        assert opening.username == "Jane Doe (Acme Ltd, vendor)"
        assert opening.content.startswith("We run Moodle.\n\nHappy to show it.")
        assert opening.allowed_mentions == {"parse": []}
        assert first.discord_message_ids == opening.id
        with store.session() as s:
            [mapped] = s.exec(select(DiscordThread)).all()
            assert (mapped.discord_thread_id, mapped.channel_id) == (thread_id, channel)

        _send(b, ANN, "Re: [demo] Which LMS do you use?",
              "We use Totara.\n\nOn Wed, 25 Nov 2026 at 10:00, Jane Doe <jane@acme.example> "
              "wrote:\n> We run Moodle.\n>\n> Happy to show it.\n",
              headers={"In-Reply-To": "<q1@acme.example>"})
        b.all_sent(2)
        opening_reply = b.webhook_posts()[1]
        assert opening_reply.channel_id == thread_id  # the same Discord thread
        assert opening_reply.username == "ann"  # no name known: the address's local part
        assert opening_reply.content.startswith("We use Totara.")
        assert "Moodle" not in opening_reply.content  # the quote is hidden ...
        assert "signature hidden; the whole post: <https://" in opening_reply.content
        assert len([t for t in b.double.threads.values() if t["parent_id"] == channel]) == 1


def test_a_thread_deleted_in_discord_is_replaced(tmp_path: Path, db_url: str, sink: SmtpSink,
                                                store: Store) -> None:
    with bridge(tmp_path, db_url, sink, store) as b:
        _send(b, ANN, "Deleted later", "The first post.\n", message_id="d1@council.gov.uk")
        b.all_sent(1)
        [old] = list(b.double.threads)
        del b.double.threads[old]  # a moderator deletes the forum post in Discord
        _send(b, ANN, "Re: Deleted later", "A reply.\n",
              headers={"In-Reply-To": "<d1@council.gov.uk>"})
        rows = b.all_sent(2)
        assert [r.state for r in rows] == ["sent", "sent"]
        [new] = list(b.double.threads)
        assert new != old and b.double.threads[new]["name"] == "Deleted later"
        assert [(p.channel_id, p.content) for p in b.webhook_posts()] == [
            (old, "The first post."), (new, "A reply.")]
        with store.session() as s:
            assert [m.discord_thread_id for m in s.exec(select(DiscordThread))] == [new]


def test_text_channel_gets_a_starter_message_and_a_thread(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    with bridge(tmp_path, db_url, sink, store, forum=False) as b:
        _send(b, ANN, "Broadband survey", "Has anyone answered it yet?\n")
        b.all_sent(1)
        channel = b.double.channels["demo-list"]
        [starter] = [p for p in b.double.posts_in(channel) if not p.webhook_id]
        assert "**Broadband survey**" in starter.content
        assert "/lists/demo/threads/" in starter.content
        assert starter.allowed_mentions == {"parse": []}
        [thread_id] = list(b.double.threads)
        assert b.double.threads[thread_id]["parent_id"] == channel
        [post] = b.webhook_posts()
        assert post.channel_id == thread_id and post.content == "Has anyone answered it yet?"
        # The bot made one webhook, named for what it does, and reuses it.
        _send(b, ANN, "Second thread", "Another one.\n")
        b.all_sent(2)
        assert [w["name"] for w in b.double.webhooks.values()] == ["Commonroom"]
        assert len(b.double.threads) == 2


def test_long_post_is_split_in_order_at_paragraphs_and_mentions_do_not_ping(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    paragraphs = [f"Paragraph {n}: " + "word " * 150 for n in range(1, 8)]  # ~760 chars each
    body = "@everyone look <@123> and <@&456>\n\n" + "\n\n".join(p.strip() for p in paragraphs)
    with bridge(tmp_path, db_url, sink, store) as b:
        _send(b, ANN, "Long read", body + "\n")
        [row] = b.all_sent(1)
        posts = b.webhook_posts()
        assert row.parts_sent == len(posts) > 1
        assert all(len(p.content) <= 2000 for p in posts)
        assert all(p.allowed_mentions == {"parse": []} for p in posts)
        assert posts[0].content.startswith("@everyone look <@123>")
        text = "\n\n".join(p.content for p in posts)
        assert text == body.strip()  # nothing lost, nothing reordered, cut between paragraphs
        assert row.discord_message_ids.split() == [p.id for p in posts]
        assert len({p.channel_id for p in posts}) == 1


def test_429_then_success_is_relayed_once(tmp_path: Path, db_url: str, sink: SmtpSink,
                                          store: Store) -> None:
    with bridge(tmp_path, db_url, sink, store) as b:
        b.double.fail("POST", "/webhooks/", 429, times=1, headers={"Via": "1.1 google"},
                      body={"message": "You are being rate limited.", "retry_after": 0.2,
                            "global": False})
        _send(b, ANN, "Rate limits", "Slow down.\n")
        [row] = b.all_sent(1)
        attempts = [r for r in b.double.requests
                    if r.method == "POST" and r.path.startswith("/webhooks/")]
        assert len(attempts) == 2  # discord.py waited retry_after and tried again
        assert [p.content for p in b.webhook_posts()] == ["Slow down."]
        assert row.state == "sent" and row.attempts == 0


def test_429_without_via_and_5xx_are_retried_later_in_order(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    with bridge(tmp_path, db_url, sink, store) as b:
        # A 429 without Via: discord.py raises; the relay waits and tries again.
        b.double.fail("POST", "/webhooks/", 429, times=1,
                      body={"message": "rate limited", "retry_after": 0.1, "global": False})
        _send(b, ANN, "First", "One.\n")
        _send(b, ANN, "Second", "Two.\n")
        rows = b.all_sent(2)
        assert [r.state for r in rows] == ["sent", "sent"]
        assert (rows[0].attempts, rows[1].attempts) == (1, 0)
        assert [p.content for p in b.webhook_posts()] == ["One.", "Two."]


def test_relays_wait_while_discord_is_down_and_go_out_in_order(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    with bridge(tmp_path, db_url, sink, store) as b:
        _send(b, ANN, "Before", "Before the outage.\n")
        b.all_sent(1)
        b.threaded.call(b.double.go_down())
        for n in range(1, 4):
            _send(b, ANN, "Re: Before" if n != 2 else "New topic", f"During {n}.\n")
        wait_until(lambda: any(r.attempts >= 2 for r in b.relays()), 10,
                   "the relay trying while Discord is down")
        assert len(b.webhook_posts()) == 1
        pending = [r for r in b.relays() if r.state == "pending"]
        assert len(pending) == 3 and "unreachable" in pending[0].last_error
        assert all(r.attempts == 0 for r in pending[1:])  # held behind the first
        b.threaded.call(b.double.come_back())
        rows = b.all_sent(4)
        assert [r.state for r in rows] == ["sent"] * 4
        contents = [p.content for p in b.webhook_posts()]
        assert contents == ["Before the outage.", "During 1.", "During 2.", "During 3."]
        posts = b.webhook_posts()
        assert posts[1].channel_id == posts[0].channel_id == posts[3].channel_id
        assert posts[2].channel_id != posts[0].channel_id  # "New topic" opened a thread


def test_a_permanent_refusal_fails_that_row_and_the_rest_go_on(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store,
        caplog: pytest.LogCaptureFixture) -> None:
    with bridge(tmp_path, db_url, sink, store) as b:
        b.double.fail("POST", "/webhooks/", 403, times=1,
                      body={"message": "Missing Permissions", "code": 50013})
        _send(b, ANN, "Refused", "Not allowed.\n")
        _send(b, ANN, "Allowed", "Fine.\n")
        rows = b.all_sent(2)
        assert [r.state for r in rows] == ["failed", "sent"]
        assert "403" in rows[0].last_error
        assert [p.content for p in b.webhook_posts()] == ["Fine."]
        [line] = [r for r in caplog.records if "failed for good" in r.getMessage()]
        assert line.message_pk == rows[0].message_pk  # type: ignore[attr-defined]


def test_restart_midway_writes_no_part_twice(tmp_path: Path, db_url: str, sink: SmtpSink,
                                             store: Store) -> None:
    body = "\n\n".join(f"Part {n} " + "x" * 1500 for n in range(1, 4))
    with bridge(tmp_path, db_url, sink, store) as b:
        # The third part's connection breaks (and every retry's): two parts are recorded.
        b.double.fail("POST", "/webhooks/", 0, times=1000, skip=2)
        _send(b, ANN, "Three parts", body + "\n")
        wait_until(lambda: b.relays() and b.relays()[0].attempts >= 2, 10, "part 3 failing")
        [row] = b.relays()
        assert (row.state, row.parts_sent) == ("pending", 2)
        b.restart()  # the process stops mid-way and starts again
        b.double.faults.clear()
        [row] = b.all_sent(1)
        posts = b.webhook_posts()
        assert [p.content[:6] for p in posts] == ["Part 1", "Part 2", "Part 3"]
        assert row.parts_sent == 3 and row.discord_message_ids.split() == [p.id for p in posts]
        assert len({p.channel_id for p in posts}) == 1


def test_channel_message_goes_to_its_channel(tmp_path: Path, db_url: str, sink: SmtpSink,
                                             store: Store) -> None:
    with bridge(tmp_path, db_url, sink, store) as b:
        general = b.double.channels["general"]
        with store.session() as s:
            ml = s.exec(select(MailingList)).one()
            discord_bridge.queue_channel_message(s, ml.id, general,
                                                 "Digest 12 is out: @everyone read it")
            long = "\n\n".join(f"Thread {n}: " + "y" * 900 for n in range(1, 4))
            discord_bridge.queue_channel_message(s, ml.id, general, long)
        rows = b.all_sent(2)
        [msg, *parts] = b.double.posts_in(general)
        assert msg.content == "Digest 12 is out: @everyone read it"
        assert msg.allowed_mentions == {"parse": []} and not msg.webhook_id
        assert [p.content[:9] for p in parts] == ["Thread 1:", "Thread 3:"]  # 1+2, then 3
        assert rows[1].parts_sent == 2


def test_held_post_written_in_discord_goes_back_to_its_thread(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    """A post written in a Discord thread, held and approved later, goes back into the Discord
    thread it was written in, and that thread now carries the list thread."""
    with bridge(tmp_path, db_url, sink, store) as b:
        written_in = b.double.open_thread("Started in Discord")
        b.threaded.call(b.double.go_down())  # so the row waits while the test marks it
        _send(b, ANN, "Started in Discord", "Written in Discord.\n")
        wait_until(lambda: b.relays() and b.relays()[0].attempts >= 1, 10, "a first try")
        with store.session() as s:
            [row] = s.exec(select(DiscordRelay)).all()
            assert row.message_pk is not None
            s.add(DiscordPost(discord_message_id=snowflake(), message_pk=row.message_pk,
                              discord_thread_id=written_in, discord_user_id="5555"))
        b.threaded.call(b.double.come_back())
        b.all_sent(1)
        [post] = b.webhook_posts()
        assert post.channel_id == written_in and post.content == "Written in Discord."
        assert list(b.double.threads) == [written_in]  # no new forum post
        with store.session() as s:
            [mapped] = s.exec(select(DiscordThread)).all()
            assert discord_bridge.list_thread_for(s, written_in) is not None
            assert mapped.discord_thread_id == written_in


def _http_error(status: int, code: int = 0, headers: dict[str, str] | None = None
                ) -> discord.HTTPException:
    response = SimpleNamespace(status=status, reason="x", headers=headers or {})
    kind = {403: discord.Forbidden, 404: discord.NotFound}.get(status, discord.HTTPException)
    if status >= 500:
        kind = discord.DiscordServerError
    return kind(response, {"message": "m", "code": code})  # type: ignore[arg-type]


@pytest.mark.parametrize(("error", "retry_after"), [
    (_http_error(429, headers={"Retry-After": "3.5"}), 3.5),
    (_http_error(429), 0.0),
    (_http_error(502), 0.0),
    (_http_error(503), 0.0),
    (discord.RateLimited(12.0), 12.0),
    (aiohttp.ClientConnectorError(SimpleNamespace(ssl=None, host="h", port=1),  # type: ignore[arg-type]
                                  ConnectionRefusedError(111, "refused")), 0.0),
    (aiohttp.ServerDisconnectedError(), 0.0),
    (TimeoutError(), 0.0),
    (_http_error(403, 50013), None),
    (_http_error(404, 10003), None),
    (_http_error(400, 50035), None),
    (relay.Refused("the post is gone"), None),
])
def test_classify_retries_what_may_work_later(error: BaseException,
                                              retry_after: float | None) -> None:
    assert relay.classify(error).retry_after == retry_after


def test_classify_lets_bugs_through() -> None:
    with pytest.raises(KeyError):
        relay.classify(KeyError("a bug"))


def test_a_502_once_is_retried_by_discord_py_and_written_once(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    with bridge(tmp_path, db_url, sink, store) as b:
        b.double.fail("POST", "/webhooks/", 502, times=1, body={"message": "Bad Gateway"})
        _send(b, ANN, "Flaky", "Once only.\n")
        [row] = b.all_sent(1)
        assert [p.content for p in b.webhook_posts()] == ["Once only."]
        assert row.state == "sent"


def _link(store: Store, email: str, user: str) -> None:
    from listserv.models import Address, DiscordLink
    with store.session() as s:
        address = s.exec(select(Address).where(Address.email == email)).one()
        s.add(DiscordLink(discord_user_id=user, person_id=address.person_id))


def test_both_ways_no_echo_and_a_held_discord_post_comes_back_under_its_author(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    """With the inbound bridge (bot/cogs/bridge.py): a thread started in Discord goes to the
    list and is not relayed back; an email reply lands in that Discord thread; a Discord post
    held by emergency moderation and approved comes back into its thread under its author."""
    jane_user, mod = "555555555555555601", "555555555555555603"
    with bridge(tmp_path, db_url, sink, store, forum=False) as b:
        _link(store, JANE, jane_user)
        d, call = b.double, b.threaded.call
        call(d.wait_for("PUT", f"/applications/{d.app_id}/"))
        thread_id = d.open_thread("Meetup in Ripley")
        call(d.announce_thread(thread_id))
        call(d.user_message(thread_id, jane_user, "Who is coming on the 3rd?"))
        wait_until(lambda: [m for m in sink.messages if b"Meetup in Ripley" in m.data], 15,
                   "the Discord post delivered by mail")
        with store.session() as s:
            [root] = s.exec(select(DiscordPost)).all()
            mapped = discord_bridge.list_thread_for(s, thread_id)
            assert mapped is not None
        _send(b, ANN, "Re: [demo] Meetup in Ripley", "I am.\n")
        b.all_sent(1)  # only the email reply is relayed: Jane's own post is not echoed
        assert [(p.channel_id, p.username, p.content) for p in b.webhook_posts()] == [
            (thread_id, "ann", "I am.")]

        with store.session() as s:
            ml = s.exec(select(MailingList)).one()
            ml.emergency = True
            s.add(ml)
        held_msg = call(d.user_message(thread_id, jane_user, "Can I bring a colleague?"))
        call(d.wait_for("DELETE", f"/channels/{thread_id}/messages/{held_msg}"))
        from listserv.models import Held
        held_id = wait_until(lambda: (lambda rows: rows[0].id if rows else None)(
            _all(store, Held)), 10, "the held post")
        iid = call(d.interaction("approve", mod, {"id": held_id}, roles=("Moderators",)))
        call(d.callback_for(iid))
        b.all_sent(2)
        back = b.webhook_posts()[-1]
        assert (back.channel_id, back.username, back.content) == (
            thread_id, "Jane Doe (Acme Ltd, vendor)", "Can I bring a colleague?")
        assert root.discord_thread_id == thread_id


def _all(store: Store, model: type) -> list:  # type: ignore[type-arg]
    with store.session() as s:
        return list(s.exec(select(model)).all())
