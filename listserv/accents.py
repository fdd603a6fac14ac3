"""Accent folding for search, the same on every backend: "cafe" finds "café", "Tromso" finds
"Tromsø", "strasse" finds "straße", and the other way.

Two kinds of letters are folded:
- ``DIACRITICS``: Latin letters that are a base ASCII letter plus marks (é→e, Ž→Z, ṃ→m). SQLite's
  FTS5 tokenizer (``unicode61 remove_diacritics 2``) folds exactly these itself.
- ``LETTERS``: Latin letters Unicode does not decompose (ø→o, ł→l, đ→d, ð→d, ı→i, þ→th, ß→ss,
  æ→ae, œ→oe, the ligatures ﬁ/ĳ, and those letters with a mark, ǿ→o, ǽ→ae). No tokenizer
  folds these, so on SQLite the FTS5 triggers fold them before tokenizing (migration 0022), with
  nested ``replace()`` calls: no function of ours has to be registered on a connection.

PostgreSQL's text search folds nothing and its ``unaccent`` is an extension the database user
may not be allowed to create; its generated ``tsv`` column applies the whole ``TABLE`` with the
built-in ``translate()`` (the one-to-one part, ``FROM``/``TO``) and ``replace()`` (``MULTI``, the
letters that become two), and so does the text ``ts_headline`` marks. Queries are folded here.

Invariants:
- A letter folds to one to three ASCII letters, so folding never moves a word boundary: a word
  keeps its token position (SQLite's snippets, taken from the unfolded text, rely on it), and
  ``restore`` maps a snippet of folded text back to the author's letters.
- Migrations 0018 and 0022 froze the table into the schema (tests/test_accents.py checks they
  agree): changing it needs a new migration rebuilding the column and the triggers.
"""

from __future__ import annotations

import unicodedata

# Latin-1 Supplement, Latin Extended-A and -B, Latin Extended Additional, the Latin ligatures.
_RANGES = (range(0xC0, 0x250), range(0x1E00, 0x1F00), range(0xFB00, 0xFB07))
# SQLite's tokenizer keeps these two (a letter with two marks, dot and macron) as they are.
_SQLITE_KEEPS = frozenset("Ǡǡ")
# Letters that are not "a letter plus marks", spelt as their languages' readers spell them
# in ASCII (Danish, Norwegian, Polish, Croatian, Icelandic, Turkish, German, French, Maltese...).
# Kept to letters of living orthographies: SQLite applies each with its own nested replace()
# and its parser allows only so much nesting (see migration 0022's stages).
_OWN = {
    "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ı": "i",
    "ħ": "h", "Ħ": "H", "ŧ": "t", "Ŧ": "T", "ŀ": "l", "Ŀ": "L", "þ": "th", "Þ": "TH",
    "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
    # Ligatures (text pasted from PDFs), Dutch ĳ, the long s.
    "ĳ": "ij", "Ĳ": "IJ", "ſ": "s", "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl",
    "ﬅ": "st", "ﬆ": "st",
}


def _base(c: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", c) if not unicodedata.combining(ch))


def _latin() -> list[str]:
    return [c for c in (chr(cp) for r in _RANGES for cp in r)
            if unicodedata.name(c, "").startswith("LATIN")]


def _diacritics() -> dict[str, str]:
    out = {}
    for c in _latin():
        base = _base(c)
        if (base != c and len(base) == 1 and base.isascii() and base.isalpha()
                and c not in _SQLITE_KEEPS):
            out[c] = base
    return out


def _letters(diacritics: dict[str, str]) -> dict[str, str]:
    out = dict(_OWN)
    for c in _latin():
        if c not in diacritics and c not in out and _base(c) in _OWN:  # ǿ, ǽ: ø, æ with a mark
            out[c] = _OWN[_base(c)]
    return out


DIACRITICS = _diacritics()
LETTERS = _letters(DIACRITICS)
TABLE = DIACRITICS | LETTERS
FROM = "".join(k for k, v in TABLE.items() if len(v) == 1)
TO = "".join(v for v in TABLE.values() if len(v) == 1)
MULTI = {k: v for k, v in TABLE.items() if len(v) > 1}
_TRANSLATION = str.maketrans(TABLE)


def fold(text: str) -> str:
    """``text`` with its Latin letters folded to ASCII (``TABLE``)."""
    return text.translate(_TRANSLATION)


def sql_replace(expr: str, table: dict[str, str]) -> str:
    """SQL (SQLite and PostgreSQL alike) applying ``table`` to ``expr`` with nested
    ``replace()`` calls. The table's letters are written into the SQL as literals."""
    for k, v in table.items():
        assert "'" not in k + v
        expr = f"replace({expr}, '{k}', '{v}')"
    return expr


def _sources(text: str) -> tuple[str, list[int]]:
    """``fold(text)`` and, for each of its characters, the index in ``text`` it came from."""
    out: list[str] = []
    sources: list[int] = []
    for i, c in enumerate(text):
        f = TABLE.get(c, c)
        out.append(f)
        sources.extend([i] * len(f))
    return "".join(out), sources


def restore(marked: str, original: str, markers: str, delimiter: str) -> str:
    """A snippet taken from ``fold(original)`` (``markers`` around matched words, fragments
    joined by ``delimiter``) with the original's characters put back. A fragment that cannot be
    found in the folded text (the snippet function rewrote it) is left folded."""
    folded, sources = _sources(original)
    strip = str.maketrans("", "", markers)
    out = []
    for fragment in marked.split(delimiter):
        plain = fragment.translate(strip)
        at = folded.find(plain) if plain else -1
        if at < 0:
            out.append(fragment)
            continue
        chars, p = [], at
        for ch in fragment:
            if ch in markers:
                chars.append(ch)
                continue
            # The second letter of a fold (the "s" of ß→ss) adds nothing: ß is already out.
            if p == at or sources[p - 1] != sources[p]:
                chars.append(original[sources[p]])
            p += 1
        out.append("".join(chars))
    return delimiter.join(out)
