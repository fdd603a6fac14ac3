"""Weekly digests end to end: a week of real fedora-devel threads posted through SMTP, the digest
built for a fixed period (no sleeping, no wall clock in the content) and delivered through the
outbox to a sink in all three formats; exactly once under double firing and a restart; a missed
scheduled run sent once on start-up. SQLite, and PostgreSQL where configured."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message as EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlmodel import select

from digests import periods, send
from digests.schedule import DIGEST_PREFIX
from listserv import config as config_mod
from listserv import links
from listserv.config import Config
from listserv.message import first_text
from listserv.models import DigestCopy, DigestPeriod, Message, Outbox, Thread
from listserv.store import Store
from tests.harness import DOMAIN, Running, cli, mail, make_list, parse, running, wait_until, write_config
from tests.smtpsink import SmtpSink
from tests.test_threads_corpus import FEDORA, read_mbox

LIST = "demo"
POST = f"{LIST}@{DOMAIN}"
READERS = {"plain": "pat@council.gov.uk", "mime": "mo@district.gov.uk",
           "html": "hal@borough.gov.uk", "each": "eve@council.gov.uk",
           "nomail": "nora@council.gov.uk"}
MOD = "mod@council.gov.uk"
WEEK_START = datetime(2026, 11, 16, 8, 0, tzinfo=ZoneInfo("Europe/London"))
WEEK_END = WEEK_START + timedelta(days=7)  # Monday 23 November, 08:00 London
POSTS = 40  # the first 40 posts of fedora-devel, January 2010: several threads


@pytest.fixture
def cfg(config_path: Path) -> Config:
    return config_mod.load(config_path, env={})


@pytest.fixture
def server(store: Store, cfg: Config, config_path: Path, sink: SmtpSink) -> Iterator[Running]:
    make_list(store, LIST, moderators=(MOD,), members=tuple(READERS.values()),
              nonmember_action="accept", max_posts_per_hour=0)
    for mode in ("plain", "html", "nomail"):
        assert cli(config_path, "members", "set", LIST, READERS[mode], "--delivery", mode).exit_code == 0
    with running(cfg, store) as srv:
        # One member chooses by mail, as members do.
        srv.send(READERS["mime"], f"{LIST}-request@{DOMAIN}",
                 mail(READERS["mime"], f"{LIST}-request@{DOMAIN}", "digest mime"))
        srv.drain()
        # … and confirms it from that address, as a change of delivery by mail asks.
        confirm = next(parse(m.data) for m in sink.messages if m.rcpt_tos == (READERS["mime"],)
                       and str(parse(m.data)["Subject"]).startswith("confirm "))
        srv.send(READERS["mime"], str(confirm["Reply-To"]),
                 mail(READERS["mime"], str(confirm["Reply-To"]), f"Re: {confirm['Subject']}"))
        srv.drain()
        sink.messages.clear()
        yield srv


ARCHIVE_HEADERS = re.compile(rb"(?im)^(?:precedence|list-[a-z-]+|x-loop|x-beenthere|errors-to|sender)"
                             rb":.*(?:\r?\n[ \t].*)*\r?\n")


def as_new_post(raw: bytes) -> bytes:
    """An archived post as its author sent it: without the old list's headers."""
    head, sep, body = raw.partition(b"\n\n")
    return ARCHIVE_HEADERS.sub(b"", head + b"\n").rstrip(b"\n") + sep + body


def post_week(server: Running, store: Store, corpus: Path, sink: SmtpSink,
              config_path: Path) -> list[str]:
    """The corpus posts, through SMTP, then moved into the fixed week; returns their ids."""
    posts = read_mbox(corpus / FEDORA / "2010-January.txt.gz")[:POSTS]
    for p in posts:
        server.send("fedora@corpus.test", POST, as_new_post(p.raw))
    # A held post must never appear in a digest.
    assert cli(config_path, "lists", "set", LIST, "emergency", "on").exit_code == 0
    server.send(MOD, POST, mail(MOD, POST, "Held during an incident", "do not show\n"))
    assert cli(config_path, "lists", "set", LIST, "emergency", "off").exit_code == 0
    server.drain()
    first = min(p.date for p in posts if p.date)
    shift = WEEK_START + timedelta(hours=1) - first
    with store.session() as s:
        for m in s.exec(select(Message).where(Message.envelope_to == POST)).all():
            m.received_at = (m.date or first) + shift
            if m.accepted_at is not None:
                m.accepted_at = m.received_at
            s.add(m)
        for t in s.exec(select(Thread)).all():
            t.first_post_at += shift
            t.last_post_at += shift
            s.add(t)
    sink.messages.clear()
    return [p.message_id for p in posts]


