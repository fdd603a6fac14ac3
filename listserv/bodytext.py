"""Text out of a message body: bytes decoded by their charset, HTML reduced to text, and the
first readable part of a message.

Pure functions; no I/O. Used by the participation policy, ``-request`` commands, replies to
held notices, digests (excerpts and enclosed posts) and the Discord bridge, so each of them reads
the same words out of the same post.

Invariants: nothing here raises on hostile input: undecodable bytes become U+FFFD (or a cp1252
guess), a MIME structure that breaks the standard library's walker gives ''. Links keep their
target and HTML blockquotes become "> " lines, so an HTML-only post loses neither its links nor
its quote markers.
"""

from __future__ import annotations

import re
from email import message_from_bytes
from email.message import Message
from email.policy import compat32
from html.parser import HTMLParser

__all__ = ["decode_bytes", "first_text", "html_to_text"]

# Labels that lie in practice: WHATWG decodes these as their supersets, and so do we.
_CHARSET_SUPERSETS = {
    "us-ascii": "cp1252", "ascii": "cp1252", "iso-8859-1": "cp1252", "latin1": "cp1252",
    "latin-1": "cp1252", "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949",
}


def decode_bytes(data: bytes, charset: str | None) -> str:
    """``data`` as text in ``charset``; unknown or missing charsets try UTF-8, then cp1252, and so
    do 8-bit bytes labelled ASCII."""
    if charset:
        label = charset.strip().strip('"').lower()
        if label in ("us-ascii", "ascii") and not data.isascii():
            try:  # 8-bit bytes under an ASCII label: the label is wrong, and UTF-8 the likeliest
                return data.decode("utf-8")
            except UnicodeDecodeError:
                pass
        try:
            return data.decode(_CHARSET_SUPERSETS.get(label, label), "replace")
        except (LookupError, UnicodeError, ValueError, TypeError):
            pass  # unknown label, or a bytes-to-bytes codec such as "base64": guess instead
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


# --- HTML to text -----------------------------------------------------------------------------

# Tags that end a line, and tags that end a paragraph (a blank line after them).
_LINE_TAGS = frozenset({
    "br", "dd", "div", "dt", "li", "tr", "header", "footer", "section", "article", "nav", "main",
})
_PARAGRAPH_TAGS = frozenset({
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl", "hr",
})
_HIDDEN_TAGS = frozenset({"script", "style", "title", "template"})
# What may stand in <head>; any other tag opens the body, even when </head> never came.
_HEAD_TAGS = frozenset({"head", "base", "link", "meta", "noscript", "script", "style", "title", "template"})


