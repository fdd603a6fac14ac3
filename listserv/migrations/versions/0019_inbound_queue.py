"""inbound queue: messages the SMTP door accepted (committed, answered 250) and the pipeline has
not handled yet

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

Str = sqlmodel.sql.sqltypes.AutoString
When = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        'inbound',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('received_at', When(), nullable=False),
        sa.Column('envelope_from', Str(), nullable=False),
        sa.Column('destinations', Str(), nullable=False),
        sa.Column('dmarc_policy', Str(length=16), nullable=False),
        sa.Column('urgent', sa.Boolean(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', Str(), nullable=False),
        sa.Column('raw', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('inbound')
