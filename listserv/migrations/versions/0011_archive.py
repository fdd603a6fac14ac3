"""archive: who may read a list's archive, and thread summaries for the archive pages

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-06
"""
from __future__ import annotations

import json

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0011'
down_revision = '0009'
branch_labels = None
depends_on = None

Str = sqlmodel.sql.sqltypes.AutoString

# As listserv/thread_summary.py keeps them (copied, so this migration never changes meaning).
_SHOWN = 5


def upgrade() -> None:
    with op.batch_alter_table('mailing_list', schema=None) as batch_op:
        batch_op.add_column(sa.Column('archive', Str(length=16), nullable=False,
                                      server_default='public'))
    with op.batch_alter_table('thread', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opening_pk', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('participants', Str(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('participant_count', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.create_index('ix_thread_list_last', ['list_id', 'last_post_at', 'id'], unique=False)
        batch_op.create_index('ix_thread_list_first', ['list_id', 'first_post_at', 'id'],
                              unique=False)

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
    with op.batch_alter_table('thread', schema=None) as batch_op:
        batch_op.drop_index('ix_thread_list_first')
        batch_op.drop_index('ix_thread_list_last')
        batch_op.drop_column('participant_count')
        batch_op.drop_column('participants')
        batch_op.drop_column('opening_pk')
    with op.batch_alter_table('mailing_list', schema=None) as batch_op:
        batch_op.drop_column('archive')
