"""Rebuilding the search index from ``search_text`` (``commonroom db reindex-search``): after a
restore, or an index in doubt.

Invariants:
- SQLite: the rebuilt FTS5 index holds what the triggers write, the text folded by the fold of
  the migration that last defined them (``TRIGGERS``, 0022: ø ł ß … folded before the tokenizer
  removes diacritics). FTS5's own ``'rebuild'`` would read ``search_text`` as the author wrote
  it, and "Tromso" would no longer find "Tromsø"; so the index is emptied (``'delete-all'``)
  and filled from ``search_text`` through that fold, in one transaction.
- PostgreSQL: every ``tsv`` not yet filled is filled first (``search_behind``, a committed
  batch at a time), then the GIN index is rebuilt: ``REINDEX``. A filled ``tsv`` is always
  ``search_tsv`` of its row's text (migration 0024's trigger empties it when the text changes).
"""

from __future__ import annotations

import importlib.util
from functools import cache
from types import ModuleType

from sqlalchemy import text

from listserv import search_behind
from listserv.store import MIGRATIONS, Store

TRIGGERS = "0022_search_fold_letters.py"  # the migration whose fold the triggers use
COLUMNS = ("subject", "body", "author")


@cache
def _migration() -> ModuleType:
    path = MIGRATIONS / "versions" / TRIGGERS
    spec = importlib.util.spec_from_file_location(f"commonroom_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sqlite_fold(expr: str) -> str:
    """The SQL the triggers fold ``expr`` with."""
    fold: str = _migration().sqlite_fold(expr)
    return fold


def sqlite_fill() -> str:
    """The statement that fills the emptied FTS5 index from ``search_text``."""
    folded = ", ".join(sqlite_fold(c) for c in COLUMNS)
    return (f"INSERT INTO search_fts(rowid, {', '.join(COLUMNS)}) "
            f"SELECT message_pk, {folded} FROM search_text")


def rebuild(store: Store) -> int:
    """Rebuild the search index; the number of posts in it."""
    if store.is_postgres:
        search_behind.index_pending(store)
    with store.engine.begin() as conn:
        if store.is_sqlite:
            conn.execute(text("INSERT INTO search_fts(search_fts) VALUES ('delete-all')"))
            conn.execute(text(sqlite_fill()))
        else:
            conn.execute(text("REINDEX INDEX ix_search_text_tsv"))
        return int(conn.execute(text("SELECT count(*) FROM search_text")).scalar_one())
