"""moderation fixes: a record of held/rejected notices sent to posters (backscatter limit)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sender_notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=True),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['list_id'], ['mailing_list.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sender_notice', schema=None) as batch_op:
        batch_op.create_index('ix_sender_notice_address_sent', ['address', 'sent_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sender_notice', schema=None) as batch_op:
        batch_op.drop_index('ix_sender_notice_address_sent')
    op.drop_table('sender_notice')
