"""Rendering a digest: plain text (RFC 1153), MIME (RFC 2046 multipart/digest) and HTML.

Render once, personalise per member
-----------------------------------
A list may have 10,000 digest members, and each copy carries the member's own unsubscribe
and change-delivery links. :func:`render` therefore does all the expensive work once per
digest and format (template rendering, text extraction from the posts, MIME assembly) and
returns a :class:`Rendered`: the message from its MIME headers on, as a sequence of
ready-made byte strings and a few text parts that still contain placeholder tokens.
:func:`personalise` then only joins bytes: per member it substitutes the links, writes the
header block, and chooses a transfer encoding for the (few) text parts holding a link.

Encoding choice: text parts are UTF-8 with ``Content-Transfer-Encoding: 8bit`` (``7bit``
when the member's copy is pure ASCII), so the tokens and the substituted links are plain
bytes in the message. Quoted-printable is never used for a part holding a token: it could
split a token (or a long URL) across a soft line break. If a part has a line longer than
RFC 5322's 998 bytes (a long unwrapped paragraph in a post, say), that part alone is
base64-encoded, per member, after substitution: still no template rendering, only a
``str.replace`` and ``base64``. Enclosed posts in the MIME digest are the received bytes,
unchanged apart from line ends (LF throughout), as ``message/rfc822`` parts.

Placeholders: the public constants :data:`UNSUBSCRIBE_URL`, :data:`DELIVERY_URL` and
:data:`MEMBER_EMAIL` may be used in the *header values* the caller passes to
:func:`personalise` (``List-Unsubscribe: <%%UNSUBSCRIBE_URL%%>``). Inside the bodies the
renderer uses private tokens with a random per-render nonce instead, so a post that
contains the text ``%%MEMBER_EMAIL%%`` is shown as written and never personalised.
In the HTML part links are checked (http and https only, else "#") and HTML-escaped.
"""

from __future__ import annotations

import base64
import email
import email.message
import email.policy
import email.utils
import functools
import html
import re
import secrets
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2

from digests.model import Digest, DigestPost, DigestThread, Participant
from listserv.bodytext import first_text, html_to_text

__all__ = [
    "DELIVERY_URL",
    "FORMATS",
    "MEMBER_EMAIL",
    "PLACEHOLDERS",
    "UNSUBSCRIBE_URL",
    "MemberLinks",
    "Rendered",
    "TextPart",
    "digest_subject",
    "format_day",
    "html_to_text",
    "personalise",
    "post_text",
    "render",
    "safe_url",
]

PLAIN, MIME, HTML = "plain", "mime", "html"
FORMATS = (PLAIN, MIME, HTML)

UNSUBSCRIBE_URL = "%%UNSUBSCRIBE_URL%%"
DELIVERY_URL = "%%DELIVERY_URL%%"
MEMBER_EMAIL = "%%MEMBER_EMAIL%%"
PLACEHOLDERS = (UNSUBSCRIBE_URL, DELIVERY_URL, MEMBER_EMAIL)

WRAP = 72
MAX_LINE = 998  # RFC 5322 2.1.1, octets excluding the line end
# Posts enclosed in full in a plain or MIME digest, in bytes: the mail stays well under the
# 10 MB many servers accept; the summary and the archive cover the rest.
MAX_ENCLOSED_BYTES = 4 * 1024 * 1024
TOPIC_RULE = "-" * 70  # RFC 1153: ends the preamble
MESSAGE_RULE = "-" * 30  # RFC 1153: follows every enclosed message

# Headers personalise() writes itself; a caller passing one of them is a bug.
_OWNED_HEADERS = frozenset({"to", "mime-version", "content-type", "content-transfer-encoding",
                            "content-description", "content-disposition", "content-id"})
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SEPARATOR_LIKE = re.compile(r"^(-{30}[ \t]*)$", re.MULTILINE)

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


# ---------------------------------------------------------------------------------------------
# Public types


@dataclass(frozen=True)
class MemberLinks:
    """One member's address and personal links, substituted by :func:`personalise`."""

    email: str
    unsubscribe_url: str
    delivery_url: str

    def values(self) -> dict[str, str]:
        """Placeholder -> value; raises ValueError on a line break or NUL (header injection)."""
        values = {UNSUBSCRIBE_URL: self.unsubscribe_url, DELIVERY_URL: self.delivery_url,
                  MEMBER_EMAIL: self.email}
        for v in values.values():
            if any(c in v for c in "\r\n\0"):
                raise ValueError(f"line break or NUL in a member link: {v!r}")
        return values


