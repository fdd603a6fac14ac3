"""Accent folding for search, the same on every backend: "cafe" finds "café" and the other way.

SQLite's FTS5 tokenizer (``unicode61 remove_diacritics 2``) folds accents itself; PostgreSQL's
text search does not, and its ``unaccent`` is an extension the database user may not be allowed
to create. So the fold is defined here, from ``unicodedata``, as a table of single characters,
and PostgreSQL applies the same table with its built-in ``translate()``: in the generated
``tsvector`` column (migration 0018) and to the text ``ts_headline`` marks, while the query is
folded here before it is sent.

Invariants:
- The fold maps one character to one character, so folded text has the original's length and a
  position in it is a position in the original (``restore`` relies on it to show snippets with
  their accents).
- It folds exactly the Latin letters with diacritics whose base is an ASCII letter (é→e, Ž→Z,
  ṃ→m), which SQLite's tokenizer folds too; letters that are not "a letter plus marks" (ø, ł,
  æ, ß) are left alone by both.
- Migration 0018 froze ``FROM``/``TO`` into the column's definition: changing the table needs a
  new migration regenerating the column.
"""

from __future__ import annotations

import unicodedata

# Latin-1 Supplement, Latin Extended-A and -B, Latin Extended Additional.
_RANGES = (range(0xC0, 0x250), range(0x1E00, 0x1F00))
# SQLite's tokenizer keeps these two (a letter with two marks, dot and macron) as they are.
_SQLITE_KEEPS = frozenset("Ǡǡ")


def _base(c: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", c) if not unicodedata.combining(ch))


def _table() -> dict[str, str]:
    out = {}
    for cp in (cp for r in _RANGES for cp in r):
        c = chr(cp)
        base = _base(c)
        if (base != c and len(base) == 1 and base.isascii() and base.isalpha()
                and unicodedata.name(c, "").startswith("LATIN") and c not in _SQLITE_KEEPS):
            out[c] = base
    return out


TABLE = _table()
FROM = "".join(TABLE)
TO = "".join(TABLE.values())
_TRANSLATION = str.maketrans(TABLE)


def fold(text: str) -> str:
    """``text`` with its accented Latin letters replaced by their bases; same length."""
    return text.translate(_TRANSLATION)


def restore(marked: str, original: str, markers: str, delimiter: str) -> str:
    """A snippet taken from ``fold(original)`` (``markers`` around matched words, fragments
    joined by ``delimiter``) with the original's characters put back. A fragment that cannot be
    found in the folded text (the snippet function rewrote it) is left folded."""
    folded = fold(original)
    strip = str.maketrans("", "", markers)
    out = []
    for fragment in marked.split(delimiter):
        plain = fragment.translate(strip)
        at = folded.find(plain) if plain else -1
        if at < 0:
            out.append(fragment)
            continue
        source = iter(original[at:at + len(plain)])
        out.append("".join(ch if ch in markers else next(source) for ch in fragment))
    return delimiter.join(out)