def digests_to(sink: SmtpSink, rcpt: str) -> list[EmailMessage]:
    return [parse(m.data) for m in sink.messages
            if m.rcpt_tos == (rcpt,) and "Digest" in str(parse(m.data)["Subject"])]


def decoded(part: EmailMessage) -> str:
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def test_weekly_digest_in_three_formats(server: Running, store: Store, cfg: Config,
                                        sink: SmtpSink, corpus: Path, config_path: Path) -> None:
    ids = post_week(server, store, corpus, sink, config_path)
    outcome = send.send_period(store, cfg, LIST, end=WEEK_END, trigger="schedule")
    assert outcome.recorded and outcome.queued == 3, outcome.message
    server.app.worker.wake()  # type: ignore[union-attr]
    wait_until(lambda: len(sink.messages) >= 3, what="three digests")
    server.drain()
    assert digests_to(sink, READERS["each"]) == [] and digests_to(sink, READERS["nomail"]) == []
    with store.session() as s:  # issue 7.22: stored as data (JSON), not as a pickle
        assert sorted(json.loads(c.rendered)["fmt"] for c in s.exec(select(DigestCopy))) == [
            "html", "mime", "plain"]
    secret = store.secret()
    with store.session() as s:
        stored = {m.message_id: m for m in s.exec(select(Message).where(Message.envelope_to == POST))}
    for fmt in ("plain", "mime", "html"):
        got = digests_to(sink, READERS[fmt])
        assert len(got) == 1, fmt
        msg = got[0]
        assert msg["Subject"].startswith(f"{LIST} Digest, Vol 1, Issue 1")
        assert msg["List-Id"] == f'"Demo list" <{LIST}.{DOMAIN}>' and msg["Precedence"] == "list"
        unsub = re.search(r"<(https://[^>]+)>", msg["List-Unsubscribe"]).group(1)  # type: ignore[union-attr]
        token = unsub.rsplit("/", 1)[1]
        assert links.check_unsubscribe_token(secret, LIST, token) == READERS[fmt]
        shown = " ".join(decoded(p) for p in msg.walk())
        assert "Held during an incident" not in shown and "do not show" not in shown

    plain = digests_to(sink, READERS["plain"])[0]
    text = plain.get_payload(decode=True).decode().replace("\r\n", "\n")
    assert "-" * 70 in text
    assert len(re.findall(r"(?m)^-{30}$", text)) == POSTS + 1  # between posts, then the footer
    assert re.search(r"(?m)^End of demo Digest V1 Issue 1$", text) and "*" * 20 in text
    assert "do not show" not in text
    assert links.delivery_url(cfg.server.web_base_url, secret, LIST, READERS["plain"]) in text

    mime = digests_to(sink, READERS["mime"])[0]
    digest_part = next(p for p in mime.walk() if p.get_content_type() == "multipart/digest")
    inner = [p.get_payload(0) for p in digest_part.get_payload()]
    assert all(p.get_content_type() == "message/rfc822" for p in digest_part.get_payload())
    assert sorted(str(m["Message-ID"]).strip().strip("<>") for m in inner) == sorted(ids)
    for m in inner:
        original = stored[str(m["Message-ID"]).strip().strip("<>")]
        assert m["Subject"] == parse(original.raw)["Subject"]
        assert first_text(m.as_bytes()).split() == first_text(original.raw).split()

    html_msg = digests_to(sink, READERS["html"])[0]
    assert html_msg.get_content_type() == "multipart/alternative"
    html = next(p for p in html_msg.walk() if p.get_content_type() == "text/html")
    page = html.get_payload(decode=True).decode()
    assert not re.search(r"""(?i)src\s*=\s*["']?https?:|<link\b|url\(\s*['"]?https?:|@import""", page)
    assert "prefers-color-scheme: dark" in page
    assert links.thread_url(cfg.server.web_base_url, LIST, 1) in page


