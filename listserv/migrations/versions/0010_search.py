"""search: the text each accepted post is found by, with SQLite FTS5 or a PostgreSQL tsvector

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

Str = sqlmodel.sql.sqltypes.AutoString
BATCH = 500

# The external-content FTS5 table follows search_text through triggers, so every write path
# (release, import, this backfill) keeps the index current without knowing it exists.
SQLITE_INDEX = [
    "CREATE VIRTUAL TABLE search_fts USING fts5(subject, body, author, content='search_text', "
    "content_rowid='message_pk', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER search_text_ai AFTER INSERT ON search_text BEGIN "
    "INSERT INTO search_fts(rowid, subject, body, author) "
    "VALUES (new.message_pk, new.subject, new.body, new.author); END",
    "CREATE TRIGGER search_text_ad AFTER DELETE ON search_text BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, subject, body, author) "
    "VALUES ('delete', old.message_pk, old.subject, old.body, old.author); END",
    "CREATE TRIGGER search_text_au AFTER UPDATE ON search_text BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, subject, body, author) "
    "VALUES ('delete', old.message_pk, old.subject, old.body, old.author); "
    "INSERT INTO search_fts(rowid, subject, body, author) "
    "VALUES (new.message_pk, new.subject, new.body, new.author); END",
]

# Subject weighs most, then the author, then the body. The author's address is also split at
# '@' and '.', so "alice" or "example" alone find alice@example.org. listserv.search.PG_CONFIG
# must name the same configuration.
PG_INDEX = [
    "ALTER TABLE search_text ADD COLUMN tsv tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english'::regconfig, subject), 'A') || "
    "setweight(to_tsvector('english'::regconfig, author || ' ' || "
    "translate(author, '@.<>', '    ')), 'B') || "
    "setweight(to_tsvector('english'::regconfig, body), 'C')) STORED",
    "CREATE INDEX ix_search_text_tsv ON search_text USING gin (tsv)",
]


def upgrade() -> None:
    op.create_table('search_text',
    sa.Column('message_pk', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('subject', Str(), nullable=False),
    sa.Column('body', Str(), nullable=False),
    sa.Column('author', Str(), nullable=False),
    sa.ForeignKeyConstraint(['list_id'], ['mailing_list.id'], ),
    sa.ForeignKeyConstraint(['message_pk'], ['message.id'], ),
    sa.PrimaryKeyConstraint('message_pk')
    )
    op.create_index(op.f('ix_search_text_list_id'), 'search_text', ['list_id'], unique=False)
    bind = op.get_bind()
    for statement in SQLITE_INDEX if bind.dialect.name == 'sqlite' else PG_INDEX:
        op.execute(sa.text(statement))
    _backfill(bind)


def _backfill(bind: sa.Connection) -> None:
    """Index the posts accepted before search existed, a batch at a time."""
    from listserv.search import document

    last = 0
    while True:
        rows = bind.execute(sa.text(
            "SELECT id, list_id, subject, from_name, from_address, raw FROM message "
            "WHERE status = 'accepted' AND list_id IS NOT NULL AND id > :last "
            "ORDER BY id LIMIT :n"), {"last": last, "n": BATCH}).all()
        if not rows:
            return
        values = []
        for r in rows:
            doc = document(r.subject, r.from_name, r.from_address, bytes(r.raw))
            values.append({"pk": r.id, "list_id": r.list_id, "subject": doc.subject,
                           "body": doc.body, "author": doc.author})
        bind.execute(sa.text(
            "INSERT INTO search_text (message_pk, list_id, subject, body, author) "
            "VALUES (:pk, :list_id, :subject, :body, :author)"), values)
        last = rows[-1].id


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for name in ('search_text_au', 'search_text_ad', 'search_text_ai'):
            op.execute(sa.text(f"DROP TRIGGER IF EXISTS {name}"))
        op.execute(sa.text("DROP TABLE IF EXISTS search_fts"))
    op.drop_index(op.f('ix_search_text_list_id'), table_name='search_text')
    op.drop_table('search_text')
