"""Accent folding for search (listserv/accents.py): the table, its agreement with SQLite's own
folding, and snippets put back with their accents."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from listserv.accents import DIACRITICS, FROM, LETTERS, MULTI, TABLE, TO, fold, restore


@pytest.mark.parametrize("text,folded", [
    ("café", "cafe"), ("CAFÉ", "CAFE"), ("naïve résumé", "naive resume"), ("Zürich", "Zurich"),
    ("São Paulo", "Sao Paulo"), ("Núñez", "Nunez"), ("Łódź", "Lodz"), ("Ørsted", "Orsted"),
    ("Tromsø", "Tromso"), ("straße", "strasse"), ("GROẞE", "GROSSE"), ("Þórður", "THordur"),
    ("Færøerne", "Faeroerne"), ("cœur", "coeur"), ("Đorđević", "Dordevic"), ("ıstanbul", "istanbul"),
    ("Ǿre", "Ore"), ("ǽsc", "aesc"), ("ﬁnance", "finance"), ("ĳs", "ijs"), ("Ħal", "Hal"),
    ("ṃ", "m"), ("plain text 123", "plain text 123"), ("", ""),
])
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_the_table_folds_letters_to_ascii_letters() -> None:
    assert len(DIACRITICS) > 400 and all(len(v) == 1 for v in DIACRITICS.values())
    assert set("øØłŁæÆœŒßđĐðÐþÞı") <= set(LETTERS)
    assert not set(DIACRITICS) & set(LETTERS)
    assert all(v.isascii() and v.isalpha() and 1 <= len(v) <= 3 for v in TABLE.values())
    assert len(FROM) == len(TO) and len(FROM) + len(MULTI) == len(TABLE)
    assert "'" not in FROM + TO + "".join(MULTI) + "".join(MULTI.values())  # written into SQL


def test_sqlite_folds_every_letter_of_the_table_the_same_way() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='unicode61 remove_diacritics 2')")
    db.executemany("INSERT INTO t(rowid, x) VALUES (?, ?)",
                   [(i, f"q{c}q") for i, c in enumerate(DIACRITICS)])
    missed = [c for i, (c, base) in enumerate(DIACRITICS.items())
              if not db.execute("SELECT 1 FROM t WHERE rowid = ? AND t MATCH ?",
                                (i, f'"q{base}q"')).fetchall()]
    assert missed == []


@pytest.mark.parametrize("marked,original,restored", [
    ("a naive \x02resume\x03 of the \x02Zurich\x03 pilot", "A naïve résumé of the Zürich pilot.",
     "a naive \x02resume\x03 of the \x02Zurich\x03 pilot"),  # not found: left as it was
    ("naive \x02resume\x03 of the \x02Zurich\x03", "A naïve résumé of the Zürich pilot.",
     "naïve \x02résumé\x03 of the \x02Zürich\x03"),
    ("\x02cafe\x03 … \x02Sao\x03 Paulo", "Social café. Later: São Paulo.",
     "\x02café\x03 … \x02São\x03 Paulo"),
    # Letters folded to two: the second adds nothing, the markers stay around the word.
    ("the \x02strasse\x03 in \x02Tromso\x03 … \x02AEbleskiver\x03 ok",
     "Die Große: the straße in Tromsø. Later: Æbleskiver ok",
     "the \x02straße\x03 in \x02Tromsø\x03 … \x02Æbleskiver\x03 ok"),
    ("sse in", "the straße in", "ße in"),  # a fragment starting inside a fold
])
def test_restore(marked: str, original: str, restored: str) -> None:
    assert restore(marked, original, "\x02\x03", " … ") == restored


def _migration(name: str) -> Any:
    import importlib.util
    from pathlib import Path

    import listserv

    path = Path(listserv.__file__).parent / "migrations/versions" / name
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migrations_0018_and_0022_froze_the_same_table() -> None:
    m18, m22 = _migration("0018_search_accents.py"), _migration("0022_search_fold_letters.py")
    assert ("".join(DIACRITICS), "".join(DIACRITICS.values())) == (m18.FROM, m18.TO)
    assert (m18.FROM + m22.FROM, m18.TO + m22.TO, m22.MULTI) == (FROM, TO, MULTI)
    assert m22.LETTERS == LETTERS


def test_sqlite_triggers_fold_as_accents_does() -> None:
    """0022's SQL fold, run by SQLite, gives ``fold`` for every letter (the tokenizer folding
    the diacritics after it); ASCII text is left as it is."""
    m22 = _migration("0022_search_fold_letters.py")
    db = sqlite3.connect(":memory:")
    text = "Tromsø Łódź straße Æbleskiver ǿ ﬃ " + "".join(LETTERS)
    db.execute("CREATE TABLE t (x TEXT)")
    db.executemany("INSERT INTO t VALUES (?)", [(text,), ("plain",)])
    folded = [r[0] for r in db.execute(f"SELECT {m22.sqlite_fold('x')} FROM t ORDER BY rowid")]
    assert folded == ["".join(LETTERS.get(c, c) for c in text), "plain"]
