"""Mail bodies as HTML for the archive pages: plain text made readable, HTML made inert.

Pure functions; the result is markup the templates insert without escaping again, so every
byte of it is built here from escaped text or nh3's output.

- ``plain_to_html``: text escaped first, then links (http, https) made clickable; line breaks
  kept (the page styles ``.mail-text`` with ``white-space: pre-wrap``); quoted text (with the
  quote header above it), signatures and list footers folded into ``<details>``.
- ``sanitise_html``: nh3 (Ammonia) with an allow-list of tags and attributes; URL schemes
  http, https, mailto (and cid:, turned into our own attachment links); every link gets
  ``rel="noopener noreferrer nofollow"``; no scripts, event handlers, styles, classes or ids;
  remote images become a link the reader may click to load; blockquotes fold.

Invariants: the output never holds a script, an event handler attribute, a style attribute or
element, a ``javascript:``/``data:`` URL, or a remote resource the browser fetches by itself.
Sanitising happens at render time from the stored raw bytes, so a better sanitiser fixes old posts.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import nh3
from markupsafe import Markup, escape

from listserv.mailparts import Body
from listserv.quote_lines import QUOTE, SIG_DASHES, clean, is_attribution, is_footer_rule

REL = "noopener noreferrer nofollow"

# --- plain text ---------------------------------------------------------------------------------

_URL = re.compile(r"\bhttps?://[^\s<>\"'\x00-\x1f]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\"*_"


def _trim_url(url: str) -> str:
    """Drop trailing punctuation that ends the sentence, not the URL (and unbalanced ')')."""
    while url:
        if url[-1] in _TRAILING or (url[-1] == ")" and url.count(")") > url.count("(")):
            url = url[:-1]
        else:
            break
    return url


def linkify(text: str) -> Markup:
    """``text`` escaped, with http(s) URLs made into links."""
    out: list[str] = []
    pos = 0
    for m in _URL.finditer(text):
        url = _trim_url(m.group(0))
        if len(url) <= len("https://"):
            continue
        out.append(str(escape(text[pos:m.start()])))
        out.append(f'<a href="{escape(url)}" rel="{REL}">{escape(url)}</a>')
        pos = m.start() + len(url)
    out.append(str(escape(text[pos:])))
    return Markup("".join(out))


def _segments(lines: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Lines grouped as ("text" | "quote" | "signature" | "footer", lines). A quote header
    right above a quote joins the quote; blank lines inside a quote stay in it."""
    segs: list[tuple[str, list[str]]] = []
    n = len(lines)
    i = 0
    while i < n:
        line = lines[i]
        if SIG_DASHES.match(line) or is_footer_rule(list(lines), i):
            segs.append(("signature" if SIG_DASHES.match(line) else "footer", list(lines[i:])))
            break
        if QUOTE.match(line):
            j = i
            while j < n and (QUOTE.match(lines[j]) or (not lines[j].strip() and j + 1 < n
                                                      and QUOTE.match(lines[j + 1]))):
                j += 1
            block = list(lines[i:j])
            # The quote header ("On Monday, Ann wrote:") belongs with the quote it opens.
            if segs and segs[-1][0] == "text":
                prev = segs[-1][1]
                k = len(prev) - 1
                while k >= 0 and not prev[k].strip():
                    k -= 1
                if k >= 0 and is_attribution(clean(prev[k])):
                    block = prev[k:] + block
                    del prev[k:]
                    if not prev:
                        segs.pop()
            segs.append(("quote", block))
            i = j
            continue
        if segs and segs[-1][0] == "text":
            segs[-1][1].append(line)
        else:
            segs.append(("text", [line]))
        i += 1
    return segs


_SUMMARY = {"quote": "Quoted text", "signature": "Signature", "footer": "List footer"}


