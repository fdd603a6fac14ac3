"""outbox: retry by time, notices first, partial due index

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")
SENDING = sa.text("state = 'sending'")


def upgrade() -> None:
    # priority: notices (0) are claimed before fan-out copies (1). requeued_at: when
    # 'outbox retry' gave a failed row a new lifetime ([delivery] give_up_after counts from it).
    # The due index holds only pending rows and the lease index only sending ones: sent rows,
    # the bulk of the table, are in neither.
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.Integer(), nullable=False,
                                      server_default='1'))
        batch_op.add_column(sa.Column('requeued_at', sqlmodel.sql.sqltypes.UTCDateTime(),
                                      nullable=True))
        batch_op.drop_index('ix_outbox_due')
    op.create_index('ix_outbox_due', 'outbox', ['priority', 'next_attempt_at'], unique=False,
                    sqlite_where=PENDING, postgresql_where=PENDING)
    op.create_index('ix_outbox_sending', 'outbox', ['claimed_by'], unique=False,
                    sqlite_where=SENDING, postgresql_where=SENDING)


def downgrade() -> None:
    op.drop_index('ix_outbox_sending', table_name='outbox')
    op.drop_index('ix_outbox_due', table_name='outbox')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.drop_column('requeued_at')
        batch_op.drop_column('priority')
