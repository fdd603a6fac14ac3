"""What people type into a search box, read once and written out safely for each backend.

Pure functions; no I/O. The syntax is the one search engines taught everyone: words (all must
match), "quoted phrases", -exclusions and OR between two terms. ``parse`` reads any string
without raising; ``fts5`` and ``websearch`` write the parsed query back in a form that cannot be
a syntax error: every term is a quoted string, so FTS5 operators, column filters, parentheses
and stray quotes typed by a person are only words.

Invariants:
- A ``Term``'s text is non-empty, has at least one letter or digit, no control characters and
  no double quotes, and is at most ``MAX_TERM`` characters; a query has at most ``MAX_TERMS``.
- A query with no positive term (empty, punctuation only, or only exclusions) is ``empty``:
  callers answer it with no results rather than with every post.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_QUERY = 500  # characters read from what was typed
MAX_TERMS = 16
MAX_TERM = 100

# A quoted phrase (its closing quote optional: people forget it), or a run of non-space.
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')


@dataclass(frozen=True)
class Term:
    text: str  # one word, or a phrase of several

    @property
    def quoted(self) -> str:
        return f'"{self.text}"'


@dataclass(frozen=True)
class Query:
    """All ``groups`` must match (a group matches when any of its terms does), no ``excluded``
    term may."""

    groups: tuple[tuple[Term, ...], ...] = ()
    excluded: tuple[Term, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.groups

    @property
    def terms(self) -> tuple[Term, ...]:
        return tuple(t for g in self.groups for t in g)


def _clean(text: str) -> str:
    kept = "".join(" " if unicodedata.category(ch)[0] in "CZ" or ch == '"' else ch for ch in text)
    return " ".join(kept.split())[:MAX_TERM].strip()


def _term(text: str) -> Term | None:
    text = _clean(text)
    return Term(text) if any(ch.isalnum() for ch in text) else None


def parse(typed: str) -> Query:
    """The query in ``typed``; never raises."""
    groups: list[list[Term]] = []
    excluded: list[Term] = []
    or_next = False
    count = 0
    for m in _TOKEN.finditer(typed[:MAX_QUERY]):
        if count >= MAX_TERMS:
            break
        minus, phrase, bare = m.group(1), m.group(2), m.group(3)
        if bare is not None:
            if bare == "OR":
                or_next = bool(groups)  # "OR" with nothing before it is no operator
                continue
            minus, phrase = ("-", bare[1:]) if bare.startswith("-") and len(bare) > 1 else ("", bare)
        term = _term(phrase)
        if term is None:
            continue
        count += 1
        if minus:
            excluded.append(term)
        elif or_next:
            groups[-1].append(term)
        else:
            groups.append([term])
        or_next = False
    return Query(tuple(tuple(g) for g in groups), tuple(excluded))


def fts5(query: Query) -> str:
    """The query as an SQLite FTS5 MATCH expression ('' for an empty query)."""
    if query.empty:
        return ""
    wanted = " AND ".join("(" + " OR ".join(t.quoted for t in g) + ")" for g in query.groups)
    return "".join([f"({wanted})", *(f" NOT {t.quoted}" for t in query.excluded)])


def websearch(query: Query) -> str:
    """The query for PostgreSQL's ``websearch_to_tsquery`` ('' for an empty query): the same
    terms, each quoted, so a word such as "or" typed in lower case stays a word."""
    if query.empty:
        return ""
    wanted = " ".join(" or ".join(t.quoted for t in g) for g in query.groups)
    return wanted + "".join(f" -{t.quoted}" for t in query.excluded)