def plain_to_html(text: str, *, fold: bool = True) -> Markup:
    """Plain text as HTML: escaped, links clickable, line breaks kept, quotes folded."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not fold:
        return Markup(f'<div class="mail-text">{linkify(chr(10).join(lines))}</div>')
    parts: list[str] = []
    for kind, seg in _segments(lines):
        body = linkify("\n".join(seg).strip("\n"))
        if not body:
            continue
        if kind == "text":
            parts.append(f'<div class="mail-text">{body}</div>')
        else:
            count = sum(1 for line in seg if line.strip())
            noun = "line" if count == 1 else "lines"
            parts.append(f'<details class="{kind}"><summary>{_SUMMARY[kind]} ({count} {noun})'
                         f'</summary><div class="mail-text">{body}</div></details>')
    return Markup("".join(parts))


# --- HTML -----------------------------------------------------------------------------------

TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "details",
    "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd",
    "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub",
    "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
})
# Removed with everything inside them (the rest of the unknown tags keep their text).
CLEAN_CONTENT = frozenset({
    "script", "style", "title", "head", "template", "noscript", "iframe", "object", "embed",
    "svg", "math", "xmp", "noembed", "noframes", "textarea", "select", "button", "frameset",
})
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
    "abbr": {"title"},
    "*": {"lang", "dir"},
}
SCHEMES = frozenset({"http", "https", "mailto", "cid"})

_IMG = re.compile(r'<img((?:\s+[a-z-]+(?:="[^"]*")?)*)\s*/?>')
_ATTR = re.compile(r'([a-z-]+)(?:="([^"]*)")?')
_CID_LINK = re.compile(r'href="cid:[^"]*"')
_BLOCKQUOTE_OPEN = re.compile(r'<blockquote((?:\s+[a-z-]+(?:="[^"]*")?)*)>')
_HEADING = re.compile(r"<(/?)h([1-6])\b")
# A post sits under the page's h1 (the thread) and h2 (its author): its own headings start at h3.
_DEMOTED = {"1": "3", "2": "4", "3": "5", "4": "6", "5": "6", "6": "6"}
# The only image sources left after the second pass: our own attachment URLs.
_OWN_IMAGE = re.compile(r"^/lists/[a-z0-9-]{1,64}/messages/\d{1,18}/attachments/\d{1,6}$")


def _image(match: re.Match[str], cid_url: Callable[[str], str | None]) -> str:
    attrs = {name: html.unescape(value or "") for name, value in _ATTR.findall(match.group(1))}
    src, alt = attrs.get("src", ""), attrs.get("alt", "").strip()
    if src.lower().startswith("cid:"):
        local = cid_url(src[4:].strip("<>"))
        if local is None:
            return f"[image: {escape(alt)}]" if alt else ""
        return f'<img src="{escape(local)}" alt="{escape(alt)}">'
    if not src.lower().startswith(("http://", "https://")):
        return f"[image: {escape(alt)}]" if alt else ""
    host = urlsplit(src).hostname or "another site"
    label = f"image “{alt}”" if alt else "an image"
    return (f'<a class="remote-image" href="{escape(src)}" rel="{REL}">'
            f'Load {escape(label)} from {escape(host)}</a>')


def _own_images_only(element: str, attribute: str, value: str) -> str | None:
    if element == "img" and attribute == "src":
        return value if _OWN_IMAGE.match(value) else None
    return value


def sanitise_html(source: str, cid_url: Callable[[str], str | None] = lambda _cid: None) -> Markup:
    """Mail HTML made inert (see the module docstring). ``cid_url`` maps a Content-ID to our
    own URL for that attachment (inline images of multipart/related), or None.

    Two passes: nh3 cleans the mail (relative URLs denied: they would point into our site);
    images and blockquotes are then rewritten in its well-formed output; a second nh3 pass over
    the result admits only our own classes and our own image URLs, so the rewriting cannot let
    anything through that the first pass removed.
    """
    cleaned = nh3.clean(source, tags=set(TAGS), clean_content_tags=set(CLEAN_CONTENT),
                        attributes={k: set(v) for k, v in ATTRIBUTES.items()},
                        url_schemes=set(SCHEMES), link_rel=REL, strip_comments=True,
                        url_relative="deny")
    cleaned = _CID_LINK.sub("", cleaned)  # a link to a part, not a place: make it inert
    cleaned = _IMG.sub(lambda m: _image(m, cid_url), cleaned)
    cleaned = _BLOCKQUOTE_OPEN.sub(
        r'<details class="quote"><summary>Quoted text</summary><blockquote\1>', cleaned)
    cleaned = cleaned.replace("</blockquote>", "</blockquote></details>")
    cleaned = _HEADING.sub(lambda m: f"<{m.group(1)}h{_DEMOTED[m.group(2)]}", cleaned)
    final = nh3.clean(cleaned, tags=set(TAGS), clean_content_tags=set(CLEAN_CONTENT),
                      attributes={k: set(v) for k, v in ATTRIBUTES.items()},
                      tag_attribute_values={"a": {"class": {"remote-image"}},
                                            "details": {"class": {"quote"}}},
                      attribute_filter=_own_images_only, url_schemes=set(SCHEMES) - {"cid"},
                      link_rel=REL, strip_comments=True)
    return Markup(f'<div class="mail-html">{final}</div>')


def render_body(body: Body, cid_url: Callable[[str], str | None] = lambda _cid: None,
                *, fold: bool = True) -> Markup:
    """The post's body as markup: plain text made readable, HTML sanitised."""
    if body.is_html:
        return sanitise_html(body.text, cid_url)
    return plain_to_html(body.text, fold=fold)
