"""The digest's summary for Discord (issue 8): the text (digests/summary.py, pure), and the
relay row queued with the copies when a bridged list's digest is sent and ``[discord]
digest_channel_id`` is set (delivering it is the relay worker's)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from bot.cogs.digests import preview_text
from digests import send
from digests.model import Digest, DigestThread
from digests.summary import summary_text
from listserv.config import load
from listserv.models import DiscordRelay, utcnow
from listserv.store import Store
from tests.harness import DOMAIN, mail, make_list, running, write_config
from tests.smtpsink import SmtpSink
from tests.test_digest_render import T0

CHANNEL = "222222222222222222"
MEMBER = "ann@council.gov.uk"


def _digest(subjects: list[str]) -> Digest:
    threads = tuple(DigestThread(subject=s, url=f"https://l.example.org/lists/demo/threads/{n}",
                                 participants=(), new_posts=n + 1, is_new=n == 0, summary="",
                                 posts=()) for n, s in enumerate(subjects))
    return Digest("demo", "demo@l.example.org", "", T0, T0 + timedelta(days=7), 2, 5, threads,
                  (), 0, "https://l.example.org/lists/demo/")


def test_summary_lists_threads_with_links() -> None:
    text = summary_text(_digest(["CRM pricing", "Events"]))
    assert text.splitlines() == [
        "**demo** weekly digest (vol 2, issue 5): 2 threads, 3 posts",
        "- [CRM pricing](<https://l.example.org/lists/demo/threads/0>) · 1 post · new",
        "- [Events](<https://l.example.org/lists/demo/threads/1>) · 2 posts"]


def test_summary_escapes_markdown_and_fits_one_message() -> None:
    text = summary_text(_digest(["[click](https://evil.example) @everyone **x**"]))
    assert "\\[click\\]\\(https\\:" in text and "\\@everyone" in text and "\\*\\*x" in text
    long = summary_text(_digest([f"Thread number {n} " + "x" * 60 for n in range(80)]))
    assert len(long) <= 1900
    last = long.splitlines()[-1]
    assert last.startswith("… and ") and last.endswith("more threads: "
                                                       "<https://l.example.org/lists/demo/>")
    shown = len(long.splitlines()) - 2
    assert f"… and {80 - shown} more threads" in last


def test_preview_is_cut_at_a_line_with_a_count() -> None:
    head = "Next digest of **demo**"
    assert preview_text(head, "a\nb") == f"{head}\n```\na\nb\n```"
    text = preview_text(head, "\n".join(f"line {n} ```" for n in range(1000)))
    assert len(text) <= 1900 and "more lines (`commonroom digest preview` shows it all)" in text
    assert text.count("```") == 2  # the digest's own fences cannot close the block


def test_summary_queued_with_the_copies_for_bridged_lists_only(tmp_path: Path, db_url: str,
                                                                sink: SmtpSink,
                                                                store: Store) -> None:
    for name in ("demo", "other", "third"):
        make_list(store, name, members=(MEMBER,))
    base = load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={})
    with running(base, store) as server:
        for name in ("demo", "other", "third"):
            server.send(MEMBER, f"{name}@{DOMAIN}", mail(MEMBER, f"{name}@{DOMAIN}",
                                                         f"News on {name}"))
        server.drain()
    with_channel = replace(base, bridges={"demo": "1", "third": "3"},
                           discord=replace(base.discord, digest_channel_id=CHANNEL))
    end = utcnow() + timedelta(seconds=1)
    for name, cfg in (("demo", with_channel), ("other", with_channel),  # other: not bridged
                      ("third", replace(with_channel, discord=base.discord))):  # no channel
        outcome = send.send_period(store, cfg, name, end=end, trigger="cli")
        assert outcome.recorded and outcome.queued == 0, outcome  # ann gets each post
    with store.session() as s:
        [relay] = s.exec(select(DiscordRelay).where(DiscordRelay.kind == "channel")).all()
    assert relay.channel_id == CHANNEL and relay.state == "pending"
    assert relay.content.startswith("**demo** weekly digest (vol 1, issue 1): 1 thread, 1 post")
    assert "[News on demo](<https://lists.example.org/lists/demo/threads/" in relay.content
