"""bounce_notify_owner_on_disable: tell a list's moderators when bounces disable a member

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, as 0014: a batch would make SQLite copy mailing_list.
    op.add_column('mailing_list', sa.Column('bounce_notify_owner_on_disable', sa.Boolean(),
                                            nullable=False, server_default=sa.true()))


def downgrade() -> None:
    op.drop_column('mailing_list', 'bounce_notify_owner_on_disable')
