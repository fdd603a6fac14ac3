"""What a list post looks like in Discord: the webhook's name, the thread's title and the
message parts. Pure: data in, data out; the bot (``bot/relay.py``) sends what this returns.

Invariants:
- The name is ``decorate.display_name`` ("Jane Doe (Acme Ltd, vendor)") within Discord's rules
  for webhook names: 1–80 characters, one line, no "discord" or "clyde" in any case, not
  "everyone" or "here"; when it must be shortened, the name is cut, not the vendor mark.
- The body is the author's words (``quotes.trim``: signatures, trailing quotes, forwarded
  headers gone); quotes the author answers below collapse to one "> ..." line each; when
  anything was hidden a last line links to the post in the archive. Attachments are listed
  with their archive links (``mailparts.attachments``, the archive's own numbering).
- Every part is 1–2000 characters; parts break between paragraphs, else between lines, else
  at a space, else anywhere. Joined, the parts hold the whole text in order, up to
  ``MAX_PARTS`` parts: a longer post ends with a link to the rest in the archive.
- Links to the archive are in angle brackets, so Discord shows no preview card for them.
- The author's text is Discord markdown as it stands (mail's *stars* and > quotes read well),
  except lines that would become headings or small print ("# ", "-# "), which are escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from listserv import links, names, quotes
from listserv.bodytext import first_text
from listserv.decorate import Author, display_name
from listserv.mailparts import Attachment, attachments
from listserv.quote_lines import QUOTE, dequote
from listserv.threads import REPLY_MARKERS

MAX_CONTENT = 2000  # Discord's limit for a message's content
MAX_NAME = 80  # for a webhook's username
MAX_TITLE = 100  # for a thread's name
QUOTE_PREVIEW = 80  # characters of a collapsed quote that stay visible
MAX_PARTS = 8  # messages for one post; a longer one (a pasted log) ends with an archive link

_FORBIDDEN_IN_NAME = re.compile(r"discord|clyde", re.IGNORECASE)
_FORBIDDEN_NAMES = frozenset({"everyone", "here"})
# Lines Discord would show as headings or small print ("# x", "-# x"): mail means them as text.
_HEADING = re.compile(r"^(#{1,3} |-# )", re.MULTILINE)
_MARKERS = re.compile(
    r"^\s*(?:(?:" + "|".join(sorted((re.escape(m) for m in REPLY_MARKERS), key=len, reverse=True))
    + r")\.?\s*(?:\[[^\[\]]*\]|\(\d+\))?\s*[:：]\s*)+", re.IGNORECASE)


@dataclass(frozen=True)
class PostSource:
    """What the relay reads from the store to render a post."""

    list_name: str
    list_tag: str  # "[demo]", or the list's subject prefix
    web_base_url: str
    message_pk: int
    thread_id: int
    thread_subject: str
    raw: bytes
    author: Author


@dataclass(frozen=True)
class RelayedPost:
    username: str
    thread_title: str
    parts: list[str]
    starter: str  # the bot's message that opens a thread in a text channel


def webhook_name(author: Author) -> str:
    """The author as a webhook's username, within Discord's rules (module docstring)."""
    base = _allowed(names.clean(author.name or author.address.split("@", 1)[0]))
    mark = _allowed(names.clean(display_name(replace(author, name=base))))[len(base):]
    if len(mark) > MAX_NAME // 2:
        mark = mark[:MAX_NAME // 2 - 2].rstrip() + "…)"
    if len(base) + len(mark) > MAX_NAME:  # cut the name, keep " (Acme Ltd, vendor)"
        base = base[:MAX_NAME - len(mark) - 1].rstrip() + "…"
    name = (base + mark).strip()
    if not name:
        return "List member"
    return f"{name} (list)" if name.casefold() in _FORBIDDEN_NAMES else name


def _allowed(text: str) -> str:
    # "Discord" -> "D-iscord": readable, and no longer the word Discord refuses in a name.
    text = _FORBIDDEN_IN_NAME.sub(lambda m: m.group(0)[0] + "-" + m.group(0)[1:], text)
    return text.replace("```", "'''")


def thread_title(subject: str, list_tag: str) -> str:
    """The thread's subject without reply markers or the list's tag, 1–100 characters."""
    title = names.clean(subject)
    for _ in range(5):  # "Re: [demo] Re: x": markers and tags in any order
        before = title
        title = _MARKERS.sub("", title)
        if list_tag and title.casefold().startswith(list_tag.casefold()):
            title = title[len(list_tag):].strip()
        if title == before:
            break
    title = title.strip() or "(no subject)"
    return title if len(title) <= MAX_TITLE else title[:MAX_TITLE - 1].rstrip() + "…"


def collapse_quotes(text: str) -> tuple[str, bool]:
    """Each run of quoted lines as one "> first words..." line; True when any was shortened."""
    out: list[str] = []
    shortened = False
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if not QUOTE.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        run: list[str] = []
        while i < len(lines) and (QUOTE.match(lines[i]) or (
                not lines[i].strip() and i + 1 < len(lines) and QUOTE.match(lines[i + 1]))):
            run.append(dequote(lines[i]).strip())
            i += 1
        said = " ".join(w for w in run if w)
        preview = said[:QUOTE_PREVIEW].rstrip()
        if preview != said or len([w for w in run if w]) > 1:
            shortened = True
            preview += " …"
        out.append("> " + (preview or "…"))
    return "\n".join(out), shortened


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 1024:.0f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def _attachment_line(src: PostSource, a: Attachment) -> str:
    name = names.clean(a.filename).replace("`", "'") or f"attachment {a.number} ({a.content_type})"
    url = links.attachment_url(src.web_base_url, src.list_name, src.message_pk, a.number)
    return f"-# 📎 {name} · {_size(a.size)} · <{url}>"


def post_text(src: PostSource) -> str:
    """The whole text relayed for a post, before splitting."""
    original = first_text(src.raw).replace("\r\n", "\n").strip()
    trimmed = quotes.trim(original)
    text, shortened = collapse_quotes(trimmed)
    hidden = shortened or " ".join(trimmed.split()) != " ".join(original.split())
    lines = [_HEADING.sub(r"\\\1", text).strip() or "(no text)"]
    files = attachments(src.raw)
    if hidden or files:
        lines.append("")
    if hidden:
        url = links.message_url(src.web_base_url, src.list_name, src.message_pk)
        lines.append(f"-# (quoted text or signature hidden; the whole post: <{url}>)")
    lines += [_attachment_line(src, a) for a in files]
    return "\n".join(lines)


def split_message(text: str, limit: int = MAX_CONTENT) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, broken at the widest boundary that
    fits: between paragraphs, then lines, then words, then anywhere."""
    parts: list[str] = []
    for piece in _pieces(text.strip("\n"), limit, ("\n\n", "\n", " ")):
        if parts and len((parts[-1] + piece).rstrip()) <= limit:
            parts[-1] += piece
        else:
            parts.append(piece)
    out = [p.strip("\n").rstrip().lstrip(" ") for p in parts]
    return [p for p in out if p.strip()] or ["(no text)"]


