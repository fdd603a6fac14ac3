"""Accent folding for search (listserv/accents.py): the table, its agreement with SQLite's own
folding, and snippets put back with their accents."""

from __future__ import annotations

import sqlite3

import pytest

from listserv.accents import FROM, TABLE, TO, fold, restore


@pytest.mark.parametrize("text,folded", [
    ("café", "cafe"), ("CAFÉ", "CAFE"), ("naïve résumé", "naive resume"), ("Zürich", "Zurich"),
    ("São Paulo", "Sao Paulo"), ("Núñez", "Nunez"), ("Łódź", "Łodz"), ("Ørsted", "Ørsted"),
    ("straße", "straße"), ("ṃ", "m"), ("plain text 123", "plain text 123"), ("", ""),
])
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded
    assert len(fold(text)) == len(text)


def test_the_table_is_one_character_to_one() -> None:
    assert len(FROM) == len(TO) == len(TABLE) > 400
    assert all(len(k) == len(v) == 1 and v.isascii() for k, v in TABLE.items())
    assert "'" not in FROM + TO  # written into SQL by migration 0018


def test_sqlite_folds_every_letter_of_the_table_the_same_way() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='unicode61 remove_diacritics 2')")
    db.executemany("INSERT INTO t(rowid, x) VALUES (?, ?)",
                   [(i, f"q{c}q") for i, c in enumerate(TABLE)])
    missed = [c for i, (c, base) in enumerate(TABLE.items())
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
])
def test_restore(marked: str, original: str, restored: str) -> None:
    assert restore(marked, original, "\x02\x03", " … ") == restored


def test_migration_0018_froze_the_same_table() -> None:
    import importlib.util
    from pathlib import Path

    import listserv

    path = Path(listserv.__file__).parent / "migrations/versions/0018_search_accents.py"
    spec = importlib.util.spec_from_file_location("m0018", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (module.FROM, module.TO) == (FROM, TO)