@dataclass(frozen=True)
class TextPart:
    """A text/plain or text/html MIME part whose body still holds placeholder tokens.

    ``chunks`` is the UTF-8 body cut at the tokens; ``keys[i]`` is the placeholder between
    ``chunks[i]`` and ``chunks[i + 1]``. ``token_lines`` gives, for each line holding a
    token, its length in bytes without the tokens and the placeholders on it, so that the
    998-byte line limit can be checked per member without scanning the body.
    ``eightbit`` is False when some line is too long anyway: the part is then base64.
    """

    subtype: str
    text: str
    tokens: tuple[tuple[str, str], ...]  # (token in text, public placeholder)
    chunks: tuple[bytes, ...]
    keys: tuple[str, ...]
    token_lines: tuple[tuple[int, tuple[str, ...]], ...]
    eightbit: bool
    description: str = ""
    ascii: bool = False  # every chunk is ASCII (then only the member's values can make it 8bit)


@dataclass(frozen=True)
class Rendered:
    """A digest rendered in one format, built once and personalised per member.

    ``items`` is the message from ``MIME-Version`` to the end: ready-made bytes and
    :class:`TextPart` s. ``text`` is the member-independent plain-text digest (the
    RFC 1153 text for "plain" and "html", the summary and contents for "mime"), with the
    public placeholders in the footer: handy for previews and tests.
    """

    fmt: str
    subject: str
    items: tuple[bytes | TextPart, ...]
    text: str


# ---------------------------------------------------------------------------------------------
# Small helpers


def digest_subject(digest: Digest) -> str:
    """ "demo Digest, Vol 3, Issue 12" (RFC 1153 style; the caller may add a list tag)."""
    return f"{_one_line(digest.list_name)} Digest, Vol {digest.volume}, Issue {digest.number}"


def _local(dt: datetime, tz: str) -> datetime:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(ZoneInfo(tz))


def format_day(dt: datetime, tz: str) -> str:
    """ "Monday 23 November 2026", in time zone ``tz`` (English, whatever the locale)."""
    d = _local(dt, tz)
    return f"{_DAYS[d.weekday()]} {d.day} {_MONTHS[d.month - 1]} {d.year}"


def format_when(dt: datetime, tz: str) -> str:
    """The day, and the time of day unless it is midnight: "Thursday 3 September 2026, 09:30"."""
    d = _local(dt, tz)
    day = format_day(d, tz)
    return day if (d.hour, d.minute) == (0, 0) else f"{day}, {d:%H:%M}"


def _period(digest: Digest) -> tuple[str, str]:
    """First and last day of the period; ``period_end`` is exclusive."""
    end = _local(digest.period_end, "UTC") - timedelta(microseconds=1)
    return format_day(digest.period_start, digest.tz), format_day(end, digest.tz)


def safe_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL without spaces or controls, else "#"."""
    url = url.strip()
    if not url or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        return "#"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "#"
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        return url
    return "#"


def _one_line(s: str) -> str:
    return " ".join(s.split())


def _clean_text(text: str) -> str:
    """LF line ends, no NUL or other control characters (tab and form feed stay)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(lambda m: "\f" if m.group() == "\f" else "", text)


def _wrap(text: str, indent: str = "", hanging: str = "", width: int = WRAP) -> list[str]:
    """Wrapped lines; ``hanging`` is extra indent for the lines after the first (bullets)."""
    text = _one_line(text)
    if not text:
        return []
    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent + hanging,
                         break_long_words=False, break_on_hyphens=False)


def _msg_id(message_id: str) -> str:
    mid = _one_line(message_id)
    return mid if mid.startswith("<") else f"<{mid}>"


def _who(p: Participant) -> str:
    return f"{p.label()} <{p.email}>" if p.email else p.label()


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


# ---------------------------------------------------------------------------------------------
# The text of a post


def post_text(raw: bytes) -> str:
    """The plain text of a post, as the policy and the excerpts read it (``bodytext.first_text``:
    the first text/plain part, or else the first HTML part reduced to text; attachments skipped).
    Line ends become LF, control characters go; leading and trailing blank lines go."""
    return _clean_text(first_text(raw)).strip("\n").rstrip()


