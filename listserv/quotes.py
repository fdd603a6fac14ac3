"""The author's own words: a mail body without quoted text, quote headers, forwards and signatures.

Pure text in, text out; no I/O. Three views of one line-by-line analysis:

- ``trim(text)``: the reply as a reader wants it in a digest excerpt. Interleaved quotes (a quote
  the author answers below) are kept for context; quotes after the last line of the author's
  text, quote headers, forwarded parts, signatures and list footers are removed. A mail that is
  only a forward gives the forwarded text, a mail that is only a quote gives the quote. This is
  what the discourse answer key (``email_reply_trimmer``) measures.
- ``own_words(text)``: what the author wrote, for the participation policy: ``trim`` without any
  quoted line, and nothing at all for a bare forward (forwarding is not writing).
- ``forwarded_part(text, quotes=True)``: the quoted and forwarded material, without quote markers,
  quote headers or header blocks, so the policy can compare it with texts already public;
  ``quotes=False`` keeps only explicit forwards (whose links the policy follows).

How a line is read (``_classify``; the patterns live in ``quote_lines``):
- quote: starts with ">" (also supercite initials such as "C>"); also a lower-case line right
  under a long quoted line when the quote goes on right under it (or the message ends there):
  the tail of a quoted line that the sender's client re-wrapped without its ">";
- quote header ("attribution"): "On <date>, <someone> wrote:" and its German, French, Spanish,
  Dutch, Portuguese, Italian, Polish, Czech, Russian, Ukrainian, Nordic, Finnish, Hungarian,
  Turkish and Chinese forms, possibly wrapped over up to five lines (the first may open with only
  a weekday and a date, "pe 20. lokakuuta 2017 klo 17.50 Name"); Gmail's "2016-03-03 17:21
  GMT+01:00 Name"; "2013/7/20 Name <a@b>"; and with no verb at all, a date, a time and an
  address ending the line with a colon ("ср, 30 апр. 2025 г. в 15:19, Name <a@b>:");
- forward marker: "---------- Forwarded message ---------", "-----Original Message-----",
  "Begin forwarded message:" and translations; any short phrase between dashes that a header
  block follows ("-------- Oprindelig besked --------");
- header block: a "From:" line (or De:/Von:/Van:/Da:/Fra:/Från:/От:...) or a date line (Date:,
  "Message du"...) followed by more header fields, with a From field and a date field, or both
  "To:" and "Subject:". A lone "From:" (or "From:" + "To:") in the author's own text is left alone;
- signature: a "-- " or "--" line; a mobile signature ("Sent from my iPhone", "Get Outlook for
  iOS", "Envoyé depuis mon iPhone", "Gesendet von Outlook für Android"... on a short line); an
  underscore rule followed by a short tail or a list footer, or a short one ("__") over a list
  footer.

What is never cut: a line that merely holds a date or a time (a verbless header needs the
address and the colon too), a dashed heading that no header block follows, a sentence that
starts like a sign-off (more than eight words), an answer under a quote that a blank line
follows, an event's "Date: / From: / To:" lines (a block opened by a date needs a Subject).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from listserv.quote_lines import (
    ATTR_OPENER,
    DASHED_PHRASE,
    DECORATION,
    FORWARD,
    JOIN_LINES,
    QUOTE,
    SIG_DASHES,
    SPACES,
    TIME,
    YEAR,
    clean,
    dequote,
    header_block_end,
    header_field,
    is_attribution,
    is_footer_rule,
    is_mobile_signature,
    opens_header_block,
)

__all__ = ["count_words", "forwarded_part", "own_words", "trim", "word_tokens"]


class _Kind(Enum):
    EMPTY = "e"
    TEXT = "t"
    QUOTE = "q"
    QUOTED_HEADER = "Q"  # a quote header or forward marker inside a quote: noise, always dropped
    ATTRIBUTION = "a"
    FORWARD = "f"
    HEADERS = "h"
    SIGNATURE = "s"
    FOOTER_RULE = "r"


_WORD = re.compile(r"\w+(?:['’]\w+)*")

def word_tokens(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits, apostrophes inside words)."""
    return [w.lower() for w in _WORD.findall(text)]


def count_words(text: str) -> int:
    """Number of words in ``text`` (the same tokens as ``word_tokens``)."""
    return sum(1 for _ in _WORD.finditer(text))


@dataclass
class _Analysis:
    lines: list[str]
    kinds: list[_Kind]
    spans: dict[int, int] = field(default_factory=dict)  # first line -> end (exclusive) of a block


