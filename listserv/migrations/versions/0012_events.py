"""events: event, event_attendee

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0012'
down_revision = '0010'
branch_labels = None
depends_on = None

Str = sqlmodel.sql.sqltypes.AutoString
When = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('uid', Str(length=128), nullable=False),
    sa.Column('title', Str(length=200), nullable=False),
    sa.Column('starts_at', When(), nullable=False),
    sa.Column('ends_at', When(), nullable=False),
    sa.Column('timezone', Str(length=64), nullable=False),
    sa.Column('location', Str(), nullable=False),
    sa.Column('booking_url', Str(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=True),
    sa.Column('description', Str(), nullable=False),
    sa.Column('state', Str(length=16), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('message_pk', sa.Integer(), nullable=True),
    sa.Column('created_by', Str(), nullable=False),
    sa.Column('created_at', When(), nullable=False),
    sa.Column('reminded_at', When(), nullable=True),
    sa.ForeignKeyConstraint(['list_id'], ['mailing_list.id'], ),
    sa.ForeignKeyConstraint(['message_pk'], ['message.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uid')
    )
    op.create_index('ix_event_list_starts', 'event', ['list_id', 'starts_at'], unique=False)
    op.create_table('event_attendee',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('email', Str(length=254), nullable=False),
    sa.Column('state', Str(length=16), nullable=False),
    sa.Column('via', Str(length=16), nullable=False),
    sa.Column('created_at', When(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id', 'email')
    )
    op.create_index(op.f('ix_event_attendee_event_id'), 'event_attendee', ['event_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_event_attendee_event_id'), table_name='event_attendee')
    op.drop_table('event_attendee')
    op.drop_index('ix_event_list_starts', table_name='event')
    op.drop_table('event')
