"""The plain digest (RFC 1153): preamble with the week's summary and "Today's Topics", each
enclosed post as text, and the member's footer. The preamble and footer are also the text
that the MIME and HTML digests show."""

from __future__ import annotations

import email.utils
import re
import textwrap
from collections.abc import Mapping

from digests.model import Digest, DigestPost, DigestThread, Participant
from digests.render.core import (
    DELIVERY_URL,
    MEMBER_EMAIL,
    PLAIN,
    UNSUBSCRIBE_URL,
    WRAP,
    Frame,
    Rendered,
    enclosed_posts,
    one_line,
    plural,
    post_text,
    safe_url,
    text_part,
    wrap,
)
from digests.render.dates import format_day, format_when, local_time, period_days

TOPIC_RULE = "-" * 70  # RFC 1153: ends the preamble
MESSAGE_RULE = "-" * 30  # RFC 1153: follows every enclosed message


_SEPARATOR_LIKE = re.compile(r"^(-{30}[ \t]*)$", re.MULTILINE)


def _msg_id(message_id: str) -> str:
    mid = one_line(message_id)
    return mid if mid.startswith("<") else f"<{mid}>"


def _who(p: Participant) -> str:
    return f"{p.label()} <{p.email}>" if p.email else p.label()


def _stuff(body: str) -> str:
    """RFC 934 byte-stuffing of lines that would read as an RFC 1153 message separator."""
    return _SEPARATOR_LIKE.sub(r"- \1", body)


def _participants(thread: DigestThread) -> str:
    return ", ".join(p.label() for p in thread.participants)


def plain_preamble(digest: Digest, budget: int) -> str:
    """Header line, summary of the week, and "Today's Topics" (RFC 1153 preamble)."""
    tz = digest.tz
    name = one_line(digest.list_name)
    left = f"{name} Digest"
    mid = format_day(digest.period_end, tz)
    right = f"Volume {digest.volume} : Issue {digest.number}"
    gap = max(3, (70 - len(left) - len(mid) - len(right)) // 2)
    lines = [f"{left}{' ' * gap}{mid}{' ' * gap}{right}", ""]
    lines += wrap(digest.description)
    if digest.description.strip():
        lines.append("")
    start, end = period_days(digest)
    lines += wrap(f"This is the digest of {name} <{digest.list_address}> for {start} to {end}: "
                   f"{plural(digest.post_count, 'post', 'posts')} in "
                   f"{plural(len(digest.threads), 'thread', 'threads')}.")
    lines.append("")

    def heading(title: str) -> None:
        lines.extend([title, "-" * len(title), ""])

    if digest.threads:
        heading("Most active this week")
        for t in digest.active_threads:
            new = " [new]" if t.is_new else ""
            count = plural(t.new_posts, "new post", "new posts")
            lines += wrap(f"* {t.subject}{new} ({count})", hanging="  ")
            if t.participants:
                lines += wrap(f"With {_participants(t)}", indent="  ")
            lines += wrap(t.summary, indent="  ")
            if safe_url(t.url) != "#":
                lines.append(f"  {t.url.strip()}")
            lines.append("")
    new_threads = digest.new_threads
    if new_threads:
        heading("New threads")
        for t in new_threads:
            started = ""
            if t.posts:
                first = t.posts[0]
                started = f", started by {first.author.label()} on {format_day(first.date, tz)}"
            lines += wrap(f"* {t.subject}{started}", hanging="  ")
            if safe_url(t.url) != "#":
                lines.append(f"  {t.url.strip()}")
        lines.append("")
    heading("Coming up")
    if digest.upcoming:
        for item in sorted(digest.upcoming, key=lambda u: local_time(u.when, "UTC")):
            lines += wrap(f"* {format_when(item.when, tz)}: {item.title}", hanging="  ")
            lines += wrap(item.detail, indent="  ")
            if safe_url(item.url) != "#":
                lines.append(f"  {item.url.strip()}")
        lines.append("")
    else:
        lines += ["Nothing is scheduled yet.", ""]
    lines.append(f"{plural(digest.new_members, 'new member', 'new members')} this week.")
    lines.append("")
    if safe_url(digest.archive_url) != "#":
        lines += ["Browse the archive:", f"  {digest.archive_url.strip()}", ""]

    lines += ["Today's Topics:", ""]
    enclosed, left_out = enclosed_posts(digest, budget)
    for i, (_t, p) in enumerate(enclosed, start=1):
        lines += textwrap.wrap(f"{i:4d}. {one_line(p.subject)} ({p.author.label()})", width=WRAP,
                               subsequent_indent="      ", break_long_words=False,
                               break_on_hyphens=False)
    if left_out:
        lines.append("")
        lines += wrap(f"{plural(left_out, 'more post is', 'more posts are')} not enclosed, to keep "
                       "this digest a size mail servers accept: read them in the archive.")
    if not digest.threads or not digest.post_count:
        lines.append("   (no posts this week)")
    return "\n".join(lines) + "\n"


def plain_footer(digest: Digest, tokens: Mapping[str, str]) -> str:
    name = one_line(digest.list_name)
    return "\n".join([
        f"You get this digest of {name} as {tokens[MEMBER_EMAIL]}.",
        "To get each post as it is sent, a different digest, or no mail at all:",
        f"  {tokens[DELIVERY_URL]}",
        "To unsubscribe:",
        f"  {tokens[UNSUBSCRIBE_URL]}",
        f"To post to the list, write to {digest.list_address}.",
    ]) + "\n"


def _enclosed(post: DigestPost, tz: str) -> str:
    """One enclosed message of the RFC 1153 digest (header lines in RFC 1153's order)."""
    head = [
        f"Date: {email.utils.format_datetime(local_time(post.date, tz))}",
        f"From: {one_line(_who(post.author))}",
        f"Subject: {one_line(post.subject)}",
        f"Message-ID: {_msg_id(post.message_id)}",
    ]
    body = _stuff(post_text(post.raw)) or "[This post has no text.]"
    return "\n".join(head) + "\n\n" + body


def plain_digest(digest: Digest, preamble: str, footer: str, budget: int) -> str:
    """The whole RFC 1153 digest. Every enclosed message, and the personal footer after the
    posts (as Mailman does), is followed by a blank line, 30 hyphens and a blank line; so a
    digest of N posts has N + 1 such separator lines."""
    out = [preamble.rstrip("\n"), "", TOPIC_RULE, ""]
    for _t, post in enclosed_posts(digest, budget)[0]:
        out += [_enclosed(post, digest.tz), "", MESSAGE_RULE, ""]
    out += [footer.rstrip("\n"), "", MESSAGE_RULE, ""]
    trailer = f"End of {one_line(digest.list_name)} Digest V{digest.volume} Issue {digest.number}"
    out += [trailer, "*" * len(trailer)]
    return "\n".join(out) + "\n"


def render_plain(frame: Frame) -> Rendered:
    """A text/plain RFC 1153 digest."""
    text = plain_digest(frame.digest, frame.preamble, frame.footer, frame.budget)
    return frame.rendered(PLAIN, [b"MIME-Version: 1.0\n", text_part("plain", text, frame.tokens)], text)