def _stuff(body: str) -> str:
    """RFC 934 byte-stuffing of lines that would read as an RFC 1153 message separator."""
    return _SEPARATOR_LIKE.sub(r"- \1", body)


# ---------------------------------------------------------------------------------------------
# Plain text (used by all three formats)


def _ordered_posts(digest: Digest) -> list[tuple[DigestThread, DigestPost]]:
    return [(t, p) for t in digest.active_threads for p in t.posts]


def enclosed_posts(digest: Digest, budget: int) -> tuple[list[tuple[DigestThread, DigestPost]], int]:
    """The posts a plain or MIME digest encloses in full (most active threads first) within
    ``budget`` bytes of posts, and how many are left out: a digest must stay well under the
    10 MB many mail servers accept. The summary and the archive still cover every thread."""
    chosen: list[tuple[DigestThread, DigestPost]] = []
    used = 0
    ordered = _ordered_posts(digest)
    for thread, post in ordered:
        if chosen and used + len(post.raw) > budget:
            break
        chosen.append((thread, post))
        used += len(post.raw)
    return chosen, len(ordered) - len(chosen)


def _participants(thread: DigestThread) -> str:
    return ", ".join(p.label() for p in thread.participants)


def _plain_preamble(digest: Digest, budget: int) -> str:
    """Header line, summary of the week, and "Today's Topics" (RFC 1153 preamble)."""
    tz = digest.tz
    name = _one_line(digest.list_name)
    left = f"{name} Digest"
    mid = format_day(digest.period_end, tz)
    right = f"Volume {digest.volume} : Issue {digest.number}"
    gap = max(3, (70 - len(left) - len(mid) - len(right)) // 2)
    lines = [f"{left}{' ' * gap}{mid}{' ' * gap}{right}", ""]
    lines += _wrap(digest.description)
    if digest.description.strip():
        lines.append("")
    start, end = _period(digest)
    lines += _wrap(f"This is the digest of {name} <{digest.list_address}> for {start} to {end}: "
                   f"{_plural(digest.post_count, 'post', 'posts')} in "
                   f"{_plural(len(digest.threads), 'thread', 'threads')}.")
    lines.append("")

    def heading(title: str) -> None:
        lines.extend([title, "-" * len(title), ""])

    if digest.threads:
        heading("Most active this week")
        for t in digest.active_threads:
            new = " [new]" if t.is_new else ""
            count = _plural(t.new_posts, "new post", "new posts")
            lines += _wrap(f"* {t.subject}{new} ({count})", hanging="  ")
            if t.participants:
                lines += _wrap(f"With {_participants(t)}", indent="  ")
            lines += _wrap(t.summary, indent="  ")
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
            lines += _wrap(f"* {t.subject}{started}", hanging="  ")
            if safe_url(t.url) != "#":
                lines.append(f"  {t.url.strip()}")
        lines.append("")
    heading("Coming up")
    if digest.upcoming:
        for item in sorted(digest.upcoming, key=lambda u: _local(u.when, "UTC")):
            lines += _wrap(f"* {format_when(item.when, tz)}: {item.title}", hanging="  ")
            lines += _wrap(item.detail, indent="  ")
            if safe_url(item.url) != "#":
                lines.append(f"  {item.url.strip()}")
        lines.append("")
    else:
        lines += ["Nothing is scheduled yet.", ""]
    lines.append(f"{_plural(digest.new_members, 'new member', 'new members')} this week.")
    lines.append("")
    if safe_url(digest.archive_url) != "#":
        lines += ["Browse the archive:", f"  {digest.archive_url.strip()}", ""]

    lines += ["Today's Topics:", ""]
    enclosed, left_out = enclosed_posts(digest, budget)
    for i, (_t, p) in enumerate(enclosed, start=1):
        lines += textwrap.wrap(f"{i:4d}. {_one_line(p.subject)} ({p.author.label()})", width=WRAP,
                               subsequent_indent="      ", break_long_words=False,
                               break_on_hyphens=False)
    if left_out:
        lines.append("")
        lines += _wrap(f"{_plural(left_out, 'more post is', 'more posts are')} not enclosed, to keep "
                       "this digest a size mail servers accept: read them in the archive.")
    if not digest.threads or not digest.post_count:
        lines.append("   (no posts this week)")
    return "\n".join(lines) + "\n"


def _plain_footer(digest: Digest, tokens: Mapping[str, str]) -> str:
    name = _one_line(digest.list_name)
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
        f"Date: {email.utils.format_datetime(_local(post.date, tz))}",
        f"From: {_one_line(_who(post.author))}",
        f"Subject: {_one_line(post.subject)}",
        f"Message-ID: {_msg_id(post.message_id)}",
    ]
    body = _stuff(post_text(post.raw)) or "[This post has no text.]"
    return "\n".join(head) + "\n\n" + body


