"""search fold only non-ASCII text: PostgreSQL's ``translate`` runs only on text that has a
character outside ASCII

Migration 0018's generated ``tsv`` column folds accents with ``translate(x, FROM, TO)`` over a
table of ~500 letters; PostgreSQL compares every character of the text with that table, so a
3 KB body cost ~3.5 ms of server CPU in the writer's transaction (``to_tsvector`` itself 0.3 ms),
most of a post's handling on PostgreSQL (issue 12). Every letter in FROM is outside ASCII, so
``translate`` leaves ASCII text as it is: the column now skips it when ``octet_length`` equals
``char_length`` (UTF-8: no multi-byte character). Same tsvector for every text.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def _m0018() -> ModuleType:
    """Migration 0018, for its frozen FROM/TO and its column (the downgrade's)."""
    path = Path(__file__).with_name("0018_search_accents.py")
    spec = importlib.util.spec_from_file_location("commonroom_migration_0018", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def column(from_: str, to: str) -> str:
    def text(expr: str) -> str:
        return (f"(CASE WHEN octet_length({expr}) = char_length({expr}) THEN {expr} "
                f"ELSE translate({expr}, '{from_}', '{to}') END)")

    return ("ALTER TABLE search_text ADD COLUMN tsv tsvector GENERATED ALWAYS AS ("
            f"setweight(to_tsvector('english'::regconfig, {text('subject')}), 'A') || "
            f"setweight(to_tsvector('english'::regconfig, {text('author')} || ' ' || "
            f"translate({text('author')}, '@.<>', '    ')), 'B') || "
            f"setweight(to_tsvector('english'::regconfig, {text('body')}), 'C')) STORED")


def _rebuild(sql: str) -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(sa.text("DROP INDEX IF EXISTS ix_search_text_tsv"))
    op.execute(sa.text("ALTER TABLE search_text DROP COLUMN tsv"))
    op.execute(sa.text(sql))
    op.execute(sa.text("CREATE INDEX ix_search_text_tsv ON search_text USING gin (tsv)"))


def upgrade() -> None:
    m = _m0018()
    _rebuild(column(m.FROM, m.TO))


def downgrade() -> None:
    _rebuild(_m0018()._column(True))
