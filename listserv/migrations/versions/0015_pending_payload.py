"""pending payload: what a moderator's mailed request (event add, competition start, schedule
add) will create once confirmed

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

Str = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN with a default, as 0014 does (no batch copy of the table).
    op.add_column('pending', sa.Column('payload', Str(), nullable=False, server_default=''))


def downgrade() -> None:
    op.drop_column('pending', 'payload')