def _classify(lines: list[str]) -> _Analysis:
    n = len(lines)
    a = _Analysis(lines, [_Kind.TEXT] * n)
    singles = [False] * n
    for i, line in enumerate(lines):
        s = clean(line)
        if not s:
            a.kinds[i] = _Kind.EMPTY
        elif QUOTE.match(line):
            inner = clean(dequote(line))
            if inner and (is_attribution(inner) or FORWARD.match(inner)):
                a.kinds[i] = _Kind.QUOTED_HEADER
            else:
                a.kinds[i] = _Kind.QUOTE
        elif SIG_DASHES.match(line) or is_mobile_signature(line):
            a.kinds[i] = _Kind.SIGNATURE
        elif FORWARD.match(s.strip("*_ ")) or (DASHED_PHRASE.match(s) and opens_header_block(lines, i)):
            a.kinds[i] = _Kind.FORWARD
        elif is_attribution(s):
            a.kinds[i] = _Kind.ATTRIBUTION
            singles[i] = True
    for i in range(1, n):
        if a.kinds[i] is _Kind.TEXT and _is_rewrapped_quote(lines, a.kinds, i):
            a.kinds[i] = _Kind.QUOTE
    i = 0
    while i < n:
        kind = a.kinds[i]
        if kind is _Kind.TEXT:
            end = header_block_end(lines, i)
            if end is not None:
                a.kinds[i] = _Kind.HEADERS
                a.spans[i] = end
                i = end
                continue
            end = _wrapped_attribution_end(lines, a.kinds, singles, i)
            if end is not None and _shorter_attribution(lines, i, end):
                i += 1  # the header starts on a later line: this one is the author's prose
                continue
            if end is not None:
                a.kinds[i] = _Kind.ATTRIBUTION
                a.spans[i] = end
                i = end
                continue
            if is_footer_rule(lines, i):
                a.kinds[i] = _Kind.FOOTER_RULE
        elif kind is _Kind.ATTRIBUTION:
            a.spans[i] = i + 1
        i += 1
    return a


_REWRAP_MIN = 50  # characters of a quoted line that the sender's client must have wrapped
_REWRAP_MAX = 80


def _is_rewrapped_quote(lines: list[str], kinds: list[_Kind], i: int) -> bool:
    """True when line ``i`` is the tail of the quoted line above it, which a client re-wrapped
    without a ">": it goes on in lower case right under a long quoted line, and the quote goes on
    right under it (or the message ends). An answer under a quote starts a sentence of its own,
    or a paragraph: a blank line follows it."""
    s = clean(lines[i])
    if not s or not s[0].islower() or len(s) > _REWRAP_MAX:
        return False
    if kinds[i - 1] is not _Kind.QUOTE or len(clean(dequote(lines[i - 1]))) < _REWRAP_MIN:
        return False
    after = next((k for k in kinds[i + 1:] if k is not _Kind.EMPTY), None)
    if i + 1 < len(kinds) and kinds[i + 1] is _Kind.EMPTY:
        return after is None or after is _Kind.SIGNATURE
    return after in (None, _Kind.QUOTE, _Kind.QUOTED_HEADER, _Kind.SIGNATURE)


def _wrapped_attribution_end(lines: list[str], kinds: list[_Kind], singles: list[bool], i: int) -> int | None:
    first = clean(lines[i])
    if len(first) > 200:
        return None
    # A header's first line opens like one, holds an address, or holds a date and a time.
    if not (ATTR_OPENER.match(first) or "@" in first or "<" in first
            or (TIME.search(first) and YEAR.search(first))):
        return None
    parts = [first]
    for j in range(i + 1, min(i + JOIN_LINES, len(lines))):
        if kinds[j] in (_Kind.SIGNATURE, _Kind.FORWARD):
            return None
        part = clean(dequote(lines[j]))
        if len(part) > 120:
            return None
        if part:
            parts.append(part)
            if is_attribution(" ".join(parts)):
                return j + 1
        if singles[j]:  # a header of its own that this line does not complete
            return None
    return None


def _shorter_attribution(lines: list[str], start: int, end: int) -> bool:
    """True when a later line that opens like a quote header ("Op 16 aug. 2014 ...") makes the
    whole header with the lines up to ``end``: the lines before it are then the author's."""
    parts = [clean(dequote(line)) for line in lines[start + 1:end]]
    return any(
        ATTR_OPENER.match(parts[k]) and is_attribution(" ".join(p for p in parts[k:] if p))
        for k in range(len(parts))
    )


@dataclass
class _Split:
    kept: list[tuple[_Kind, str]]
    quoted: list[str]  # quoted and forwarded lines, quote markers removed
    forward_only: bool  # nothing of the author's before a forward or header block
    forward_body: list[str]


def _lines(text: str) -> list[str]:
    # No-break and zero-width spaces become plain ones (or nothing) once, here: every pattern
    # can then use plain spaces, and the output is the better for it. (``translate`` with a dict
    # looks every character up; most texts hold none of them: a scan each is cheaper.)
    if any(c in text for c in _SPACE_CHARS):
        text = text.translate(SPACES)
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


_SPACE_CHARS = tuple(chr(c) for c in SPACES)


