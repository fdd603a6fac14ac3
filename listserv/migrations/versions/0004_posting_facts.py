"""posting facts: when a post was accepted, and the public texts extracted from it

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Digests pick posts by when they were accepted (a held post approved after a period ended
    # belongs to the next digest); the participation policy compares new posts with texts kept
    # when earlier posts were stored, instead of parsing their raw bytes again.
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('accepted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('public_texts', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.create_index('ix_message_list_accepted', ['list_id', 'accepted_at'], unique=False)

    # Accepted on arrival, or when a moderator approved it (the held row's resolution time).
    # Public texts of older posts stay NULL: they are extracted from the raw bytes when read.
    op.execute(sa.text(
        "UPDATE message SET accepted_at = COALESCE("
        "(SELECT held.resolved_at FROM held WHERE held.message_pk = message.id "
        "AND held.resolution = 'accept'), received_at) "
        "WHERE status = 'accepted'"))


def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index('ix_message_list_accepted')
        batch_op.drop_column('public_texts')
        batch_op.drop_column('accepted_at')
