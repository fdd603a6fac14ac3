"""archive: who may read a list's archive, and thread summaries for the archive pages

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""
from __future__ import annotations

import json

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

Str = sqlmodel.sql.sqltypes.AutoString

# As listserv/thread_summary.py keeps them (copied, so this migration never changes meaning).
_SHOWN = 5


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy): SQLite adds and drops these columns in place, and a
    # batch copy of mailing_list would have to drop a table other tables' rows point at.
    op.add_column('mailing_list', sa.Column('archive', Str(length=16), nullable=False,
                                            server_default='public'))
    op.add_column('thread', sa.Column('opening_pk', sa.Integer(), nullable=True))
    op.add_column('thread', sa.Column('participants', Str(), nullable=False, server_default='[]'))
    op.add_column('thread', sa.Column('participant_count', sa.Integer(), nullable=False,
                                      server_default='0'))
    op.create_index('ix_thread_list_last', 'thread', ['list_id', 'last_post_at', 'id'])
    op.create_index('ix_thread_list_first', 'thread', ['list_id', 'first_post_at', 'id'])

    # Summaries of existing threads, from their accepted posts (earliest first).
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT m.thread_id, m.id, COALESCE(NULLIF(p.display_name, ''), m.from_name), "
        "m.from_address FROM message m "
        "LEFT JOIN address a ON a.email = m.from_address "
        "LEFT JOIN person p ON p.id = a.person_id "
        "WHERE m.thread_id IS NOT NULL AND m.accepted_at IS NOT NULL "
        "ORDER BY m.thread_id, COALESCE(m.date, m.received_at), m.id"))
    summaries: dict[int, tuple[int, list[str], set[str]]] = {}
    for thread_id, pk, name, address in rows:
        opening, shown, everyone = summaries.setdefault(thread_id, (pk, [], set()))
        who = (address or name or "").lower()
        label = " ".join((name or "").split())[:200] or (address or "").split("@", 1)[0]
        if who not in everyone:
            everyone.add(who)
            if len(shown) < _SHOWN and label:
                shown.append(label)
    for thread_id, (opening, shown, everyone) in summaries.items():
        conn.execute(sa.text("UPDATE thread SET opening_pk = :o, participants = :p, "
                             "participant_count = :n WHERE id = :t"),
                     {"o": opening, "p": json.dumps(shown), "n": len(everyone), "t": thread_id})


def downgrade() -> None:
    # SQLite 3.35+ drops unindexed columns in place (see upgrade).
    op.drop_index('ix_thread_list_first', table_name='thread')
    op.drop_index('ix_thread_list_last', table_name='thread')
    op.drop_column('thread', 'participant_count')
    op.drop_column('thread', 'participants')
    op.drop_column('thread', 'opening_pk')
    op.drop_column('mailing_list', 'archive')