def _pieces(text: str, limit: int, seps: tuple[str, ...]) -> list[str]:
    """``text`` cut after each ``seps[0]`` (kept on the left piece); pieces still too long are
    cut at the next separator, and finally every ``limit`` characters."""
    if len(text) <= limit:
        return [text]
    if not seps:
        return [text[i:i + limit] for i in range(0, len(text), limit)]
    sep, rest = seps[0], seps[1:]
    chunks = text.split(sep)
    out: list[str] = []
    for n, chunk in enumerate(chunks):
        piece = chunk + (sep if n < len(chunks) - 1 else "")
        out += [piece] if len(piece) <= limit else _pieces(piece, limit, rest)
    return out


def capped(parts: list[str], message_url: str, most: int = MAX_PARTS) -> list[str]:
    """At most ``most`` parts; the last of them says the post goes on in the archive."""
    if len(parts) <= most:
        return parts
    note = f"\n…\n-# (the post goes on in the archive: <{message_url}>)"
    last = parts[most - 1][:MAX_CONTENT - len(note)].rstrip()
    return [*parts[:most - 1], last + note]


def render_post(src: PostSource) -> RelayedPost:
    title = thread_title(src.thread_subject, src.list_tag)
    url = links.thread_url(src.web_base_url, src.list_name, src.thread_id)
    starter = f"**{title}**\n-# A thread on the {src.list_name} list: <{url}>"
    parts = capped(split_message(post_text(src)),
                   links.message_url(src.web_base_url, src.list_name, src.message_pk))
    return RelayedPost(webhook_name(src.author), title, parts, starter[:MAX_CONTENT])
