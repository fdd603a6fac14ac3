"""search folds letters that do not decompose: ø ł đ ð ı → o l d d i, þ ß æ œ → th ss ae oe

``listserv.accents`` now also folds the Latin letters Unicode does not decompose (``LETTERS``),
so "Tromso" finds "Tromsø", "Lodz" "Łódź" and "strasse" "straße", on both stores:
- PostgreSQL: the generated ``tsv`` column translates the one-to-one letters with 0018's table
  and those below, then ``replace()``s the letters that become two or three. 0021's fast path
  stays: ASCII text is indexed as it is.
- SQLite: FTS5's tokenizer folds only "a letter plus marks", so the triggers that feed the
  external-content index now fold ``LETTERS`` first (nested ``replace()``, ASCII text skipped),
  and the index is rebuilt from ``search_text`` through the same fold. ``search_text`` keeps the
  author's letters: FTS5's snippets read it, and a fold never moves a word boundary, so the
  index's token positions are still the text's. (FTS5's own 'rebuild' would index unfolded text:
  use this migration's ``_sqlite_reindex``.)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

# listserv.accents when this was written (tests/test_accents.py checks they agree): the
# one-to-one letters added to 0018's FROM/TO, and the letters folded to several.
FROM = 'øØłŁđĐðÐıħĦŧŦŀĿſǾǿẛ'
TO = 'oOlLdDdDihHtTlLsOos'
MULTI = {
    'þ': 'th', 'Þ': 'TH', 'ß': 'ss', 'ẞ': 'SS', 'æ': 'ae', 'Æ': 'AE', 'œ': 'oe', 'Œ': 'OE',
    'ĳ': 'ij', 'Ĳ': 'IJ', 'ﬀ': 'ff', 'ﬁ': 'fi', 'ﬂ': 'fl', 'ﬃ': 'ffi', 'ﬄ': 'ffl', 'ﬅ': 'st',
    'ﬆ': 'st', 'Ǣ': 'AE', 'ǣ': 'ae', 'Ǽ': 'AE', 'ǽ': 'ae',
}
# What SQLite's triggers fold (accents.LETTERS): the tokenizer does the rest.
LETTERS = dict(zip(FROM, TO, strict=True)) | MULTI


def _sibling(name: str) -> ModuleType:
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(f"commonroom_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replace(expr: str, table: dict[str, str]) -> str:
    for k, v in table.items():
        expr = f"replace({expr}, '{k}', '{v}')"
    return expr


def pg_column() -> str:
    m18 = _sibling("0018_search_accents.py")
    from_, to = m18.FROM + FROM, m18.TO + TO

    def text(expr: str) -> str:
        folded = _replace(f"translate({expr}, '{from_}', '{to}')", MULTI)
        return (f"(CASE WHEN octet_length({expr}) = char_length({expr}) THEN {expr} "
                f"ELSE {folded} END)")

    return ("ALTER TABLE search_text ADD COLUMN tsv tsvector GENERATED ALWAYS AS ("
            f"setweight(to_tsvector('english'::regconfig, {text('subject')}), 'A') || "
            f"setweight(to_tsvector('english'::regconfig, {text('author')} || ' ' || "
            f"translate({text('author')}, '@.<>', '    ')), 'B') || "
            f"setweight(to_tsvector('english'::regconfig, {text('body')}), 'C')) STORED")


# SQLite's parser stack (100 entries) overflows at about 30 nested calls, so the replace()s
# run in stages of STAGE, each a subquery over the last (4 stages of 16 still parse).
STAGE = 14


def sqlite_fold(expr: str) -> str:
    """``expr`` with ``LETTERS`` folded; ASCII text (as many bytes as characters) skipped."""
    pairs = list(LETTERS.items())
    stages = [dict(pairs[i:i + STAGE]) for i in range(0, len(pairs), STAGE)]
    folded = f"(SELECT {_replace(expr, stages[0])} AS v)"
    for stage in stages[1:]:
        folded = f"(SELECT {_replace('s.v', stage)} AS v FROM {folded} AS s)"
    return (f"(CASE WHEN length(CAST({expr} AS BLOB)) = length({expr}) THEN {expr} "
            f"ELSE (SELECT v FROM {folded}) END)")


def _sqlite_triggers(fold: bool) -> list[str]:
    def row(which: str) -> str:
        cols = [f"{which}.{c}" for c in ("subject", "body", "author")]
        return ", ".join(sqlite_fold(c) if fold else c for c in cols)

    return [
        "CREATE TRIGGER search_text_ai AFTER INSERT ON search_text BEGIN "
        "INSERT INTO search_fts(rowid, subject, body, author) "
        f"VALUES (new.message_pk, {row('new')}); END",
        "CREATE TRIGGER search_text_ad AFTER DELETE ON search_text BEGIN "
        "INSERT INTO search_fts(search_fts, rowid, subject, body, author) "
        f"VALUES ('delete', old.message_pk, {row('old')}); END",
        "CREATE TRIGGER search_text_au AFTER UPDATE ON search_text BEGIN "
        "INSERT INTO search_fts(search_fts, rowid, subject, body, author) "
        f"VALUES ('delete', old.message_pk, {row('old')}); "
        "INSERT INTO search_fts(rowid, subject, body, author) "
        f"VALUES (new.message_pk, {row('new')}); END",
    ]


def _sqlite_reindex(fold: bool) -> None:
    """Triggers that fold (or not), and the index rebuilt from ``search_text`` to match."""
    for name in ('search_text_au', 'search_text_ad', 'search_text_ai'):
        op.execute(sa.text(f"DROP TRIGGER IF EXISTS {name}"))
    for statement in _sqlite_triggers(fold):
        op.execute(sa.text(statement))
    op.execute(sa.text("INSERT INTO search_fts(search_fts) VALUES ('delete-all')"))
    cols = ("subject", "body", "author")
    select = ", ".join(sqlite_fold(c) if fold else c for c in cols)
    op.execute(sa.text("INSERT INTO search_fts(rowid, subject, body, author) "
                       f"SELECT message_pk, {select} FROM search_text"))


def _pg_rebuild(sql: str) -> None:
    op.execute(sa.text("DROP INDEX IF EXISTS ix_search_text_tsv"))
    op.execute(sa.text("ALTER TABLE search_text DROP COLUMN tsv"))
    op.execute(sa.text(sql))
    op.execute(sa.text("CREATE INDEX ix_search_text_tsv ON search_text USING gin (tsv)"))


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        _pg_rebuild(pg_column())
    else:
        _sqlite_reindex(fold=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        m18 = _sibling("0018_search_accents.py")
        _pg_rebuild(_sibling("0021_search_fold_non_ascii_only.py").column(m18.FROM, m18.TO))
    else:
        _sqlite_reindex(fold=False)