def test_hostile_post_is_escaped_in_the_html_digest(server: Running, store: Store, cfg: Config,
                                                    sink: SmtpSink) -> None:
    server.send(MOD, POST, mail(MOD, POST, "<script>alert(1)</script> & \"friends\"",
                                "<img src=https://evil.example/x.png> hello\n"))
    server.drain()
    sink.messages.clear()
    assert send.send_period(store, cfg, LIST, end=datetime.now(UTC) + timedelta(seconds=1),
                            trigger="cli").queued == 3
    server.app.worker.wake()  # type: ignore[union-attr]
    wait_until(lambda: digests_to(sink, READERS["html"]), what="the html digest")
    msg = digests_to(sink, READERS["html"])[0]
    page = next(p for p in msg.walk() if p.get_content_type() == "text/html").get_payload(
        decode=True).decode()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<img" not in page


def test_exactly_once_under_double_firing(server: Running, store: Store, cfg: Config,
                                          sink: SmtpSink, corpus: Path, config_path: Path) -> None:
    post_week(server, store, corpus, sink, config_path)
    results: list[send.Outcome] = []
    fire = threading.Barrier(2)

    def job() -> None:
        fire.wait()
        results.append(send.send_period(store, cfg, LIST, end=WEEK_END, trigger="schedule"))

    runs = [threading.Thread(target=job) for _ in range(2)]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    assert sorted(r.recorded for r in results) == [False, True], [r.message for r in results]
    again = send.send_period(store, cfg, LIST, end=WEEK_END, trigger="schedule")
    assert not again.recorded and "already sent" in again.message
    server.app.worker.wake()  # type: ignore[union-attr]
    wait_until(lambda: len(sink.messages) >= 3, what="the digests")
    server.drain()
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted(
        READERS[f] for f in ("plain", "mime", "html"))
    with store.session() as s:
        assert len(s.exec(select(DigestPeriod)).all()) == 1


def test_restart_half_way_sends_the_rest_once(store: Store, cfg: Config, tmp_path: Path,
                                              db_url: str) -> None:
    members = tuple(f"reader{n:02d}@council.gov.uk" for n in range(30))
    make_list(store, LIST, members=members, max_posts_per_hour=0)
    config_path = write_config(tmp_path, db_url, "127.0.0.1:1")
    for m in members:
        assert cli(config_path, "members", "set", LIST, m, "--delivery", "plain").exit_code == 0
    with SmtpSink(delay=0.05) as slow:
        slow_cfg = config_mod.load(write_config(tmp_path, db_url, f"127.0.0.1:{slow.port}"), env={})
        with running(slow_cfg, store) as srv:
            srv.send(members[0], POST, mail(members[0], POST, "The only post this week"))
            srv.drain()
            slow.messages.clear()
            assert send.send_period(store, slow_cfg, LIST, end=datetime.now(UTC) + timedelta(seconds=1),
                                    trigger="cli").queued == 30
            srv.app.worker.wake()  # type: ignore[union-attr]
            wait_until(lambda: len(slow.messages) >= 5, what="some digests")
        part = len(slow.messages)
        assert part < 30, "stopped half way"
        with running(slow_cfg, store) as srv:
            wait_until(lambda: len(slow.messages) >= 30, timeout=30, what="the rest")
            srv.drain()
        assert sorted(m.rcpt_tos[0] for m in slow.messages) == sorted(members)
    with store.session() as s:
        states = {r.state for r in s.exec(select(Outbox).where(Outbox.digest_id.is_not(None)))}  # type: ignore[union-attr]
    assert states == {"sent"}