def _forward_body(a: _Analysis, start: int) -> list[str]:
    """Lines of a forward after its marker or header block, quote markers and headers removed."""
    lines = a.lines
    i = start
    if a.kinds[i] is _Kind.FORWARD:
        i += 1
        while i < len(lines) and not clean(lines[i]):
            i += 1
    if i < len(lines):
        end = header_block_end(lines, i)
        if end is not None:
            i = end
        else:  # some clients put fewer fields than a block needs: skip any leading fields
            while i < len(lines) and header_field(lines[i]) is not None:
                i += 1
    return _without_headers([dequote(line) for line in lines[i:]])


def _without_headers(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        s = clean(lines[i])
        end = header_block_end(lines, i) if s else None
        if end is not None:
            i = end
            continue
        if s and (is_attribution(s) or FORWARD.match(s.strip("*_ "))):
            i += 1
            continue
        out.append(lines[i])
        i += 1
    return out


def _split(text: str) -> _Split:
    a = _classify(_lines(text))
    lines, kinds = a.lines, a.kinds
    n = len(lines)
    kept: list[tuple[_Kind, str]] = []
    quoted: list[str] = []
    seen_text = False
    forward_only = False
    forward_body: list[str] = []
    i = 0
    while i < n:
        kind = kinds[i]
        if kind in (_Kind.SIGNATURE, _Kind.FOOTER_RULE):
            break
        if kind in (_Kind.FORWARD, _Kind.HEADERS):
            forward_body = _forward_body(a, i)
            quoted.extend(forward_body)
            forward_only = not seen_text
            break
        if kind is _Kind.ATTRIBUTION:
            end = a.spans.get(i, i + 1)
            if not seen_text:
                # A quote header before anything of the author's: drop it and the quote it opens;
                # unquoted text after it is the author's (Gmail mobile writes below the header).
                i = end
                while i < n and kinds[i] in (_Kind.EMPTY, _Kind.QUOTE, _Kind.QUOTED_HEADER):
                    if kinds[i] is _Kind.QUOTE:
                        quoted.append(dequote(lines[i]))
                    i += 1
                continue
            if _answered_below(kinds, end):
                i = end  # interleaved reply: the quote it introduces is answered below it
                continue
            quoted.extend(_without_headers([dequote(line) for line in lines[end:]]))
            break
        if kind is _Kind.QUOTED_HEADER:
            i += 1
            continue
        if kind is _Kind.QUOTE:
            quoted.append(dequote(lines[i]))
        elif kind is _Kind.TEXT:
            seen_text = True
        kept.append((kind, lines[i]))
        i += 1
    # Whatever trails the author's last line of text is quote, decoration or blank.
    has_text = any(k is _Kind.TEXT and not DECORATION.match(line) for k, line in kept)
    while kept:
        k, line = kept[-1]
        if k is _Kind.EMPTY or DECORATION.match(line) or (k is _Kind.QUOTE and has_text):
            kept.pop()
        else:
            break
    return _Split(kept, quoted, forward_only and not has_text, forward_body)


def _answered_below(kinds: list[_Kind], start: int) -> bool:
    """True when a quote starts at ``start`` (after blanks) and the author's text follows it."""
    i = start
    while i < len(kinds) and kinds[i] is _Kind.EMPTY:
        i += 1
    if i >= len(kinds) or kinds[i] is not _Kind.QUOTE:
        return False
    while i < len(kinds) and kinds[i] in (_Kind.EMPTY, _Kind.QUOTE, _Kind.QUOTED_HEADER):
        i += 1
    return i < len(kinds) and kinds[i] is _Kind.TEXT


def _join(lines: list[str]) -> str:
    text = "\n".join(line.rstrip() for line in lines).strip("\n")
    return "" if not any(c.isalnum() for c in text) else text


def _collapse_blank_runs(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        if not line.strip() and out and not out[-1].strip():
            continue
        out.append(line)
    return out


def trim(text: str, *, _depth: int = 0) -> str:
    """The reply with trailing quotes, quote headers, forwards and signatures removed.

    Quotes the author answers below are kept (context for a reader); a bare forward gives the
    forwarded text and a bare quote gives the quote, so an excerpt is never empty for no reason.
    """
    s = _split(text)
    if s.forward_only and _depth == 0:
        return trim("\n".join(s.forward_body), _depth=1)
    return _join([line for _, line in s.kept])


def own_words(text: str) -> str:
    """What the author wrote: ``trim`` without any quoted line; "" for a bare forward."""
    s = _split(text)
    if s.forward_only:
        return ""
    lines = [line for kind, line in s.kept if kind is not _Kind.QUOTE]
    return _join(_collapse_blank_runs(lines))


def forwarded_part(text: str, *, quotes: bool = True) -> str:
    """The quoted and forwarded material, without quote markers, quote headers or header blocks.

    With ``quotes=False`` only an explicit forward (a forward marker or a header block) counts,
    not the quotes of a reply: the policy follows the links a poster forwards, not those of the
    message they answer.
    """
    s = _split(text)
    return _join(_collapse_blank_runs(s.quoted if quotes else s.forward_body))
