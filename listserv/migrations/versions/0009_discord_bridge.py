"""discord bridge: list threads <-> Discord threads, posts written in Discord, the relay queue

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

Str = sqlmodel.sql.sqltypes.AutoString
When = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table('discord_thread',
    sa.Column('thread_id', sa.Integer(), nullable=False),
    sa.Column('discord_thread_id', Str(length=20), nullable=False),
    sa.Column('channel_id', Str(length=20), nullable=False),
    sa.Column('created_at', When(), nullable=False),
    sa.ForeignKeyConstraint(['thread_id'], ['thread.id'], ),
    sa.PrimaryKeyConstraint('thread_id'),
    sa.UniqueConstraint('discord_thread_id')
    )
    op.create_table('discord_post',
    sa.Column('discord_message_id', Str(length=20), nullable=False),
    sa.Column('message_pk', sa.Integer(), nullable=False),
    sa.Column('discord_thread_id', Str(length=20), nullable=False),
    sa.Column('discord_user_id', Str(length=20), nullable=False),
    sa.Column('created_at', When(), nullable=False),
    sa.ForeignKeyConstraint(['message_pk'], ['message.id'], ),
    sa.PrimaryKeyConstraint('discord_message_id'),
    sa.UniqueConstraint('message_pk')
    )
    op.create_table('discord_relay',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=True),
    sa.Column('kind', Str(length=16), nullable=False),
    sa.Column('message_pk', sa.Integer(), nullable=True),
    sa.Column('channel_id', Str(length=20), nullable=False),
    sa.Column('content', Str(), nullable=False),
    sa.Column('state', Str(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', When(), nullable=False),
    sa.Column('parts_sent', sa.Integer(), nullable=False),
    sa.Column('discord_message_ids', Str(), nullable=False),
    sa.Column('last_error', Str(), nullable=False),
    sa.Column('created_at', When(), nullable=False),
    sa.Column('sent_at', When(), nullable=True),
    sa.ForeignKeyConstraint(['list_id'], ['mailing_list.id'], ),
    sa.ForeignKeyConstraint(['message_pk'], ['message.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_pk')
    )
    op.create_index('ix_discord_relay_due', 'discord_relay', ['state', 'next_attempt_at'],
                    unique=False)
    op.create_index(op.f('ix_discord_relay_list_id'), 'discord_relay', ['list_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_discord_relay_list_id'), table_name='discord_relay')
    op.drop_index('ix_discord_relay_due', table_name='discord_relay')
    op.drop_table('discord_relay')
    op.drop_table('discord_post')
    op.drop_table('discord_thread')