def test_a_missed_scheduled_run_sends_once_on_start_up(store: Store, cfg: Config,
                                                        sink: SmtpSink, config_path: Path) -> None:
    # A daily schedule whose latest time was two hours ago, and a server that was down since
    # three days before it: three runs missed, one digest.
    now = datetime.now(UTC)
    london = now.astimezone(ZoneInfo("Europe/London")) - timedelta(hours=2)
    schedule = f"{london.minute} {london.hour} * * *"
    make_list(store, LIST, members=(READERS["plain"],), digest_schedule=schedule,
              max_posts_per_hour=0)
    assert cli(config_path, "members", "set", LIST, READERS["plain"], "--delivery", "plain").exit_code == 0
    with running(cfg, store) as srv:  # the first start schedules the job
        srv.send(READERS["plain"], POST, mail(READERS["plain"], POST, "Before the outage"))
        srv.drain()
    due = periods.latest_fire(schedule, "Europe/London", now)
    assert due is not None and now - due < timedelta(hours=2, minutes=1)
    with store.session() as s:
        for m in s.exec(select(Message)).all():
            m.received_at = m.accepted_at = due - timedelta(days=4)
            s.add(m)
    jobstore = SQLAlchemyJobStore(engine=store.engine)
    jobstore.start(None, "default")  # type: ignore[arg-type]
    job = jobstore.lookup_job(f"{DIGEST_PREFIX}{LIST}")
    assert job is not None
    job.next_run_time = due - timedelta(days=3)
    jobstore.update_job(job)
    sink.messages.clear()

    with running(cfg, store) as srv:
        wait_until(lambda: digests_to(sink, READERS["plain"]), timeout=20, what="the missed digest")
        srv.drain()
        listing = cli(config_path, "jobs", "list")
    assert len(digests_to(sink, READERS["plain"])) == 1
    with store.session() as s:
        recorded = s.exec(select(DigestPeriod)).all()
    assert [(p.period_end, p.trigger) for p in recorded] == [(due, "schedule")]
    assert listing.exit_code == 0 and f"{DIGEST_PREFIX}{LIST}" in listing.output
    next_run = (due + timedelta(days=1)).astimezone(ZoneInfo("Europe/London"))
    assert f"{next_run:%Y-%m-%d %H:%M}" in listing.output


def test_digest_preview_and_send_from_the_command_line(server: Running, store: Store,
                                                       config_path: Path, sink: SmtpSink) -> None:
    server.send(MOD, POST, mail(MOD, POST, "Which LMS do you use?", "We use Moodle.\n"))
    server.drain()
    sink.messages.clear()
    preview = cli(config_path, "digest", "preview", LIST, "--format", "plain")
    assert preview.exit_code == 0 and "Which LMS do you use?" in preview.output
    with store.session() as s:
        assert s.exec(select(DigestPeriod)).all() == [], "a preview records nothing"
    sent = cli(config_path, "digest", "send", LIST, "--now")
    assert sent.exit_code == 0 and "queued for 3 members" in sent.output, sent.output
    again = cli(config_path, "digest", "send", LIST, "--now")
    assert again.exit_code == 0 and "no posts" in again.output
    missing = cli(config_path, "digest", "send", "nolist", "--now")
    assert missing.exit_code == 1 and "no list called" in missing.output
    bad = cli(config_path, "lists", "set", LIST, "digest_schedule", "0 8 * * 1")
    assert bad.exit_code != 0 and "weekday as a name" in bad.output


def test_a_post_held_over_the_periods_end_reaches_the_next_digest(
        server: Running, store: Store, cfg: Config, sink: SmtpSink, config_path: Path) -> None:
    # Issue 7.21: digests pick posts by the time they were accepted, not received.
    from listserv.models import Held

    assert cli(config_path, "lists", "set", LIST, "emergency", "on").exit_code == 0
    server.send(MOD, POST, mail(MOD, POST, "Held over the weekend", "approved on Monday\n"))
    assert cli(config_path, "lists", "set", LIST, "emergency", "off").exit_code == 0
    server.drain()
    now = datetime.now(UTC)
    with store.session() as s:  # it arrived an hour ago, before the period ended
        m = s.exec(select(Message).where(Message.envelope_to == POST)).one()
        m.received_at = now - timedelta(hours=1)
        s.add(m)
        held_id = s.exec(select(Held)).one().id
    first = send.send_period(store, cfg, LIST, end=now - timedelta(minutes=30), trigger="cli")
    assert first.recorded and first.queued == 0, first.message  # nothing accepted yet

    assert cli(config_path, "queue", "approve", str(held_id)).exit_code == 0
    server.drain()
    sink.messages.clear()
    second = send.send_period(store, cfg, LIST, end=datetime.now(UTC) + timedelta(seconds=1),
                              trigger="cli")
    assert second.queued == 3, second.message
    server.app.worker.wake()  # type: ignore[union-attr]
    wait_until(lambda: len(digests_to(sink, READERS["plain"])) == 1, what="the plain digest")
    text = digests_to(sink, READERS["plain"])[0].get_payload(decode=True).decode()
    assert "Held over the weekend" in text and "approved on Monday" in text
