"""The HTML digest: multipart/alternative of the text summary (preamble and footer) and the
same summary as HTML from a Jinja template (autoescaped; links checked by ``safe_url``)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jinja2

from digests.model import Digest, Participant
from digests.render.core import (
    DELIVERY_URL,
    HTML,
    MEMBER_EMAIL,
    UNSUBSCRIBE_URL,
    Frame,
    Rendered,
    TextPart,
    boundary,
    digest_subject,
    one_line,
    safe_url,
    text_part,
)
from digests.render.dates import format_day, format_when, local_time, period_days


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("digests", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["safe_url"] = safe_url
    return env


def _participant_view(p: Participant) -> dict[str, Any]:
    return {"name": p.display_name(), "vendor": p.vendor, "organisation": one_line(p.organisation)}


def _html(digest: Digest, tokens: Mapping[str, str]) -> str:
    tz = digest.tz
    start, end = period_days(digest)
    threads = [{
        "subject": one_line(t.subject), "url": t.url, "new_posts": t.new_posts, "is_new": t.is_new,
        "summary": t.summary, "participants": [_participant_view(p) for p in t.participants],
    } for t in digest.active_threads]
    new_threads = [{
        "subject": one_line(t.subject), "url": t.url,
        "started_by": t.posts[0].author.label() if t.posts else "",
        "day": format_day(t.posts[0].date, tz) if t.posts else "",
    } for t in digest.new_threads]
    upcoming = [{"title": u.title, "when": format_when(u.when, tz), "url": u.url, "detail": u.detail}
                for u in sorted(digest.upcoming, key=lambda u: local_time(u.when, "UTC"))]
    template = _environment().get_template("digest.html.j2")
    return template.render(
        subject=digest_subject(digest), list_name=one_line(digest.list_name),
        list_address=digest.list_address, description=digest.description,
        start=start, end=end, issue_day=format_day(digest.period_end, tz),
        volume=digest.volume, number=digest.number, post_count=digest.post_count,
        threads=threads, new_threads=new_threads, upcoming=upcoming,
        new_members=digest.new_members, archive_url=digest.archive_url,
        # Tokens are letters, digits, "%", "_" and ".": autoescaping leaves them as they are.
        unsubscribe_url=tokens[UNSUBSCRIBE_URL], delivery_url=tokens[DELIVERY_URL],
        member_email=tokens[MEMBER_EMAIL],
    )


def render_html(frame: Frame) -> Rendered:
    """multipart/alternative: the text summary, then the HTML summary."""
    # The text alternative says what the HTML says (the summary), not every post in full:
    # readers who want the posts choose the plain or MIME digest.
    tokens = frame.tokens
    text = frame.preamble + "\n" + frame.footer
    markup = _html(frame.digest, tokens)
    b = boundary([text.encode(), markup.encode()])
    items: list[bytes | TextPart] = [
        f'MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="{b}"\n'
        f"Content-Transfer-Encoding: 8bit\n\n--{b}\n".encode(),
        text_part("plain", text, tokens),
        f"\n--{b}\n".encode(),
        text_part("html", markup, tokens),
        f"\n--{b}--\n".encode(),
    ]
    return frame.rendered(HTML, items, text)
