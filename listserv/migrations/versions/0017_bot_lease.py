"""bot lease: the lease table (one process at a time runs the Discord bot) and the relay
worker's claim on the discord_relay row it is writing

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

Str = sqlmodel.sql.sqltypes.AutoString
When = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        'lease',
        sa.Column('name', Str(length=32), nullable=False),
        sa.Column('holder', Str(length=100), nullable=False),
        sa.Column('expires_at', When(), nullable=False),
        sa.Column('taken_at', When(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    # Plain ALTER TABLE ADD COLUMN with a default, as 0014 does (no batch copy of the table).
    op.add_column('discord_relay', sa.Column('claimed_by', Str(length=64), nullable=False,
                                             server_default=''))


def downgrade() -> None:
    op.drop_column('discord_relay', 'claimed_by')
    op.drop_table('lease')
