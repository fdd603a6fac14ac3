"""discord events: relay rows for an event's card and scheduled event and for a
competition's card, and the scheduled event's id on the event

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

Str = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN (as 0014): a batch would make SQLite copy the tables. The
    # foreign key is declared on PostgreSQL only; SQLite cannot add one to an existing table.
    op.add_column('event', sa.Column('discord_event_id', Str(length=20), nullable=False,
                                     server_default=''))
    op.add_column('discord_relay', sa.Column('event_id', sa.Integer(), nullable=True))
    op.add_column('discord_relay', sa.Column('competition_id', sa.Integer(), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        op.create_foreign_key('fk_discord_relay_event_id', 'discord_relay', 'event',
                              ['event_id'], ['id'])
        op.create_foreign_key('fk_discord_relay_competition_id', 'discord_relay',
                              'competition', ['competition_id'], ['id'])


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint('fk_discord_relay_competition_id', 'discord_relay',
                           type_='foreignkey')
        op.drop_constraint('fk_discord_relay_event_id', 'discord_relay', type_='foreignkey')
    op.drop_column('discord_relay', 'competition_id')
    op.drop_column('discord_relay', 'event_id')
    op.drop_column('event', 'discord_event_id')
