"""bounce scores: per-list bounce settings, per-member score and disabled delivery

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

Str = sqlmodel.sql.sqltypes.AutoString
When = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN: a batch would make SQLite copy mailing_list, which the
    # other tables' foreign keys forbid.
    add = op.add_column
    add('mailing_list', sa.Column('bounce_score_threshold', sa.Integer(), nullable=False, server_default='5'))
    add('mailing_list', sa.Column('bounce_info_stale_days', sa.Integer(), nullable=False, server_default='7'))
    add('mailing_list', sa.Column('bounce_you_are_disabled_warnings', sa.Integer(), nullable=False, server_default='3'))
    add('mailing_list', sa.Column('bounce_you_are_disabled_warnings_interval', sa.Integer(), nullable=False, server_default='7'))
    add('mailing_list', sa.Column('bounce_probe', sa.Boolean(), nullable=False, server_default=sa.false()))
    add('subscription', sa.Column('bounce_score', sa.Float(), nullable=False, server_default='0'))
    add('subscription', sa.Column('last_bounce_at', When(), nullable=True))
    add('subscription', sa.Column('delivery_disabled_at', When(), nullable=True))
    add('subscription', sa.Column('warnings_sent', sa.Integer(), nullable=False, server_default='0'))
    add('subscription', sa.Column('last_warning_at', When(), nullable=True))
    add('subscription', sa.Column('probe_token', Str(length=64), nullable=False, server_default=''))
    op.create_index(op.f('ix_subscription_probe_token'), 'subscription', ['probe_token'], unique=False)
    add('bounce', sa.Column('diagnostic', Str(), nullable=False, server_default=''))
    add('bounce', sa.Column('counted', sa.Float(), nullable=False, server_default='0'))


def downgrade() -> None:
    # Plain ALTER TABLE DROP COLUMN (SQLite >= 3.35), for the same reason as upgrade.
    op.drop_index(op.f('ix_subscription_probe_token'), table_name='subscription')
    for table, names in (
            ('bounce', ('counted', 'diagnostic')),
            ('subscription', ('probe_token', 'last_warning_at', 'warnings_sent',
                              'delivery_disabled_at', 'last_bounce_at', 'bounce_score')),
            ('mailing_list', ('bounce_probe', 'bounce_you_are_disabled_warnings_interval',
                              'bounce_you_are_disabled_warnings', 'bounce_info_stale_days',
                              'bounce_score_threshold'))):
        for name in names:
            op.drop_column(table, name)
