"""fewer index entries a post: ix_message_list_id dropped, ix_outbox_digest_id partial

Measured on PostgreSQL (bench/README.md, "PostgreSQL's server CPU per handled post"):
- ``ix_message_list_id`` (list_id) is redundant: ``ix_message_list_msgid`` (list_id, message_id)
  and ``ix_message_list_accepted`` (list_id, accepted_at) both lead with list_id, so every
  query on a list's posts (and the foreign key's checks) is still served by an index.
- ``ix_outbox_digest_id`` indexed every copy, but only digest copies have a digest_id: post
  copies (ten a post on the bench's list) wrote a NULL entry on their INSERT and again on each
  of their two non-HOT UPDATEs (claimed, sent: ``state`` is in the partial indexes'
  predicates). ``WHERE digest_id IS NOT NULL`` keeps it for every ``digest_id = ?`` lookup.
Both stores, so their schemas stay alike.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

_HAS_DIGEST = sa.text("digest_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index('ix_message_list_id', table_name='message')
    op.drop_index('ix_outbox_digest_id', table_name='outbox')
    op.create_index('ix_outbox_digest_id', 'outbox', ['digest_id'],
                    sqlite_where=_HAS_DIGEST, postgresql_where=_HAS_DIGEST)


def downgrade() -> None:
    op.drop_index('ix_outbox_digest_id', table_name='outbox')
    op.create_index('ix_outbox_digest_id', 'outbox', ['digest_id'])
    op.create_index('ix_message_list_id', 'message', ['list_id'])
