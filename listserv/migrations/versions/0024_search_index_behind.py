"""search indexed behind the posts: PostgreSQL's ``tsv`` is a plain column an indexer fills

The generated ``tsv`` column (0010, 0018, 0021, 0022) and its GIN entries cost ~1 ms of server
CPU a post inside the handling transaction, on the one writer's critical path (issue 12,
bench/README.md). Now:
- ``search_tsv(subject, author, body)``: an IMMUTABLE SQL function whose body is 0022's
  generated expression as it is (its parameters named as the columns), so a row indexed by it
  holds the very tsvector the column held, and search results do not change.
- ``tsv`` keeps its values (``DROP EXPRESSION``) and its GIN index, and is NULL for a row not
  yet indexed: the post's INSERT no longer computes it. ``ix_search_text_unindexed`` (partial,
  ``WHERE tsv IS NULL``) finds those rows for the indexer (``listserv.search_behind``) and for
  the search, which matches them through the function until they are indexed.
- An UPDATE of a row's text sets its ``tsv`` back to NULL (trigger ``search_text_unindex``),
  so a tsv is always NULL or ``search_tsv`` of the row's text, whoever writes it.
SQLite: nothing (its FTS5 triggers stay as they are).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

_HEAD, _TAIL = "GENERATED ALWAYS AS (", ") STORED"


def _m0022() -> ModuleType:
    """Migration 0022, for its generated column (this one's function body, the downgrade's)."""
    path = Path(__file__).with_name("0022_search_fold_letters.py")
    spec = importlib.util.spec_from_file_location("commonroom_migration_0022", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expression() -> str:
    """0022's generated expression over ``subject``, ``author`` and ``body``."""
    column: str = _m0022().pg_column()
    assert column.count(_HEAD) == 1 and column.endswith(_TAIL)
    return column.split(_HEAD, 1)[1][:-len(_TAIL)]


def function() -> str:
    # Not STRICT: a STRICT SQL function is not inlined into the queries that call it.
    return ("CREATE FUNCTION search_tsv(subject text, author text, body text) "
            "RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE "
            f"AS $fn$ SELECT {expression()} $fn$")


UPGRADE = [
    "ALTER TABLE search_text ALTER COLUMN tsv DROP EXPRESSION",
    "CREATE INDEX ix_search_text_unindexed ON search_text (message_pk) WHERE tsv IS NULL",
    "CREATE FUNCTION search_text_unindex() RETURNS trigger LANGUAGE plpgsql "
    "AS $fn$ BEGIN NEW.tsv := NULL; RETURN NEW; END $fn$",
    "CREATE TRIGGER search_text_unindex BEFORE UPDATE OF subject, author, body ON search_text "
    "FOR EACH ROW WHEN (OLD.subject IS DISTINCT FROM NEW.subject "
    "OR OLD.author IS DISTINCT FROM NEW.author OR OLD.body IS DISTINCT FROM NEW.body) "
    "EXECUTE FUNCTION search_text_unindex()",
]

DOWNGRADE = [
    "DROP TRIGGER search_text_unindex ON search_text",
    "DROP FUNCTION search_text_unindex()",
    "DROP INDEX ix_search_text_unindexed",
    "DROP INDEX ix_search_text_tsv",
    "ALTER TABLE search_text DROP COLUMN tsv",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(sa.text(function()))
    for statement in UPGRADE:
        op.execute(sa.text(statement))


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for statement in DOWNGRADE:
        op.execute(sa.text(statement))
    op.execute(sa.text(_m0022().pg_column()))  # every row's tsv computed again
    op.execute(sa.text("CREATE INDEX ix_search_text_tsv ON search_text USING gin (tsv)"))
    op.execute(sa.text("DROP FUNCTION search_tsv(text, text, text)"))
