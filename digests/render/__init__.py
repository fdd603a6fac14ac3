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

One module per format, sharing a small core: ``core`` (types, placeholders, text parts,
which posts are enclosed), ``dates``, ``plain`` (RFC 1153; its preamble and footer are also
the text of the other two), ``mime`` (RFC 2046), ``html`` and ``member`` (per-member copies).
This module is the interface the rest of the code imports.
"""

from __future__ import annotations

from digests.model import Digest
from digests.render.core import (
    DELIVERY_URL,
    FORMATS,
    HTML,
    MAX_ENCLOSED_BYTES,
    MAX_LINE,
    MEMBER_EMAIL,
    MIME,
    PLACEHOLDERS,
    PLAIN,
    UNSUBSCRIBE_URL,
    WRAP,
    Frame,
    MemberLinks,
    Rendered,
    TextPart,
    digest_subject,
    enclosed_posts,
    new_tokens,
    post_text,
    safe_url,
    text_part,
)
from digests.render.dates import format_day, format_when
from digests.render.html import render_html
from digests.render.member import personalise
from digests.render.mime import render_mime
from digests.render.plain import MESSAGE_RULE, TOPIC_RULE, plain_footer, plain_preamble, render_plain
from listserv.bodytext import html_to_text

__all__ = [
    "DELIVERY_URL",
    "FORMATS",
    "HTML",
    "MAX_ENCLOSED_BYTES",
    "MAX_LINE",
    "MEMBER_EMAIL",
    "MESSAGE_RULE",
    "MIME",
    "PLACEHOLDERS",
    "PLAIN",
    "TOPIC_RULE",
    "UNSUBSCRIBE_URL",
    "WRAP",
    "MemberLinks",
    "Rendered",
    "TextPart",
    "digest_subject",
    "enclosed_posts",
    "format_day",
    "format_when",
    "html_to_text",
    "personalise",
    "post_text",
    "render",
    "safe_url",
    "text_part",
]

_RENDERERS = {PLAIN: render_plain, MIME: render_mime, HTML: render_html}


def render(digest: Digest, fmt: str, *, max_enclosed_bytes: int = MAX_ENCLOSED_BYTES) -> Rendered:
    """Render ``digest`` as "plain" (RFC 1153 text/plain), "mime" (multipart/mixed holding an
    RFC 2046 multipart/digest of the posts as received) or "html" (multipart/alternative of
    a text summary and the HTML summary). Done once per digest and format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown digest format {fmt!r}; expected one of {', '.join(FORMATS)}")
    tokens = new_tokens()
    frame = Frame(digest=digest, tokens=tokens, preamble=plain_preamble(digest, max_enclosed_bytes),
                  footer=plain_footer(digest, tokens), budget=max_enclosed_bytes)
    return _RENDERERS[fmt](frame)