class _TextExtractor(HTMLParser):
    """Collects text, turning block structure into line breaks and HTML spacing into spaces.

    Links keep their target ("text <https://…>") and blockquotes become "> " lines, as a mail
    client's plain-text view shows them: the participation policy counts links and strips
    quotes, and neither may vanish because a post came as HTML only.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0
        self.head = False  # inside <head>, which a client may never close
        self.pre = 0
        self.quote = 0  # blockquote depth
        self.breaks = 0  # line breaks owed before the next visible text
        self.href: str | None = None  # the open <a>'s target
        self.anchor_text: list[str] = []

    def _block(self, tag: str) -> None:
        if tag == "br":
            self.breaks = min(self.breaks + 1, 2)  # <br><br> is a blank line
        elif tag in _PARAGRAPH_TAGS:
            self.breaks = 2
        elif tag in _LINE_TAGS:
            self.breaks = max(self.breaks, 1)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hidden += tag in _HIDDEN_TAGS
        self.head = tag == "head" or (self.head and tag in _HEAD_TAGS)
        self.pre += tag == "pre"
        if tag == "a":
            href = (dict(attrs).get("href") or "").strip()
            self.href = href if re.match(r"https?://", href, re.IGNORECASE) else None
            self.anchor_text = []
        self._block(tag)
        self.quote += tag == "blockquote"

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden = max(0, self.hidden - 1)
        if tag == "head":
            self.head = False
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag == "a" and self.href is not None:
            if self.href not in "".join(self.anchor_text) and not (self.hidden or self.head):
                self.parts.append(f" <{self.href}>")
            self.href = None
        if tag == "blockquote":
            self.quote = max(0, self.quote - 1)
        if tag != "br":
            self._block(tag)

    def handle_data(self, data: str) -> None:
        if self.head and not self.hidden and data.strip():
            self.head = False  # text outside <title>, <style>... opens the body, as in a browser
        if self.hidden or self.head:
            return
        text = data if self.pre else re.sub(r"\s+", " ", data)
        if not text.strip() and (self.breaks or not self.parts):
            return  # spacing between blocks, not content
        if self.breaks or not self.parts:
            if self.parts:
                self.parts.append("\n" * self.breaks)
            self.breaks = 0
            text = text.lstrip(" ")
            if self.quote:
                text = "> " * self.quote + text
        if self.quote and not self.pre:
            text = text.replace("\n", "\n" + "> " * self.quote)
        if self.href is not None:
            self.anchor_text.append(text)
        self.parts.append(text)


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML body: hidden parts dropped, blocks on their own lines."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return "\n".join(line.rstrip() for line in "".join(extractor.parts).split("\n")).strip()


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return decode_bytes(payload, part.get_content_charset())


def first_text(source: bytes | Message) -> str:
    """The first inline text/plain part as text; else the first text/html reduced to text.

    '' when the message has neither. Attachments are not the body, so they are skipped.
    """
    if isinstance(source, bytes):
        plain = _plain_text(source)
        if plain is not None:
            return plain
    return _parsed_first_text(source)


def _parsed_first_text(source: bytes | Message) -> str:
    """``first_text`` by the email package's parser, for any message."""
    try:
        msg = source if isinstance(source, Message) else message_from_bytes(source, policy=compat32)
        html: Message | None = None
        for part in msg.walk():
            ctype = part.get_content_type()
            if ctype not in ("text/plain", "text/html") or part.is_multipart():
                continue
            if part.get_content_disposition() == "attachment":
                continue
            if ctype == "text/plain":
                return _part_text(part)
            if html is None:
                html = part
        return html_to_text(_part_text(html)) if html is not None else ""
    except Exception:  # hostile MIME has broken the stdlib walker before; no text beats a crash
        return ""


# A Content-Type the fast path below takes: text/plain with simple parameters (no RFC 2231
# names, no quoted specials), whose charset it reads as the email package's get_param does.
_PLAIN_TYPE = re.compile(
    r'(?i)\s*text/plain\s*((?:;\s*[a-z][a-z0-9-]*\s*=\s*(?:[a-z0-9_.:+/-]+|"[a-z0-9_.:+/ -]*")\s*)*);?\s*')
_PARAM = re.compile(r'(?i);\s*([a-z][a-z0-9-]*)\s*=\s*(?:"([^"]*)"|([^";\s]+))')
_AS_IS = ("7bit", "8bit", "binary")  # transfer encodings get_payload(decode=True) leaves alone


def _plain_text(raw: bytes) -> str | None:
    """``first_text`` of a message that is one text/plain part, without the email parser (it
    costs every accepted post a full parse when search indexes it, issue 12), or None for any
    other message: the header block well formed as ``message._raw_headers``' fast path takes
    it and ended by a blank line, at most one Content-Type (text/plain, simple parameters) and
    Content-Transfer-Encoding (7bit, 8bit, binary, or none), no Content-Disposition. The body
    is then the bytes after the blank line, decoded by the charset as the parser's way does
    (tests/test_message.py compares the two on the shared corpus)."""
    from listserv import message  # message imports this module

    block = message._header_block(raw)
    if not block.endswith((b"\n\n", b"\n\r\n")) or b"\r" in block.replace(b"\r\n", b"") \
            or not message._WELL_FORMED.fullmatch(block):
        return None
    ctype = cte = None
    for m in message._FIELD.finditer(block):
        field = m.group(0)
        if field[:8].lower() != b"content-":  # only these three matter here
            continue
        name, value = message._field(field)
        lower = name.lower()
        if lower == "content-disposition":
            return None
        if lower == "content-type":
            if ctype is not None:
                return None
            ctype = value
        elif lower == "content-transfer-encoding":
            if cte is not None or value.lower() not in _AS_IS:
                return None
            cte = value
    charset = None
    if ctype is not None:
        found = _PLAIN_TYPE.fullmatch(ctype)
        if found is None:
            return None
        for param in _PARAM.finditer(found.group(1)):
            if param.group(1).lower() == "charset":  # get_param's first, unquoted, lower-cased
                quoted, bare = param.group(2, 3)
                charset = (bare if quoted is None else quoted).lower()
                break
    return decode_bytes(raw[len(block):], charset)