def _plain_digest(digest: Digest, preamble: str, footer: str, budget: int) -> str:
    """The whole RFC 1153 digest. Every enclosed message, and the personal footer after the
    posts (as Mailman does), is followed by a blank line, 30 hyphens and a blank line; so a
    digest of N posts has N + 1 such separator lines."""
    out = [preamble.rstrip("\n"), "", TOPIC_RULE, ""]
    for _t, post in enclosed_posts(digest, budget)[0]:
        out += [_enclosed(post, digest.tz), "", MESSAGE_RULE, ""]
    out += [footer.rstrip("\n"), "", MESSAGE_RULE, ""]
    trailer = f"End of {_one_line(digest.list_name)} Digest V{digest.volume} Issue {digest.number}"
    out += [trailer, "*" * len(trailer)]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# HTML


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("digests", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["safe_url"] = safe_url
    return env


def _participant_view(p: Participant) -> dict[str, Any]:
    return {"name": p.display_name(), "vendor": p.vendor, "organisation": _one_line(p.organisation)}


def _html(digest: Digest, tokens: Mapping[str, str]) -> str:
    tz = digest.tz
    start, end = _period(digest)
    threads = [{
        "subject": _one_line(t.subject), "url": t.url, "new_posts": t.new_posts, "is_new": t.is_new,
        "summary": t.summary, "participants": [_participant_view(p) for p in t.participants],
    } for t in digest.active_threads]
    new_threads = [{
        "subject": _one_line(t.subject), "url": t.url,
        "started_by": t.posts[0].author.label() if t.posts else "",
        "day": format_day(t.posts[0].date, tz) if t.posts else "",
    } for t in digest.new_threads]
    upcoming = [{"title": u.title, "when": format_when(u.when, tz), "url": u.url, "detail": u.detail}
                for u in sorted(digest.upcoming, key=lambda u: _local(u.when, "UTC"))]
    template = _environment().get_template("digest.html.j2")
    return template.render(
        subject=digest_subject(digest), list_name=_one_line(digest.list_name),
        list_address=digest.list_address, description=digest.description,
        start=start, end=end, issue_day=format_day(digest.period_end, tz),
        volume=digest.volume, number=digest.number, post_count=digest.post_count,
        threads=threads, new_threads=new_threads, upcoming=upcoming,
        new_members=digest.new_members, archive_url=digest.archive_url,
        # Tokens are letters, digits, "%", "_" and ".": autoescaping leaves them as they are.
        unsubscribe_url=tokens[UNSUBSCRIBE_URL], delivery_url=tokens[DELIVERY_URL],
        member_email=tokens[MEMBER_EMAIL],
    )


# ---------------------------------------------------------------------------------------------
# MIME assembly


def text_part(subtype: str, text: str, tokens: Mapping[str, str], description: str = "") -> TextPart:
    """Cut ``text`` at the tokens (a mapping public placeholder -> token)."""
    text = _clean_text(text)
    if not text.endswith("\n"):
        text += "\n"
    by_token = {tok: ph for ph, tok in tokens.items()}
    pattern = re.compile("|".join(re.escape(t) for t in by_token))
    pieces = pattern.split(text)
    chunks = tuple(p.encode("utf-8") for p in pieces)
    keys = tuple(by_token[m.group()] for m in pattern.finditer(text))
    eightbit = True
    token_lines: list[tuple[int, tuple[str, ...]]] = []
    for line in text.split("\n"):
        if "%%" in line:  # every token has them: only these lines need the pattern
            found = [by_token[m.group()] for m in pattern.finditer(line)]
            size = len(pattern.sub("", line).encode("utf-8"))
            if found:
                token_lines.append((size, tuple(found)))
                continue
        elif len(line) * 4 <= MAX_LINE:  # a UTF-8 character is at most 4 bytes
            continue
        else:
            size = len(line.encode("utf-8"))
        if size > MAX_LINE:
            eightbit = False
    return TextPart(subtype=subtype, text=text, tokens=tuple(by_token.items()), chunks=chunks, keys=keys,
                    token_lines=tuple(token_lines), eightbit=eightbit, description=description,
                    ascii=all(c.isascii() for c in chunks))


def _boundary(contents: Iterable[bytes]) -> str:
    blobs = list(contents)
    while True:
        b = f"=_commonroom_{secrets.token_hex(12)}"
        if not any(b.encode("ascii") in blob for blob in blobs):
            return b


def _tokens() -> dict[str, str]:
    nonce = secrets.token_hex(8)
    return {ph: f"{ph[:-2]}.{nonce}%%" for ph in PLACEHOLDERS}


def _lf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def render(digest: Digest, fmt: str, *, max_enclosed_bytes: int = MAX_ENCLOSED_BYTES) -> Rendered:
    """Render ``digest`` as "plain" (RFC 1153 text/plain), "mime" (multipart/mixed holding an
    RFC 2046 multipart/digest of the posts as received) or "html" (multipart/alternative of
    a text summary and the HTML summary). Done once per digest and format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown digest format {fmt!r}; expected one of {', '.join(FORMATS)}")
    tokens = _tokens()
    subject = digest_subject(digest)
    preamble = _plain_preamble(digest, max_enclosed_bytes)
    footer = _plain_footer(digest, tokens)
    public = dict(zip(tokens.values(), tokens.keys(), strict=True))

    def publish(text: str) -> str:
        for tok, ph in public.items():
            text = text.replace(tok, ph)
        return text

    items: list[bytes | TextPart] = []
    if fmt == PLAIN:
        text = _plain_digest(digest, preamble, footer, max_enclosed_bytes)
        items = [b"MIME-Version: 1.0\n", text_part("plain", text, tokens)]
        return Rendered(fmt=fmt, subject=subject, items=tuple(items), text=publish(text))

    if fmt == MIME:
        posts = [_lf(p.raw) for _t, p in enclosed_posts(digest, max_enclosed_bytes)[0]]
        outer = _boundary([*posts, preamble.encode(), footer.encode()])
        inner = _boundary([*posts, outer.encode()])
        n = len(posts)
        items.append(
            f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{outer}"\n'
            f"Content-Transfer-Encoding: 8bit\n\n"
            f"This is a MIME digest of {_plural(n, 'post', 'posts')}; your mail program shows each "
            f"post as an attached message.\n\n--{outer}\n".encode())
        items.append(text_part("plain", preamble, tokens, description="Today's Topics"))
        digest_head = (f'\n--{outer}\nContent-Type: multipart/digest; boundary="{inner}"\n'
                       f"Content-Transfer-Encoding: 8bit\n"
                       f"Content-Description: {_plural(n, 'post', 'posts')}\n\n")
        body = bytearray(digest_head.encode())
        for raw in posts:
            body += f"--{inner}\nContent-Type: message/rfc822\n\n".encode()
            body += raw + b"\n"
        if not posts:  # a multipart needs at least one part
            body += f"--{inner}\nContent-Type: text/plain; charset=\"us-ascii\"\n\nNo posts.\n\n".encode()
        body += f"--{inner}--\n--{outer}\n".encode()
        items.append(bytes(body))
        items.append(text_part("plain", footer, tokens, description="Digest footer"))
        items.append(f"\n--{outer}--\n".encode())
        return Rendered(fmt=fmt, subject=subject, items=tuple(items),
                        text=publish(preamble + "\n" + footer))

    # The text alternative says what the HTML says (the summary), not every post in full:
    # readers who want the posts choose the plain or MIME digest.
    text = preamble + "\n" + footer
    markup = _html(digest, tokens)
    b = _boundary([text.encode(), markup.encode()])
    items = [
        f'MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="{b}"\n'
        f"Content-Transfer-Encoding: 8bit\n\n--{b}\n".encode(),
        text_part("plain", text, tokens),
        f"\n--{b}\n".encode(),
        text_part("html", markup, tokens),
        f"\n--{b}--\n".encode(),
    ]
    return Rendered(fmt=fmt, subject=subject, items=tuple(items), text=publish(text))


# ---------------------------------------------------------------------------------------------
# Per member


def _fold_ascii(name: str, value: str) -> str:
    """Fold at spaces to keep lines near 78 characters; a long word stays whole (<= 998)."""
    line = f"{name}:"
    lines: list[str] = []
    for word in value.split(" "):
        piece = f" {word}"
        if word and line != f"{name}:" and len(line) + len(piece) > 78:
            lines.append(line)
            line = piece
        else:
            line += piece
    lines.append(line)
    if any(len(x) > MAX_LINE for x in lines):
        raise ValueError(f"header {name} has a word longer than {MAX_LINE} characters")
    return "\n".join(lines) + "\n"


_POLICY = email.policy.default.clone(linesep="\n")


@functools.lru_cache(maxsize=4096)
def _header(name: str, value: str) -> bytes:
    """One header field, folded; non-ASCII values are RFC 2047-encoded (display names in
    address headers included). Cached: most header values are the same for every member."""
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"bad header name {name!r}")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"line break or NUL in header {name}: {value!r}")
    if value.isascii():
        return _fold_ascii(name, value).encode("ascii")
    try:
        folded = str(_POLICY.header_factory(name, value).fold(policy=_POLICY))
        return folded.encode("ascii")
    except (UnicodeError, ValueError, IndexError, TypeError):
        # e.g. an internationalised address: needs SMTPUTF8 and goes as UTF-8 (RFC 6532).
        utf8 = _POLICY.clone(utf8=True)
        return str(utf8.header_factory(name, value).fold(policy=utf8)).encode("utf-8")


def _substitute(value: str, values: Mapping[str, str]) -> str:
    if "%%" in value:
        for ph, v in values.items():
            value = value.replace(ph, v)
    return value


def _part_pieces(part: TextPart, values: Mapping[str, bytes]) -> list[bytes]:
    """One member's copy of a text part, as pieces to join once (the body is not copied here:
    a digest body can be megabytes and every member gets one)."""
    eightbit = part.eightbit and all(
        size + sum(len(values[k]) for k in keys) <= MAX_LINE for size, keys in part.token_lines)
    pieces: list[bytes]
    if eightbit:
        pieces = [part.chunks[0]]
        for key, chunk in zip(part.keys, part.chunks[1:], strict=True):
            pieces += (values[key], chunk)
        ascii_ = part.ascii and all(values[k].isascii() for k in set(part.keys))
        cte = "7bit" if ascii_ else "8bit"
    else:
        text = part.text
        for tok, ph in part.tokens:
            text = text.replace(tok, values[ph].decode("utf-8"))
        pieces = [base64.encodebytes(text.encode("utf-8"))]
        cte = "base64"
    head = f'Content-Type: text/{part.subtype}; charset="utf-8"\nContent-Transfer-Encoding: {cte}\n'
    if part.description:
        head += f"Content-Description: {part.description}\n"
    return [head.encode("ascii"), b"\n", *pieces]


def personalise(rendered: Rendered, links: MemberLinks, headers: Mapping[str, str]) -> bytes:
    """One member's copy: full RFC 5322 message bytes with LF line ends.

    The header block is ``headers`` in the given order (the list's From, List-Id,
    List-Unsubscribe, List-Unsubscribe-Post, List-Post, List-Help, List-Archive, Precedence,
    Message-ID, Date, ...), with the public placeholders in their values replaced by the
    member's links, then ``To: <member>``, ``Subject`` (unless ``headers`` has one, e.g. with
    a list tag) and the MIME headers. ``headers`` must not hold To, MIME-Version or Content-*.
    No template is rendered here: the cost is joining bytes.
    """
    raw_values = links.values()
    out: list[bytes] = []
    seen: set[str] = set()
    for name, value in headers.items():
        lower = name.lower()
        if lower in _OWNED_HEADERS:
            raise ValueError(f"personalise() writes {name} itself; do not pass it in headers")
        seen.add(lower)
        out.append(_header(name, _substitute(value, raw_values)))
    out.append(_header("To", links.email))
    if "subject" not in seen:
        out.append(_header("Subject", rendered.subject))
    text_values = {ph: v.encode("utf-8") for ph, v in raw_values.items()}
    html_values = {ph: html.escape(v if ph == MEMBER_EMAIL else safe_url(v), quote=True).encode("utf-8")
                   for ph, v in raw_values.items()}
    for item in rendered.items:
        if isinstance(item, bytes):
            out.append(item)
        else:
            out += _part_pieces(item, html_values if item.subtype == "html" else text_values)
    return b"".join(out)
