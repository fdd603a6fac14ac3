"""The participation policy for people posting in an official capacity, as a pure decision.

The community's rule (DESIGN.md, "Where the ideas come from"): information already in the public
domain (a press release) may be posted; a mere pointer to another online resource may be posted;
a post that gives new guidance or content, or expresses a view, is checked with policy and
communications first. ``classify`` turns a plain-text body into one of those three cases with the
evidence a moderator needs; holding the post is the caller's business.

What counts (see ``classify``): the author's own words are ``quotes.own_words`` (quotes, quote
headers, forwards and signatures removed) without any line still starting with ">"; URLs are not
words (a link is the pointer, not a view), so the count is of the words around them. Links are
those in the own words and in explicitly forwarded material (a forward or Outlook header block),
not those in quoted replies: quoting someone's link is not pointing at it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from listserv.quotes import count_words, forwarded_part, own_words, word_tokens

__all__ = [
    "COVERING_LINE_WORDS",
    "HOLD_REASON",
    "SCOPES",
    "Case",
    "Decision",
    "applies",
    "classify",
    "find_links",
    "matches_source",
    "parse_sources",
]


class Case(StrEnum):
    PUBLIC_DOMAIN = "public-domain"
    POINTER = "pointer"
    NEW_CONTENT = "new-content"


HOLD_REASON = "new guidance or a view — checked with policy and communications before it goes out"
COVERING_LINE_WORDS = 25  # "a short covering line" above a press release or a public link
SCOPES = ("off", "vendors", "vendors+official", "everyone")

_KNOWN_MIN_OVERLAP = 0.8  # share of a known text's 5-word runs a post must contain to quote it
_KNOWN_PREFIX_WORDS = 40  # ...or the known text's opening words, in order
_SHINGLE = 5


@dataclass(frozen=True)
class Decision:
    case: Case
    own_words: int
    links: tuple[str, ...]  # links in the author's own words and in forwarded material
    public_links: tuple[str, ...]  # those that match a public source
    quoted_public: bool  # the body quotes a text already posted from a public source
    reason: str  # one sentence for moderators and the sender

    @property
    def accepted(self) -> bool:
        return self.case is not Case.NEW_CONTENT

    def evidence(self) -> dict[str, Any]:
        """JSON-able record of the decision (for the audit log and the held-post notice)."""
        return {
            "case": self.case.value,
            "own_words": self.own_words,
            "links": list(self.links),
            "public_links": list(self.public_links),
            "quoted_public": self.quoted_public,
            "reason": self.reason,
        }


# --- public sources -----------------------------------------------------------------------------

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def _host_and_path(value: str) -> tuple[str, str] | None:
    """(host without "www." and port, path without trailing "/") of a URL or a bare prefix."""
    value = value.strip()
    if not value:
        return None
    try:
        parts = urlsplit(value if _SCHEME.match(value) else "http://" + value)
        host = (parts.hostname or "").rstrip(".")  # hostname drops userinfo: a@gov.uk@evil.com
    except ValueError:  # a malformed port or bracketed host: not a source, not a match
        return None
    if not host:
        return None
    host = host.removeprefix("www.")
    return host, parts.path.rstrip("/")


def parse_sources(value: str) -> tuple[str, ...]:
    """A list's public sources as normalised prefixes ("host/path" or "host").

    Split on whitespace and commas; scheme dropped, host lower-cased, "www." dropped, trailing
    "/" dropped: "https://www.council.gov.uk/news/" becomes "council.gov.uk/news".
    """
    out: list[str] = []
    for item in re.split(r"[\s,]+", value):
        hp = _host_and_path(item)
        if hp is None:
            continue
        source = hp[0] + hp[1]
        if source not in out:
            out.append(source)
    return tuple(out)


def _matching_source(url: str, sources: tuple[str, ...]) -> str | None:
    hp = _host_and_path(url)
    if hp is None:
        return None
    host, path = hp
    for source in sources:
        src = _host_and_path(source)
        if src is None:
            continue
        src_host, src_path = src
        if not src_path:
            # A bare domain vouches for itself and its subdomains, never for "evil" + domain or
            # domain + ".evil.com": the match is on whole labels from the right.
            if host == src_host or host.endswith("." + src_host):
                return source
        elif host == src_host and (path == src_path or path.startswith(src_path + "/")):
            return source  # a path prefix holds on a segment boundary: /news, not /newsletter
    return None


def matches_source(url: str, sources: tuple[str, ...]) -> bool:
    """True when ``url`` lies under one of ``sources`` (as made by ``parse_sources``)."""
    return _matching_source(url, sources) is not None


# --- links --------------------------------------------------------------------------------------

_LINK = re.compile(r"(?<![\w@.:/-])(?:https?://|www\.)[^\s<>\"'\[\]{}|\\^`]+", re.IGNORECASE)
_TRAILING = ").,;:!?'\">"


def find_links(text: str) -> list[str]:
    """http(s) URLs and bare "www." ones, trailing punctuation stripped, first occurrence order."""
    out: list[str] = []
    for m in _LINK.finditer(text):
        link = m.group(0).rstrip(_TRAILING)
        # A closing bracket the URL opened itself (Wikipedia style) belongs to it.
        if link.count("(") > link.count(")") and text[m.start() + len(link):].startswith(")"):
            link += ")"
        if "." in link.split("://", 1)[-1] and link not in out:
            out.append(link)
    return out


def _without_links(text: str) -> str:
    return _LINK.sub(" ", text)


# --- who it applies to --------------------------------------------------------------------------


def applies(kind: str, official: bool, scope: str) -> bool:
    """Whether the policy applies to a poster.

    ``kind`` is the member's kind ("member" or "vendor"); ``official`` is set when the list marks
    them as posting in an official capacity. Scopes:
    - "off": never;
    - "vendors": vendor staff *and* anyone marked official, since officials are the reason the
      rule exists ("vendors+official" is accepted as an explicit spelling of the same);
    - "everyone": every poster.
    An unknown scope or kind is a configuration error and raises ``ValueError``.
    """
    if kind not in ("member", "vendor"):
        raise ValueError(f"unknown member kind {kind!r}")
    if scope == "off":
        return False
    if scope in ("vendors", "vendors+official"):
        return kind == "vendor" or official
    if scope == "everyone":
        return True
    raise ValueError(f"unknown policy scope {scope!r} (one of {', '.join(SCOPES)})")


# --- known public texts -------------------------------------------------------------------------


def _shingles(tokens: list[str]) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + _SHINGLE]) for i in range(len(tokens) - _SHINGLE + 1)}


def _contains_known(text: str, known_public_texts: Iterable[str]) -> bool:
    """True when ``text`` substantially contains one of the known texts (case and spacing aside)."""
    tokens = word_tokens(text)
    if not tokens:
        return False
    joined = " " + " ".join(tokens) + " "
    shingles: set[tuple[str, ...]] | None = None
    for known in known_public_texts:
        k = word_tokens(known)
        if not k:
            continue
        if " " + " ".join(k[:_KNOWN_PREFIX_WORDS]) + " " in joined:
            return True
        if len(k) >= _SHINGLE:
            if shingles is None:
                shingles = _shingles(tokens)
            ks = _shingles(k)
            if len(ks & shingles) >= _KNOWN_MIN_OVERLAP * len(ks):
                return True
    return False


# --- the decision -------------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def classify(
    text: str,
    *,
    public_sources: tuple[str, ...],
    word_limit: int = 60,
    known_public_texts: Iterable[str] = (),
) -> Decision:
    """Which of the policy's three cases a post falls in.

    - public domain: there is a link, every link points to a public source, and the author adds
      at most a covering line (COVERING_LINE_WORDS own words); or the post quotes or forwards a
      text already posted from a public source (``known_public_texts``), with at most a covering
      line and no link elsewhere;
    - pointer: a link and at most ``word_limit`` own words;
    - new content: anything else, including a short post with no link (its words are the
      poster's own: a view, however brief) and a public link under a paragraph of view.
    """
    own = "\n".join(line for line in own_words(text).split("\n") if not line.lstrip().startswith(">"))
    forwarded = forwarded_part(text, quotes=False)
    links = tuple(dict.fromkeys(find_links(own) + find_links(forwarded)))
    matched = [(link, _matching_source(link, public_sources)) for link in links]
    public_links = tuple(link for link, source in matched if source is not None)
    sources_used = tuple(dict.fromkeys(source for _, source in matched if source is not None))
    n = count_words(_without_links(own))
    quoted = forwarded_part(text)
    quoted_public = _contains_known(quoted + "\n" + own, known_public_texts)
    all_public = len(public_links) == len(links)

    def decide(case: Case, reason: str) -> Decision:
        return Decision(case, n, links, public_links, quoted_public, reason)

    words = _plural(n, "own word")
    if links and all_public and n <= COVERING_LINE_WORDS:
        return decide(Case.PUBLIC_DOMAIN,
                      f"public domain: every link points to a public source ({', '.join(sources_used)}) "
                      f"and {words}")
    if quoted_public and all_public and n <= COVERING_LINE_WORDS:
        return decide(Case.PUBLIC_DOMAIN,
                      f"public domain: quotes a text already posted from a public source and {words}")
    if links and n <= word_limit:
        some_links = "a link" if len(links) == 1 else _plural(len(links), "link")
        return decide(Case.POINTER, f"pointer: {words} (limit {word_limit}) and {some_links}")
    if not links and n == 0 and quoted.strip():
        return decide(Case.NEW_CONTENT,
                      "new guidance or a view: no link: forwards a text not known to be public")
    if not links:
        return decide(Case.NEW_CONTENT, f"new guidance or a view: no link: own words ({words})")
    return decide(Case.NEW_CONTENT, f"new guidance or a view: {words} (limit {word_limit})")
