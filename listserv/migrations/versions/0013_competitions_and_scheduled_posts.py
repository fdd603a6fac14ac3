"""competitions (with their entries) and scheduled posts

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

Str = sqlmodel.sql.sqltypes.AutoString
When = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table('scheduled_post',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('from_address', Str(length=254), nullable=False),
    sa.Column('subject', Str(), nullable=False),
    sa.Column('body', Str(), nullable=False),
    sa.Column('rule', Str(length=128), nullable=False),
    sa.Column('next_at', When(), nullable=False),
    sa.Column('last_sent_at', When(), nullable=True),
    sa.Column('sent_count', sa.Integer(), nullable=False),
    sa.Column('state', Str(length=16), nullable=False),
    sa.Column('created_by', Str(), nullable=False),
    sa.Column('created_at', When(), nullable=False),
    sa.ForeignKeyConstraint(['list_id'], ['mailing_list.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_scheduled_post_due', 'scheduled_post', ['state', 'next_at'], unique=False)
    op.create_index(op.f('ix_scheduled_post_list_id'), 'scheduled_post', ['list_id'], unique=False)
    op.create_table('competition',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('prize', Str(), nullable=False),
    sa.Column('how_to_enter', Str(), nullable=False),
    sa.Column('closes_at', When(), nullable=False),
    sa.Column('reserves', sa.Integer(), nullable=False),
    sa.Column('exclude_org', Str(), nullable=False),
    sa.Column('seed', Str(length=64), nullable=False),
    sa.Column('commitment', Str(length=64), nullable=False),
    sa.Column('message_pk', sa.Integer(), nullable=True),
    sa.Column('thread_id', sa.Integer(), nullable=True),
    sa.Column('state', Str(length=16), nullable=False),
    sa.Column('drawn_at', When(), nullable=True),
    sa.Column('entrants', Str(), nullable=False),
    sa.Column('picks', Str(), nullable=False),
    sa.Column('current', sa.Integer(), nullable=False),
    sa.Column('created_by', Str(), nullable=False),
    sa.Column('created_at', When(), nullable=False),
    sa.ForeignKeyConstraint(['list_id'], ['mailing_list.id'], ),
    sa.ForeignKeyConstraint(['message_pk'], ['message.id'], ),
    sa.ForeignKeyConstraint(['thread_id'], ['thread.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_competition_due', 'competition', ['state', 'closes_at'], unique=False)
    op.create_index(op.f('ix_competition_list_id'), 'competition', ['list_id'], unique=False)
    op.create_index(op.f('ix_competition_thread_id'), 'competition', ['thread_id'], unique=False)
    op.create_table('competition_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('competition_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('address', Str(length=254), nullable=False),
    sa.Column('message_pk', sa.Integer(), nullable=True),
    sa.Column('entered_at', When(), nullable=False),
    sa.ForeignKeyConstraint(['competition_id'], ['competition.id'], ),
    sa.ForeignKeyConstraint(['message_pk'], ['message.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('competition_id', 'person_id')
    )
    op.create_index(op.f('ix_competition_entry_competition_id'), 'competition_entry',
                    ['competition_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_competition_entry_competition_id'), table_name='competition_entry')
    op.drop_table('competition_entry')
    op.drop_index(op.f('ix_competition_thread_id'), table_name='competition')
    op.drop_index(op.f('ix_competition_list_id'), table_name='competition')
    op.drop_index('ix_competition_due', table_name='competition')
    op.drop_table('competition')
    op.drop_index(op.f('ix_scheduled_post_list_id'), table_name='scheduled_post')
    op.drop_index('ix_scheduled_post_due', table_name='scheduled_post')
    op.drop_table('scheduled_post')
